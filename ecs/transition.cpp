#include "ecs/transition.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <map>
#include <optional>

#include "ecs_state.capnp.h"
#include "schema/wire.h"

namespace kv {

namespace {

using capnp::byte;

void SetAddress(wire::NodeAddress::Builder out, const NodeAddress& a) {
  out.setHost(a.host);
  out.setPort(a.port);
  out.setPeerPort(a.peer_port);
}

NodeAddress GetAddress(wire::NodeAddress::Reader in) {
  auto host = in.getHost();
  return NodeAddress{std::string(host.cStr(), host.size()), in.getPort(), in.getPeerPort()};
}

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const byte*>(s.data()), s.size());
}

Result<Hash128> GetPosition(capnp::Data::Reader raw) {
  if (raw.size() != 16) {
    return Status::Corruption("a range bound has " + std::to_string(raw.size()) + " bytes, not 16");
  }
  return Hash128::FromBytes(std::string_view(reinterpret_cast<const char*>(raw.begin()), 16));
}

ecs_state::RequestKind ToState(RequestKind kind) {
  switch (kind) {
    case RequestKind::kJoin:
      return ecs_state::RequestKind::JOIN;
    case RequestKind::kLeave:
      return ecs_state::RequestKind::LEAVE;
    case RequestKind::kNodeFailed:
      return ecs_state::RequestKind::NODE_FAILED;
  }
  return ecs_state::RequestKind::JOIN;
}

std::optional<RequestKind> FromState(ecs_state::RequestKind kind) {
  switch (kind) {
    case ecs_state::RequestKind::JOIN:
      return RequestKind::kJoin;
    case ecs_state::RequestKind::LEAVE:
      return RequestKind::kLeave;
    case ecs_state::RequestKind::NODE_FAILED:
      return RequestKind::kNodeFailed;
  }
  return std::nullopt;
}

}  // namespace

const char* KindName(RequestKind kind) {
  switch (kind) {
    case RequestKind::kJoin:
      return "join";
    case RequestKind::kLeave:
      return "leave";
    case RequestKind::kNodeFailed:
      return "nodeFailed";
  }
  return "unknown";
}

std::string EncodeTransition(const TransitionRecord& record) {
  capnp::MallocMessageBuilder builder;
  auto root = builder.initRoot<ecs_state::Transition>();
  root.setFormatVersion(ecs_state::TRANSITION_FORMAT);
  record.target->ToCapnp(root.initTargetRing());
  auto transfers = root.initTransfers(static_cast<unsigned>(record.transfers.size()));
  for (unsigned i = 0; i < transfers.size(); ++i) {
    const Transfer& t = record.transfers[i];
    auto out = transfers[i];
    out.setTransferId(t.transfer_id);
    SetAddress(out.initSource(), t.source);
    SetAddress(out.initTarget(), t.target);
    out.setRepair(t.repair);
    auto ranges = out.initRanges(static_cast<unsigned>(t.ranges.size()));
    for (unsigned r = 0; r < ranges.size(); ++r) {
      ranges[r].setFrom(AsData(t.ranges[r].from.AsBytes()));
      ranges[r].setTo(AsData(t.ranges[r].to.AsBytes()));
    }
  }
  auto requesters = root.initRequesters(static_cast<unsigned>(record.requesters.size()));
  for (unsigned i = 0; i < requesters.size(); ++i) {
    const MembershipRequest& r = record.requesters[i];
    requesters[i].setClient(AsData(r.client));
    requesters[i].setRequestId(r.request_id);
    requesters[i].setKind(ToState(r.kind));
    SetAddress(requesters[i].initNode(), r.node);
  }
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<TransitionRecord> DecodeTransition(std::string_view bytes) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty()) {
    return Status::Corruption("transition record of " + std::to_string(bytes.size()) +
                              " bytes is not whole words");
  }
  // LMDB values carry no alignment guarantee.
  std::vector<capnp::word> words(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.data(), bytes.data(), bytes.size());
  TransitionRecord record;
  Status s = ReadUntrusted([&]() -> Status {
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
    auto root = reader.getRoot<ecs_state::Transition>();
    if (root.getFormatVersion() != ecs_state::TRANSITION_FORMAT) {
      return Status::Corruption("transition record format " +
                                std::to_string(root.getFormatVersion()) + ", expected " +
                                std::to_string(ecs_state::TRANSITION_FORMAT));
    }
    auto ring = Ring::FromCapnp(root.getTargetRing());
    if (!ring.ok()) return Status::Corruption("transition target ring: " + ring.status().message());
    record.target = *ring;
    for (auto t : root.getTransfers()) {
      Transfer transfer{t.getTransferId(), GetAddress(t.getSource()), GetAddress(t.getTarget()),
                        {}, t.getRepair()};
      for (auto r : t.getRanges()) {
        auto from = GetPosition(r.getFrom());
        if (!from.ok()) return from.status();
        auto to = GetPosition(r.getTo());
        if (!to.ok()) return to.status();
        transfer.ranges.push_back(HashRange{*from, *to});
      }
      record.transfers.push_back(std::move(transfer));
    }
    for (auto r : root.getRequesters()) {
      auto kind = FromState(r.getKind());
      if (!kind) return Status::Corruption("transition requester of an unknown kind");
      auto client = r.getClient();
      record.requesters.push_back(MembershipRequest{
          std::string(reinterpret_cast<const char*>(client.begin()), client.size()),
          r.getRequestId(), *kind, GetAddress(r.getNode())});
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    if (s.IsInvalidArgument()) return Status::Corruption("transition record: " + s.message());
    return s;
  }
  return record;
}

std::vector<Transfer> GroupMoves(const std::vector<Move>& moves, uint64_t* next_id,
                                 bool repair) {
  std::vector<Transfer> out;
  std::map<std::pair<std::string, std::string>, size_t> index;  // (source, target) -> out[i]
  for (const Move& m : moves) {
    auto key = std::make_pair(m.source.ToString(), m.target.ToString());
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, out.size()).first;
      out.push_back(Transfer{(*next_id)++, m.source, m.target, {}, repair});
    }
    out[it->second].ranges.push_back(m.range);
  }
  return out;
}

std::string NodesText(const std::vector<NodeAddress>& nodes) {
  std::string out;
  for (const auto& n : nodes) {
    if (!out.empty()) out += ' ';
    out += n.ToString();
  }
  return out.empty() ? "-" : out;
}

std::string RangeText(const HashRange& r) {
  std::string out = "(";  // not "(" + string: GCC 12 warns falsely (-Wrestrict)
  out += r.from.ToHex();
  out += ", ";
  out += r.to.ToHex();
  out += ']';
  return out;
}

std::string RangesText(const std::vector<HashRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) {
    if (!out.empty()) out += ' ';
    out += RangeText(r);
  }
  return out;
}

std::string TransferText(const Transfer& t) {
  return std::to_string(t.transfer_id) + " (" + t.source.ToString() + " -> " + t.target.ToString() +
         ")";
}

}  // namespace kv
