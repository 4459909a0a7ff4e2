// kvbench's cluster target against an in-process fake node on a 127.0.0.1
// ephemeral port (tests/support/fake_kv_peers.h): what its requests carry.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "kvclient/target.h"
#include "tests/support/fake_kv_peers.h"

using kv::Op;
using kv::WireStatus;
using kvtest::Answer;
using kvtest::Seen;
using kvtest::ServedNode;
using namespace std::chrono_literals;

namespace {

// Sends one get and one put through a cluster target to a fake standalone
// node and returns what the node saw of them.
std::vector<Seen> SendGetAndPut(bool ordered_reads) {
  std::shared_ptr<const kv::Ring> ring;
  ServedNode node([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange)
      return Answer{WireStatus::KEYRANGE_SUCCESS, "", ring->KeyrangeText()};
    if (s.op == Op::kKeyrangeRead) {
      return Answer{WireStatus::KEYRANGE_READ_SUCCESS, "", ring->KeyrangeReadText()};
    }
    if (s.op == Op::kGet) return Answer{WireStatus::GET_SUCCESS, "v"};
    if (s.op == Op::kPut) return Answer{WireStatus::PUT_SUCCESS};
    return Answer{WireStatus::BAD_REQUEST};
  });
  ring = kvtest::MakeRing(1, {node.node_address()}, 1);
  kv::bench::TargetOptions options;
  options.lanes = 1;
  options.request_timeout = 2s;
  options.ordered_reads = ordered_reads;
  auto target = kv::bench::MakeClusterTarget("127.0.0.1", node.port(), options);
  REQUIRE(target.ok());
  // The report says when gets were ordered (not kvbench's default).
  CHECK(((*target)->Describe().find("(ordered gets)") != std::string::npos) == ordered_reads);
  std::vector<kv::bench::TargetReply> replies;
  // One at a time: the fake reads one request per frame.
  (*target)->Send(0, 1, kv::bench::Action::kGet, "key", "");
  for (int i = 0; i < 100 && replies.size() < 1; ++i) (*target)->Poll(20ms, &replies);
  (*target)->Send(0, 2, kv::bench::Action::kPut, "key", "value");
  for (int i = 0; i < 100 && replies.size() < 2; ++i) (*target)->Poll(20ms, &replies);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].ok);
  CHECK(replies[1].ok);
  std::vector<Seen> data;
  for (const Seen& s : node.seen()) {
    if (s.op == Op::kGet || s.op == Op::kPut) data.push_back(s);
  }
  return data;
}

}  // namespace

TEST_CASE("kvbench's gets go unordered unless --ordered, and its puts never do",
          "[kvbench][cluster]") {
  auto unordered = SendGetAndPut(/*ordered_reads=*/false);
  REQUIRE(unordered.size() == 2);
  CHECK(unordered[0].op == Op::kGet);
  CHECK(unordered[0].unordered);
  CHECK_FALSE(unordered[0].stale_ok);
  CHECK(unordered[1].op == Op::kPut);
  CHECK_FALSE(unordered[1].unordered);

  auto ordered = SendGetAndPut(/*ordered_reads=*/true);
  REQUIRE(ordered.size() == 2);
  CHECK_FALSE(ordered[0].unordered);
  CHECK_FALSE(ordered[1].unordered);
}
