// The kvclient shell: parsing of command lines into Commands, formatting of
// replies into the one-line outputs scripts depend on ("put_success k",
// "get_success k v", "error: ..."), and the interactive (libedit) and
// scripted loops. Parsing and formatting are pure functions. While keys are
// subscribed, both loops also wait on the notifications and print them as
// they come ("notification_update k v", "notification_delete k"): scripted,
// as lines of their own; interactive, above the prompt and the line being
// typed, which are then drawn again.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvclient/client.h"
#include "schema/status.h"

namespace kv::shell {

enum class CommandKind {
  kConnect,
  kDisconnect,
  kPut,
  kGet,
  kDelete,
  kKeyrange,
  kKeyrangeRead,
  kSubscribe,
  kUnsubscribe,
  kLogLevel,
  kSet,
  kHelp,
  kQuit,
};

// One parsed command line. Value type.
struct Command {
  CommandKind kind = CommandKind::kHelp;
  std::string host;   // connect
  uint16_t port = 0;  // connect
  std::string key;    // put, get, delete, subscribe, unsubscribe
  std::string value;  // put: the rest of the line after the key and one space
  std::string level;  // logLevel, as typed
  // get: "--any" / "--primary" before the key; nullopt = the shell's setting.
  // set reads: the new setting.
  std::optional<client::ReadMode> read_mode;
};

// Parses one line. Returns nullopt for a blank line, InvalidArgument for an
// unknown command or a wrong number of arguments. Command names are
// case-insensitive. "put <key> <value>": the value is everything after the
// single space that follows the key, inner and trailing spaces kept; "put
// <key>" with no (or an empty) value parses as a delete, as in the seed system.
// "get --any <key>" reads from any replica (stale-OK), "get --primary <key>"
// from the primary, "get <key>" as "set reads any|primary" last said.
Result<std::optional<Command>> ParseCommand(std::string_view line);

// True for the commands that need a connection to a node.
bool NeedsConnection(CommandKind kind);

// The one output line for a node's reply (without newline). `key` is the key
// the command was about; get_error/delete_error add the reason only when it is
// more than a plain "not found".
std::string FormatReply(std::string_view key, const client::KvReply& reply);

// "error: <message>".
std::string FormatError(const Status& status);

// The lines for one notification: "notification_update <key> <value>" or
// "notification_delete <key>", after "notification_gap <key>" when changes of
// the key may have been missed before it (the line after is then the key's
// current state).
std::vector<std::string> FormatEvent(const client::KeyEvent& event);

// The command list: several lines for a terminal, one line for scripts.
std::string HelpText(bool one_line);

// What one command did.
struct Outcome {
  enum class Kind { kSuccess, kFailure, kUsageError };
  std::string text;  // what to print, without the final newline; empty for a blank line
  Kind kind = Kind::kSuccess;
  bool quit = false;
};

// Runs commands against a KvClient. Not thread-safe; borrows the client,
// which must outlive it.
class Shell {
 public:
  Shell(client::KvClient* client, bool interactive);

  Outcome ExecuteLine(std::string_view line);
  Outcome Execute(const Command& command);

  // True while any key is subscribed.
  bool subscribed() const;
  // Reads the notifications that have arrived, waiting up to `wait` for the
  // first; returns their lines.
  std::vector<std::string> TakeNotifications(std::chrono::milliseconds wait = {});
  // The subscription socket, for a poll loop (only while subscribed()).
  zmq::pollitem_t NotificationsPollItem();

 private:
  Outcome ExecuteKeyCommand(const Command& command);
  Outcome ExecuteSubscription(const Command& command);

  client::KvClient* client_;
  bool interactive_;
};

// Reads commands from `in` until end of input or quit: no prompt, one output
// line per non-empty command line, flushed after each. Returns the exit status.
int RunScript(Shell& shell, std::istream& in, std::ostream& out);
// The same from a file descriptor (stdin), printing notifications as their
// own lines while it waits for input.
int RunScript(Shell& shell, int fd, std::ostream& out);
// Prints notifications until the process is stopped (one-shot subscribe).
int StreamNotifications(Shell& shell, std::ostream& out);

// The terminal loop: prompt "kvclient> ", line editing and history (libedit).
int RunInteractive(Shell& shell, std::ostream& out);

}  // namespace kv::shell
