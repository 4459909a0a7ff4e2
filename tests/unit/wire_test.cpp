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

TEST_CASE("a packed frame carries many requests and reads back in order", "[wire][packed]") {
  std::vector<std::string> keys, values;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("key-" + std::to_string(i));
    values.push_back(std::string(static_cast<size_t>(i * 7), 'a' + i % 26));
  }
  kv::PackedWriter writer;
  for (int i = 0; i < 100; ++i) {
    kv::Request r;
    r.request_id = static_cast<uint64_t>(i + 1);
    r.op = i % 3 == 0 ? kv::Op::kPut : (i % 3 == 1 ? kv::Op::kGet : kv::Op::kDelete);
    r.key = keys[i];
    if (r.op == kv::Op::kPut) r.value = values[i];
    r.stale_ok = r.op == kv::Op::kGet && i % 2 == 0;
    r.unordered = r.op == kv::Op::kGet && i % 4 < 2;
    writer.Add(r);
  }
  CHECK(writer.count() == 100);
  zmq::message_t frame = Misaligned(writer.Take());
  CHECK(writer.empty());
  CHECK(writer.bytes() == 0);

  kv::DecodeScratch scratch;
  kv::PackedReader reader(frame, scratch);
  int read = 0;
  while (!reader.done()) {
    kv::Request out;
    uint64_t id = 0;
    REQUIRE(reader.NextRequest(&out, &id).ok());
    CHECK(id == static_cast<uint64_t>(read + 1));
    CHECK(out.key == keys[read]);
    if (out.op == kv::Op::kPut) CHECK(out.value == values[read]);
    CHECK(out.stale_ok == (out.op == kv::Op::kGet && read % 2 == 0));
    CHECK(out.unordered == (out.op == kv::Op::kGet && read % 4 < 2));
    ++read;
  }
  CHECK(read == 100);
  CHECK(reader.decoded() == 100);
  kv::Request extra;
  uint64_t id = 0;
  CHECK(reader.NextRequest(&extra, &id).IsNotFound());
}

TEST_CASE("a packed frame of replies reads back, and one-message frames are packed frames",
          "[wire][packed]") {
  kv::PackedWriter writer;
  const std::string values[] = {"v1", "v2", "v3"};  // a Reply only points at its bytes
  for (uint64_t i = 1; i <= 3; ++i) {
    kv::Reply r;
    r.request_id = i;
    r.status = kv::WireStatus::GET_SUCCESS;
    r.key = "k";
    r.value = values[i - 1];
    writer.Add(r);
  }
  zmq::message_t frame = writer.Take();
  kv::DecodeScratch scratch;
  kv::PackedReader reader(frame, scratch);
  for (uint64_t i = 1; i <= 3; ++i) {
    kv::Reply out;
    REQUIRE(reader.NextReply(&out).ok());
    CHECK(out.request_id == i);
    CHECK(out.value == "v" + std::to_string(i));
  }
  CHECK(reader.done());

  // DecodeReply reads the first message of a packed frame; the writer's
  // buffer is reused after Take.
  kv::Reply one;
  one.request_id = 9;
  one.status = kv::WireStatus::PUT_SUCCESS;
  writer.Add(one);
  zmq::message_t single = writer.Take();
  zmq::message_t plain = kv::EncodeReply(one);
  CHECK(single.size() == plain.size());
  kv::Reply out;
  REQUIRE(kv::DecodeReply(single, scratch, &out).ok());
  CHECK(out.request_id == 9);
}

TEST_CASE("a bad message inside a packed frame ends the frame with an error", "[wire][packed]") {
  kv::Request good;
  good.request_id = 1;
  good.op = kv::Op::kGet;
  good.key = "k";
  zmq::message_t first = kv::EncodeRequest(good);
  std::string bytes(static_cast<const char*>(first.data()), first.size());

  SECTION("a truncated last message") {
    good.request_id = 2;
    std::string value(300, 'v');
    good.op = kv::Op::kPut;
    good.value = value;
    zmq::message_t second = kv::EncodeRequest(good);
    bytes.append(static_cast<const char*>(second.data()), second.size() - 64);
  }
  SECTION("junk words after a good message") {
    bytes.append(std::string(64, '\x7f'));
  }
  zmq::message_t frame(bytes.data(), bytes.size());
  kv::DecodeScratch scratch;
  kv::PackedReader reader(frame, scratch);
  kv::Request out;
  uint64_t id = 0;
  REQUIRE(reader.NextRequest(&out, &id).ok());
  CHECK(id == 1);
  REQUIRE_FALSE(reader.done());
  CHECK(reader.NextRequest(&out, &id).IsInvalidArgument());
  CHECK(reader.done());
}

TEST_CASE("an unreadable frame gives one error and then ends", "[wire][packed]") {
  zmq::message_t m("garbage", 7);
  kv::DecodeScratch scratch;
  kv::PackedReader reader(m, scratch);
  CHECK_FALSE(reader.done());
  kv::Reply out;
  CHECK(reader.NextReply(&out).IsInvalidArgument());
  CHECK(reader.done());
}

TEST_CASE("one frame reader reads frame after frame, aligned or not, and recovers from bad ones",
          "[wire]") {
  // A KeyValue of `bytes` value bytes, as a frame at `offset` bytes past an
  // 8-byte boundary (ZeroMQ hands frames at any offset in its receive buffer).
  std::string storage;
  auto frame_of = [&storage](size_t bytes, size_t offset) {
    capnp::MallocMessageBuilder b;
    auto kv = b.initRoot<kv::wire::KeyValue>();
    std::string value(bytes, static_cast<char>('a' + bytes % 26));
    kv.setKey(kv::ToCapnpData("key" + std::to_string(bytes)));
    kv.setValue(kv::ToCapnpData(value));
    zmq::message_t m = kv::ToFrame(b);
    storage.assign(m.size() + 16, '\0');
    char* at = storage.data() + (8 - reinterpret_cast<uintptr_t>(storage.data()) % 8) + offset;
    std::memcpy(at, m.data(), m.size());
    return zmq::message_t(at, m.size(), nullptr, nullptr);  // no copy: the frame is at `at`
  };
  kv::FrameReader reader;
  for (size_t bytes : {10, 5000, 100, 70000, 3}) {
    for (size_t offset : {0, 1, 3}) {
      zmq::message_t frame = frame_of(bytes, offset);
      REQUIRE((reinterpret_cast<uintptr_t>(frame.data()) % 8) == offset);
      REQUIRE(reader.Reset(frame).ok());
      auto kv = reader.Root<kv::wire::KeyValue>();
      CHECK(kv::FromCapnpData(kv.getKey()) == "key" + std::to_string(bytes));
      CHECK(kv::FromCapnpData(kv.getValue()) ==
            std::string(bytes, static_cast<char>('a' + bytes % 26)));
    }
    zmq::message_t bad("not capnp", 9);  // not whole words
    CHECK(reader.Reset(bad).IsInvalidArgument());
    zmq::message_t garbage(std::string(64, '\xff').data(), 64);  // segment table lies
    CHECK(reader.Reset(garbage).IsInvalidArgument());
  }
}
