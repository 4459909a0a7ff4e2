#include "schema/wire.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <array>
#include <cstring>

namespace kv {
namespace {

struct WordEntry {
  WireStatus status;
  const char* word;
};

constexpr std::array<WordEntry, 14> kWords = {{
    {WireStatus::PUT_SUCCESS, "put_success"},
    {WireStatus::PUT_UPDATE, "put_update"},
    {WireStatus::PUT_ERROR, "put_error"},
    {WireStatus::GET_SUCCESS, "get_success"},
    {WireStatus::GET_ERROR, "get_error"},
    {WireStatus::DELETE_SUCCESS, "delete_success"},
    {WireStatus::DELETE_ERROR, "delete_error"},
    {WireStatus::SERVER_NOT_RESPONSIBLE, "server_not_responsible"},
    {WireStatus::SERVER_WRITE_LOCK, "server_write_lock"},
    {WireStatus::SERVER_STOPPED, "server_stopped"},
    {WireStatus::BAD_REQUEST, "bad_request"},
    {WireStatus::OVERLOADED, "overloaded"},
    {WireStatus::KEYRANGE_SUCCESS, "keyrange_success"},
    {WireStatus::KEYRANGE_READ_SUCCESS, "keyrange_read_success"},
}};

// First segment for builders: most messages fit, so encoding does not malloc.
// MallocMessageBuilder zeroes it again when it is destroyed.
constexpr size_t kScratchWords = 512;
thread_local std::array<capnp::word, kScratchWords> tls_first_segment{};

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string_view AsView(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

std::string_view AsView(capnp::Text::Reader t) { return {t.cStr(), t.size()}; }

zmq::message_t SerializeBuilder(capnp::MessageBuilder& builder) {
  size_t bytes = capnp::computeSerializedSizeInWords(builder) * sizeof(capnp::word);
  zmq::message_t msg(bytes);
  kj::ArrayOutputStream out(kj::arrayPtr(static_cast<kj::byte*>(msg.data()), bytes));
  capnp::writeMessage(out, builder);
  return msg;
}

// Returns the frame as aligned words, copying into scratch only when needed.
Result<kj::ArrayPtr<const capnp::word>> AlignedWords(const zmq::message_t& frame,
                                                     DecodeScratch& scratch) {
  size_t size = frame.size();
  if (size == 0) return Status::InvalidArgument("empty frame");
  if (size % sizeof(capnp::word) != 0) {
    return Status::InvalidArgument("frame size " + std::to_string(size) +
                                   " is not a whole number of 8-byte words (truncated?)");
  }
  size_t words = size / sizeof(capnp::word);
  auto addr = reinterpret_cast<uintptr_t>(frame.data());
  if (addr % alignof(capnp::word) == 0) {
    return kj::arrayPtr(static_cast<const capnp::word*>(frame.data()), words);
  }
  scratch.resize(words);
  std::memcpy(scratch.data(), frame.data(), size);
  return kj::arrayPtr(static_cast<const capnp::word*>(scratch.data()), words);
}

capnp::ReaderOptions UntrustedOptions(size_t words) {
  capnp::ReaderOptions options;
  // Reading every field once traverses about the message's own size; readers
  // may touch a field a few times. A bound proportional to the size stops
  // amplification attacks (pointers aliasing one large object).
  options.traversalLimitInWords = 4 * words + 64;
  options.nestingLimit = 8;
  return options;
}

}  // namespace

Result<std::unique_ptr<FrameReader>> FrameReader::Open(const zmq::message_t& frame) {
  auto r = std::make_unique<FrameReader>();
  if (Status s = r->Reset(frame); !s.ok()) return s;
  return r;
}

Status FrameReader::Reset(const zmq::message_t& frame) {
  reader_.reset();  // before the scratch it may read is overwritten
  auto words = AlignedWords(frame, scratch_);
  if (!words.ok()) return words.status();
  return ReadUntrusted([&] {
    reader_.emplace(*words, UntrustedOptions(words->size()));
    return Status::Ok();
  });
}

Status ReadUntrusted(const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const kj::Exception& e) {
    return Status::InvalidArgument(std::string("malformed message: ") +
                                   e.getDescription().cStr());
  }
}

zmq::message_t ToFrame(capnp::MessageBuilder& builder) { return SerializeBuilder(builder); }

const char* StatusWord(WireStatus status) {
  for (const auto& e : kWords) {
    if (e.status == status) return e.word;
  }
  return "unknown_status";
}

std::optional<WireStatus> StatusFromWord(std::string_view word) {
  for (const auto& e : kWords) {
    if (word == e.word) return e.status;
  }
  return std::nullopt;
}

bool IsSuccess(WireStatus status) {
  switch (status) {
    case WireStatus::PUT_SUCCESS:
    case WireStatus::PUT_UPDATE:
    case WireStatus::GET_SUCCESS:
    case WireStatus::DELETE_SUCCESS:
    case WireStatus::KEYRANGE_SUCCESS:
    case WireStatus::KEYRANGE_READ_SUCCESS:
      return true;
    default:
      return false;
  }
}

const char* OpName(Op op) {
  switch (op) {
    case Op::kPut: return "put";
    case Op::kGet: return "get";
    case Op::kDelete: return "delete";
    case Op::kKeyrange: return "keyrange";
    case Op::kKeyrangeRead: return "keyrange_read";
  }
  return "unknown";
}

capnp::Data::Reader ToCapnpData(std::string_view bytes) { return AsData(bytes); }
std::string_view FromCapnpData(capnp::Data::Reader data) { return AsView(data); }

namespace {

void FillRequest(const Request& r, wire::Request::Builder root) {
  root.setVersion(wire::PROTOCOL_VERSION);
  root.setRequestId(r.request_id);
  root.setRingVersion(r.ring_version);
  switch (r.op) {
    case Op::kPut: {
      auto kv = root.initPut();
      kv.setKey(AsData(r.key));
      kv.setValue(AsData(r.value));
      break;
    }
    case Op::kGet: root.setGet(AsData(r.key)); break;
    case Op::kDelete: root.setDelete(AsData(r.key)); break;
    case Op::kKeyrange: root.setKeyrange(); break;
    case Op::kKeyrangeRead: root.setKeyrangeRead(); break;
  }
  if (r.stale_ok) root.setStaleOk(true);
  if (r.unordered) root.setUnordered(true);
}

void FillReply(const Reply& r, wire::Reply::Builder root) {
  root.setVersion(wire::PROTOCOL_VERSION);
  root.setRequestId(r.request_id);
  root.setStatus(r.status);
  root.setRingVersion(r.ring_version);
  if (r.notify_port != 0) root.setNotifyPort(r.notify_port);
  if (!r.key.empty()) root.setKey(AsData(r.key));
  if (!r.value.empty()) root.setValue(AsData(r.value));
  if (!r.reason.empty()) root.setReason(capnp::Text::Reader(r.reason.data(), r.reason.size()));
  if (!r.metadata.empty()) {
    root.setMetadata(capnp::Text::Reader(r.metadata.data(), r.metadata.size()));
  }
}

// Decodes one message that is exactly `words` long (already delimited).
Status DecodeRequestWords(kj::ArrayPtr<const capnp::word> words, Request* out,
                          uint64_t* request_id) {
  *request_id = 0;
  try {
    capnp::FlatArrayMessageReader reader(words, UntrustedOptions(words.size()));
    auto root = reader.getRoot<wire::Request>();
    *request_id = root.getRequestId();
    if (root.getVersion() != wire::PROTOCOL_VERSION) {
      return Status::InvalidArgument("unsupported protocol version " +
                                     std::to_string(root.getVersion()) + " (expected " +
                                     std::to_string(wire::PROTOCOL_VERSION) + ")");
    }
    out->request_id = root.getRequestId();
    out->ring_version = root.getRingVersion();
    out->key = {};
    out->value = {};
    out->stale_ok = root.getStaleOk();
    out->unordered = root.getUnordered();
    switch (root.which()) {
      case wire::Request::PUT: {
        auto kv = root.getPut();
        out->op = Op::kPut;
        out->key = AsView(kv.getKey());
        out->value = AsView(kv.getValue());
        break;
      }
      case wire::Request::GET:
        out->op = Op::kGet;
        out->key = AsView(root.getGet());
        break;
      case wire::Request::DELETE:
        out->op = Op::kDelete;
        out->key = AsView(root.getDelete());
        break;
      case wire::Request::KEYRANGE: out->op = Op::kKeyrange; break;
      case wire::Request::KEYRANGE_READ: out->op = Op::kKeyrangeRead; break;
      default: return Status::InvalidArgument("unknown operation");
    }
  } catch (const kj::Exception& e) {
    return Status::InvalidArgument(std::string("malformed message: ") +
                                   e.getDescription().cStr());
  }
  return Status::Ok();
}

Status DecodeReplyWords(kj::ArrayPtr<const capnp::word> words, Reply* out) {
  try {
    capnp::FlatArrayMessageReader reader(words, UntrustedOptions(words.size()));
    auto root = reader.getRoot<wire::Reply>();
    if (root.getVersion() != wire::PROTOCOL_VERSION) {
      return Status::InvalidArgument("unsupported protocol version " +
                                     std::to_string(root.getVersion()));
    }
    out->request_id = root.getRequestId();
    out->status = root.getStatus();
    out->key = AsView(root.getKey());
    out->value = AsView(root.getValue());
    out->reason = AsView(root.getReason());
    out->metadata = AsView(root.getMetadata());
    out->ring_version = root.getRingVersion();
    out->notify_port = root.getNotifyPort();
  } catch (const kj::Exception& e) {
    return Status::InvalidArgument(std::string("malformed reply: ") + e.getDescription().cStr());
  }
  return Status::Ok();
}

}  // namespace

zmq::message_t EncodeRequest(const Request& r) {
  capnp::MallocMessageBuilder builder(kj::arrayPtr(tls_first_segment.data(), kScratchWords));
  FillRequest(r, builder.initRoot<wire::Request>());
  return SerializeBuilder(builder);
}

zmq::message_t EncodeReply(const Reply& r) {
  capnp::MallocMessageBuilder builder(kj::arrayPtr(tls_first_segment.data(), kScratchWords));
  FillReply(r, builder.initRoot<wire::Reply>());
  return SerializeBuilder(builder);
}

Status DecodeRequest(const zmq::message_t& frame, DecodeScratch& scratch, Request* out,
                     uint64_t* request_id) {
  PackedReader reader(frame, scratch);
  return reader.NextRequest(out, request_id);
}

Status DecodeReply(const zmq::message_t& frame, DecodeScratch& scratch, Reply* out) {
  PackedReader reader(frame, scratch);
  return reader.NextReply(out);
}

void PackedWriter::Add(const Request& request) {
  capnp::MallocMessageBuilder builder(kj::arrayPtr(tls_first_segment.data(), kScratchWords));
  FillRequest(request, builder.initRoot<wire::Request>());
  Append(builder);
}

void PackedWriter::Add(const Reply& reply) {
  capnp::MallocMessageBuilder builder(kj::arrayPtr(tls_first_segment.data(), kScratchWords));
  FillReply(reply, builder.initRoot<wire::Reply>());
  Append(builder);
}

void PackedWriter::Append(capnp::MessageBuilder& builder) {
  const size_t words = capnp::computeSerializedSizeInWords(builder);
  const size_t at = words_.size();
  words_.resize(at + words);
  kj::ArrayOutputStream out(
      kj::arrayPtr(reinterpret_cast<kj::byte*>(words_.data() + at), words * sizeof(capnp::word)));
  capnp::writeMessage(out, builder);
  ++count_;
}

zmq::message_t PackedWriter::Frame() const { return zmq::message_t(words_.data(), bytes()); }

zmq::message_t PackedWriter::Take() {
  zmq::message_t frame = Frame();
  Clear();
  return frame;
}

void PackedWriter::Clear() {
  words_.clear();  // keeps its capacity for the next frame
  count_ = 0;
}

PackedReader::PackedReader(const zmq::message_t& frame, DecodeScratch& scratch) {
  auto words = AlignedWords(frame, scratch);
  if (!words.ok()) {
    error_ = words.status();
    return;
  }
  rest_ = *words;
}

Result<kj::ArrayPtr<const capnp::word>> PackedReader::NextMessage() {
  if (!error_.ok()) {
    Status s = error_;
    error_ = Status::Ok();
    rest_ = {};
    return s;
  }
  if (rest_.size() == 0) return Status::NotFound("no more messages in the frame");
  // The segment table says how long this message is; a message claiming more
  // than the frame holds is truncated, and nothing after it can be delimited.
  const size_t words = capnp::expectedSizeInWordsFromPrefix(rest_);
  if (words > rest_.size()) {
    size_t have = rest_.size();
    rest_ = {};
    return Status::InvalidArgument("truncated message: its segment table needs " +
                                   std::to_string(words) + " words, the frame has " +
                                   std::to_string(have));
  }
  auto message = rest_.slice(0, words);
  rest_ = rest_.slice(words, rest_.size());
  ++decoded_;
  return message;
}

Status PackedReader::NextRequest(Request* out, uint64_t* request_id) {
  *request_id = 0;
  auto message = NextMessage();
  if (!message.ok()) return message.status();
  Status s = DecodeRequestWords(*message, out, request_id);
  // A message that does not parse may have a wrong length too: stop there.
  if (!s.ok()) rest_ = {};
  return s;
}

Status PackedReader::NextReply(Reply* out) {
  auto message = NextMessage();
  if (!message.ok()) return message.status();
  Status s = DecodeReplyWords(*message, out);
  if (!s.ok()) rest_ = {};
  return s;
}

}  // namespace kv
