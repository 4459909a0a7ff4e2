// ZeroMQ framing of the client protocol, the one place it is written down.
//
//   client DEALER -> node ROUTER:   [Request]            (exactly one frame)
//   node ROUTER sees:               [identity][Request]
//   node ROUTER -> client DEALER:   [identity][Reply]    (client sees [Reply])
//
// Request and Reply are single-segment-or-more Cap'n Proto messages in the
// standard (unpacked) stream framing, defined in kv.capnp. A node answers a
// frame that is not a valid Request of the current protocol version with
// bad_request (request id 0 when it could not be read); a message with more
// frames than expected is answered with bad_request too; a message the node
// cannot reply to (no identity) is dropped with a log line.
#pragma once

#include <cstddef>
#include <vector>
#include <zmq.hpp>

namespace kv {

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
