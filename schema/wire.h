// Encoding and decoding of the client protocol (kv.capnp) to and from ZeroMQ
// frames. A frame holds one message or several packed back to back (each in
// the standard stream framing: segment table, then segments, a whole number
// of 8-byte words), so a batch of requests or replies travels as one ZeroMQ
// message (see schema/framing.h). Decoding treats every frame as untrusted:
// size, alignment, segment table, traversal and nesting limits and the
// protocol version are all checked, and any failure comes back as a Status,
// never an exception.
#pragma once

#include <capnp/common.h>
#include <capnp/serialize.h>

#include <functional>
#include <memory>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "control.capnp.h"
#include "kv.capnp.h"
#include "schema/status.h"

namespace kv {

using WireStatus = wire::Status;

// The status word the shell prints, e.g. "put_success".
const char* StatusWord(WireStatus status);
std::optional<WireStatus> StatusFromWord(std::string_view word);
// True for the words that mean the operation did what was asked.
bool IsSuccess(WireStatus status);

enum class Op { kPut, kGet, kDelete, kKeyrange, kKeyrangeRead };
const char* OpName(Op op);

// A request as plain fields. When produced by DecodeRequest the views point
// into the frame (or the scratch buffer) and live as long as it does.
struct Request {
  uint64_t request_id = 0;
  uint64_t ring_version = 0;
  Op op = Op::kGet;
  std::string_view key;
  std::string_view value;
  bool stale_ok = false;  // get: a replica may answer (may miss recent writes)
  // get: need not wait for this connection's unacknowledged writes of its key
  // (Request.unordered in schema/kv.capnp).
  bool unordered = false;
};

// A reply as plain fields; same lifetime rule as Request.
struct Reply {
  uint64_t request_id = 0;
  WireStatus status = WireStatus::BAD_REQUEST;
  std::string_view key;
  std::string_view value;
  std::string_view reason;
  std::string_view metadata;
  uint64_t ring_version = 0;
  uint16_t notify_port = 0;  // the node's notification XPUB port (0 = none)
};

// Scratch space used when a frame is not 8-byte aligned; reuse it across calls.
using DecodeScratch = std::vector<capnp::word>;

// Generic helpers for any Cap'n Proto message in one frame (control plane,
// peer protocol). FrameReader validates the frame on construction with the
// untrusted-input limits; its Root<T>() may still throw kj::Exception on a
// bad pointer, so callers read fields inside a try block (see
// ReadUntrusted). The frame must outlive the reader. Owned by one thread.
class FrameReader {
 public:
  static Result<std::unique_ptr<FrameReader>> Open(const zmq::message_t& frame);

  // An empty reader for Reset; Root() needs a successful Reset first.
  FrameReader() = default;
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Reads `frame` from now on, instead of the frame before, keeping this
  // reader's scratch: a loop that reuses one reader allocates nothing per
  // message (an unaligned frame is copied into the scratch, grown as needed).
  // On an error the reader is empty again.
  [[nodiscard]] Status Reset(const zmq::message_t& frame);

  template <typename T>
  typename T::Reader Root() {
    return reader_->getRoot<T>();
  }

 private:
  DecodeScratch scratch_;
  std::optional<capnp::FlatArrayMessageReader> reader_;
};

// Runs fn (which reads from a FrameReader) and turns a kj::Exception thrown
// by a malformed message into InvalidArgument.
Status ReadUntrusted(const std::function<Status()>& fn);

// Serializes a builder into one frame.
zmq::message_t ToFrame(capnp::MessageBuilder& builder);

// Bytes as Cap'n Proto Data and back, without copying (the view lives as long
// as what it points into).
capnp::Data::Reader ToCapnpData(std::string_view bytes);
std::string_view FromCapnpData(capnp::Data::Reader data);

zmq::message_t EncodeRequest(const Request& request);
zmq::message_t EncodeReply(const Reply& reply);

// Decode the first message of a frame. On failure *request_id holds the
// request id if it could be read (else 0), so the caller can still answer
// bad_request to the right request.
Status DecodeRequest(const zmq::message_t& frame, DecodeScratch& scratch, Request* out,
                     uint64_t* request_id);
Status DecodeReply(const zmq::message_t& frame, DecodeScratch& scratch, Reply* out);

// Builds one packed frame out of any number of Requests or Replies (do not
// mix the two in one frame). Reusable: Take() empties it and keeps its buffer.
// Not thread-safe.
class PackedWriter {
 public:
  void Add(const Request& request);
  void Add(const Reply& reply);
  size_t count() const { return count_; }
  size_t bytes() const { return words_.size() * sizeof(capnp::word); }
  bool empty() const { return count_ == 0; }
  // The frame of everything added since the last Take (or Clear).
  zmq::message_t Take();
  // The same frame, leaving everything in place (for a send that may fail).
  zmq::message_t Frame() const;
  void Clear();

 private:
  void Append(capnp::MessageBuilder& builder);
  std::vector<capnp::word> words_;
  size_t count_ = 0;
};

// Reads the messages of one packed frame in order. Views handed out point
// into the frame (or scratch) and live as long as both do. After a message
// that cannot be read the rest of the frame cannot be delimited either: the
// call returns InvalidArgument and done() is true. Not thread-safe.
class PackedReader {
 public:
  PackedReader(const zmq::message_t& frame, DecodeScratch& scratch);
  bool done() const { return error_.ok() && rest_.size() == 0; }
  // Messages delimited so far (read or not).
  size_t decoded() const { return decoded_; }
  // NotFound when the frame has no more messages.
  Status NextRequest(Request* out, uint64_t* request_id);
  Status NextReply(Reply* out);

 private:
  Result<kj::ArrayPtr<const capnp::word>> NextMessage();
  Status error_;                              // the frame itself was unreadable
  kj::ArrayPtr<const capnp::word> rest_;      // what is left to read
  size_t decoded_ = 0;
};

}  // namespace kv
