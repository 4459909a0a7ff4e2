// ZeroMQ framing of the client protocol, the one place it is written down.
//
//   client DEALER -> node ROUTER:   [Requests]           (exactly one frame)
//   node ROUTER sees:               [identity][Requests]
//   node ROUTER -> client DEALER:   [identity][Replies]  (client sees [Replies])
//
// A Requests or Replies frame is one or more Cap'n Proto messages of kv.capnp
// back to back, each in the standard (unpacked) stream framing; its segment
// table delimits it (PackedReader/PackedWriter in schema/wire.h). A frame of
// one message is the plain form every client may keep using. Clients pack the
// requests they issue in one turn of their loop (kvbench does; the shell
// sends one at a time); a node packs the replies it has for one client in
// one turn of its loop, so every client must read every message of a reply
// frame. Requests in one frame are taken in order, as if sent one by one,
// and each gets its own Reply, matched by request id; replies may arrive in
// any order and in any grouping. A node answers a message that is not a
// valid Request of the current protocol version with bad_request (request id
// 0 when it could not be read); a message that cannot be delimited ends its
// frame (what follows it is not read). A message with more frames than
// expected is answered with bad_request too; a message the node cannot reply
// to (no identity) is dropped with a log line. A packed frame stays under
// kMaxPackedBytes unless it holds a single larger message.
#pragma once

#include <cstddef>
#include <vector>
#include <zmq.hpp>

namespace kv {

// Senders start a new frame rather than grow one past this size (a single
// message larger than it travels alone).
constexpr size_t kMaxPackedBytes = 64 * 1024;

// Receives one multipart message. Keeps at most max_frames frames in *frames
// and discards the rest, returning the total number of frames the message had
// (0 when nothing was waiting, with flags = dontwait).
inline size_t RecvMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>* frames,
                            size_t max_frames, zmq::recv_flags flags = zmq::recv_flags::none) {
  frames->clear();
  size_t total = 0;
  zmq::message_t part;
  if (!socket.recv(part, flags)) return 0;
  for (;;) {
    ++total;
    bool more = part.more();
    if (frames->size() < max_frames) frames->push_back(std::move(part));
    if (!more) break;
    part = zmq::message_t();
    (void)socket.recv(part, zmq::recv_flags::none);  // the rest of a message is already here
  }
  return total;
}

}  // namespace kv
