#include "kvnode/replication.h"

#include <capnp/message.h>
#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "schema/wire.h"

namespace {

using namespace std::string_literals;

// Encodes a batch as a primary would and decodes it as a replica would.
kv::Status RoundTrip(const kv::ReplBatch& batch, kv::ReplicateMessage* out,
                     size_t max_key_bytes = 1024) {
  kv::NodeAddress primary{"127.0.0.1", 4000, 4001};
  kv::ReplicaStream stream;
  stream.id = 77;
  stream.first_seq = 3;
  zmq::message_t frame = kv::EncodeReplicate(9, 5, primary, stream, 2, batch);
  auto reader = kv::FrameReader::Open(frame);
  REQUIRE(reader.ok());
  return kv::ReadUntrusted([&] {
    return kv::ReadReplicate((*reader)->Root<kv::wire::PeerMessage>(), max_key_bytes, out);
  });
}

}  // namespace

TEST_CASE("a replicated batch owns its keys and values after its frame is gone",
          "[replication]") {
  std::vector<std::string> keys = {"user000000000001", "k\0ey"s, std::string(300, 'x')};
  std::vector<std::string> values = {std::string(100, 'v'), "", "va\0lue"s};
  kv::ReplBatch batch(4);
  size_t bytes = 0;
  for (size_t i = 0; i < keys.size(); ++i) bytes += keys[i].size() + values[i].size();
  bytes += 3;  // the delete's key
  batch.Reserve(keys.size() + 1, bytes);
  for (size_t i = 0; i < keys.size(); ++i) batch.Add(keys[i], values[i], false, 100 + i);
  batch.Add("del", "", true, 200);

  kv::ReplicateMessage m;
  REQUIRE(RoundTrip(batch, &m).ok());
  CHECK(m.request_id == 9);
  CHECK(m.ring_version == 5);
  CHECK(m.primary.port == 4000);
  CHECK(m.primary.peer_port == 4001);
  CHECK(m.stream == 77);
  CHECK(m.seq == 4);
  CHECK(m.first_seq == 3);
  CHECK(m.acked_through == 2);
  REQUIRE(m.batch);
  CHECK(m.batch->seq == 4);
  REQUIRE(m.batch->entries.size() == 4);
  // The frame and its reader are destroyed by now; the views point into the batch.
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(m.batch->entries[i].key == keys[i]);
    CHECK(m.batch->entries[i].value == values[i]);
    CHECK_FALSE(m.batch->entries[i].deleted);
    CHECK(m.batch->entries[i].version == 100 + i);
  }
  CHECK(m.batch->entries[3].key == "del");
  CHECK(m.batch->entries[3].deleted);
  CHECK(m.batch->entries[3].value.empty());
  CHECK(m.batch->entries[3].version == 200);

  std::vector<kv::WriteOp> ops = kv::OpsOf(*m.batch);
  REQUIRE(ops.size() == 4);
  CHECK(ops[1].key == keys[1]);
  CHECK(ops[2].value == values[2]);
  CHECK(ops[3].is_delete);
}

TEST_CASE("a batch larger than the encoder's scratch segment round-trips", "[replication]") {
  kv::ReplBatch batch(1);
  const size_t n = 2000;  // about 250 KiB: well past the 64 KiB first segment
  batch.Reserve(n, n * (17 + 100));  // 17-byte keys
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) {
    std::string key = "user" + std::to_string(1000000000000 + i);
    batch.Add(key, std::string(100, static_cast<char>('a' + i % 26)), false, i + 1);
    keys.push_back(key);
  }
  for (int round = 0; round < 2; ++round) {  // the scratch is clean for the next message
    kv::ReplicateMessage m;
    REQUIRE(RoundTrip(batch, &m).ok());
    REQUIRE(m.batch->entries.size() == n);
    for (size_t i = 0; i < n; i += 97) {
      CHECK(m.batch->entries[i].key == keys[i]);
      CHECK(m.batch->entries[i].value == std::string(100, static_cast<char>('a' + i % 26)));
      CHECK(m.batch->entries[i].version == i + 1);
    }
  }
}

TEST_CASE("a replica refuses replicated keys that are empty or too long", "[replication]") {
  for (std::string key : {""s, std::string(33, 'k')}) {
    kv::ReplBatch batch(1);
    batch.Reserve(2, 4 + key.size() + 2);
    batch.Add("ok", "v1", false, 1);
    batch.Add(key, "v2", false, 2);
    kv::ReplicateMessage m;
    kv::Status s = RoundTrip(batch, &m, 32);
    CHECK(s.IsInvalidArgument());
    CHECK_THAT(s.message(), Catch::Contains(std::to_string(key.size()) + " bytes"));
  }
}

TEST_CASE("a batch refuses to be filled past the room reserved for it", "[replication]") {
  kv::ReplBatch batch(1);
  batch.Reserve(2, 10);
  batch.Add("key1", "val1", false, 1);
  CHECK_THROWS_AS(batch.Add("key2", "val2", false, 2), std::logic_error);
  CHECK_THROWS_AS(batch.Reserve(4, 100), std::logic_error);
  REQUIRE(batch.entries.size() == 1);  // what was added still reads back
  CHECK(batch.entries[0].key == "key1");
  CHECK(batch.entries[0].value == "val1");
}
