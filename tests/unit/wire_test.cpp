#include "schema/wire.h"

#include <catch2/catch.hpp>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <cstring>
#include <string>

namespace {

zmq::message_t Misaligned(const zmq::message_t& m) {
  // Copy into a buffer at an odd offset, as ZeroMQ may hand frames to us.
  static std::string storage;
  storage.assign(m.size() + 1, '\0');
  std::memcpy(storage.data() + 1, m.data(), m.size());
  return zmq::message_t(storage.data() + 1, m.size());
}

}  // namespace

TEST_CASE("a put request survives encoding and decoding byte for byte", "[wire]") {
  std::string key("k\0ey with\nbytes", 15);
  std::string value(3000, '\xff');
  kv::Request in;
  in.request_id = 42;
  in.ring_version = 7;
  in.op = kv::Op::kPut;
  in.key = key;
  in.value = value;
  zmq::message_t frame = kv::EncodeRequest(in);
  kv::DecodeScratch scratch;
  kv::Request out;
  uint64_t id = 0;
  REQUIRE(kv::DecodeRequest(frame, scratch, &out, &id).ok());
  CHECK(id == 42);
  CHECK(out.request_id == 42);
  CHECK(out.ring_version == 7);
  CHECK(out.op == kv::Op::kPut);
  CHECK(out.key == key);
  CHECK(out.value == value);
}

TEST_CASE("every operation round trips, also from an unaligned frame", "[wire]") {
  for (kv::Op op : {kv::Op::kGet, kv::Op::kDelete, kv::Op::kKeyrange, kv::Op::kKeyrangeRead}) {
    kv::Request in;
    in.request_id = 9;
    in.op = op;
    if (op == kv::Op::kGet || op == kv::Op::kDelete) in.key = "key";
    zmq::message_t frame = Misaligned(kv::EncodeRequest(in));
    kv::DecodeScratch scratch;
    kv::Request out;
    uint64_t id = 0;
    REQUIRE(kv::DecodeRequest(frame, scratch, &out, &id).ok());
    CHECK(out.op == op);
    CHECK(out.key == in.key);
  }
}

TEST_CASE("a reply round trips with its status word", "[wire]") {
  kv::Reply in;
  in.request_id = 5;
  in.status = kv::WireStatus::GET_SUCCESS;
  in.key = "k";
  in.value = "a value with spaces";
  in.ring_version = 3;
  zmq::message_t frame = kv::EncodeReply(in);
  kv::DecodeScratch scratch;
  kv::Reply out;
  REQUIRE(kv::DecodeReply(frame, scratch, &out).ok());
  CHECK(out.request_id == 5);
  CHECK(out.status == kv::WireStatus::GET_SUCCESS);
  CHECK(std::string(kv::StatusWord(out.status)) == "get_success");
  CHECK(out.value == "a value with spaces");
  CHECK(out.ring_version == 3);
}

TEST_CASE("status words match the seed system's text protocol", "[wire]") {
  using S = kv::WireStatus;
  CHECK(std::string(kv::StatusWord(S::PUT_SUCCESS)) == "put_success");
  CHECK(std::string(kv::StatusWord(S::PUT_UPDATE)) == "put_update");
  CHECK(std::string(kv::StatusWord(S::PUT_ERROR)) == "put_error");
  CHECK(std::string(kv::StatusWord(S::GET_ERROR)) == "get_error");
  CHECK(std::string(kv::StatusWord(S::DELETE_SUCCESS)) == "delete_success");
  CHECK(std::string(kv::StatusWord(S::DELETE_ERROR)) == "delete_error");
  CHECK(std::string(kv::StatusWord(S::SERVER_NOT_RESPONSIBLE)) == "server_not_responsible");
  CHECK(std::string(kv::StatusWord(S::SERVER_WRITE_LOCK)) == "server_write_lock");
  CHECK(std::string(kv::StatusWord(S::SERVER_STOPPED)) == "server_stopped");
  CHECK(std::string(kv::StatusWord(S::BAD_REQUEST)) == "bad_request");
  CHECK(std::string(kv::StatusWord(S::OVERLOADED)) == "overloaded");
  CHECK(kv::StatusFromWord("put_update") == S::PUT_UPDATE);
  CHECK_FALSE(kv::StatusFromWord("nonsense").has_value());
  CHECK(kv::IsSuccess(S::PUT_UPDATE));
  CHECK_FALSE(kv::IsSuccess(S::GET_ERROR));
}

TEST_CASE("malformed frames are rejected with a status, never an exception", "[wire]") {
  kv::DecodeScratch scratch;
  kv::Request out;
  uint64_t id = 0;
  SECTION("empty") {
    zmq::message_t m;
    CHECK(kv::DecodeRequest(m, scratch, &out, &id).IsInvalidArgument());
  }
  SECTION("not a whole number of words") {
    zmq::message_t m("garbage", 7);
    CHECK(kv::DecodeRequest(m, scratch, &out, &id).IsInvalidArgument());
  }
  SECTION("random words") {
    std::string junk(64, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 37 + 11);
    zmq::message_t m(junk.data(), junk.size());
    CHECK(kv::DecodeRequest(m, scratch, &out, &id).IsInvalidArgument());
  }
  SECTION("truncated valid message") {
    kv::Request in;
    std::string value(500, 'v');  // the request only points at it
    in.op = kv::Op::kPut;
    in.key = "key";
    in.value = value;
    zmq::message_t full = kv::EncodeRequest(in);
    zmq::message_t cut(full.data(), full.size() - 64);
    CHECK(kv::DecodeRequest(cut, scratch, &out, &id).IsInvalidArgument());
  }
  SECTION("segment table claiming a huge segment") {
    uint32_t header[2] = {0, 0x7fffffff};  // one segment of 2^31 words
    zmq::message_t m(header, sizeof(header));
    CHECK(kv::DecodeRequest(m, scratch, &out, &id).IsInvalidArgument());
  }
}

TEST_CASE("a request of another protocol version is refused but its id is read", "[wire]") {
  capnp::MallocMessageBuilder b;
  auto root = b.initRoot<kv::wire::Request>();
  root.setVersion(99);
  root.setRequestId(77);
  root.setGet(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("k"), 1));
  auto words = capnp::messageToFlatArray(b);
  zmq::message_t m(words.asBytes().begin(), words.asBytes().size());
  kv::DecodeScratch scratch;
  kv::Request out;
  uint64_t id = 0;
  kv::Status s = kv::DecodeRequest(m, scratch, &out, &id);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("version") != std::string::npos);
  CHECK(id == 77);
}
