#include "kvclient/shell.h"

// clang-format off
#include <cstdio>  // libedit's readline.h uses FILE without including stdio.h
#include <editline/readline.h>
// clang-format on
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <istream>
#include <ostream>
#include <vector>

#include "schema/logging.h"

namespace kv::shell {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// Splits at runs of spaces and tabs.
std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !IsSpace(s[i])) ++i;
    if (i > start) words.push_back(s.substr(start, i - start));
  }
  return words;
}

struct Syntax {
  const char* name;  // lower case
  CommandKind kind;
  size_t args;        // exact number of arguments (put is special)
  const char* usage;  // shown on a wrong argument count
};

constexpr Syntax kSyntax[] = {
    {"connect", CommandKind::kConnect, 2, "connect <host> <port>"},
    {"disconnect", CommandKind::kDisconnect, 0, "disconnect"},
    {"put", CommandKind::kPut, 2, "put <key> <value>"},
    {"get", CommandKind::kGet, 1, "get [--any|--primary] <key>"},
    {"delete", CommandKind::kDelete, 1, "delete <key>"},
    {"keyrange", CommandKind::kKeyrange, 0, "keyrange"},
    {"keyrange_read", CommandKind::kKeyrangeRead, 0, "keyrange_read"},
    {"subscribe", CommandKind::kSubscribe, 1, "subscribe <key>"},
    {"unsubscribe", CommandKind::kUnsubscribe, 1, "unsubscribe <key>"},
    {"loglevel", CommandKind::kLogLevel, 1, "logLevel <level>"},
    {"set", CommandKind::kSet, 2, "set reads any|primary"},
    {"help", CommandKind::kHelp, 0, "help"},
    {"quit", CommandKind::kQuit, 0, "quit"},
};

Status Usage(const Syntax& syntax) {
  return Status::InvalidArgument(std::string("wrong number of arguments; usage: ") + syntax.usage);
}

Result<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::string message(text);  // built in place: GCC 12 misreports "lit" + string&&
    message += " is not a port number";
    return Status::InvalidArgument(std::move(message));
  }
  int port = std::atoi(std::string(text).c_str());
  if (port < 1 || port > 65535) {
    std::string message = "port ";
    message += text;
    message += " is out of range 1-65535";
    return Status::InvalidArgument(std::move(message));
  }
  return static_cast<uint16_t>(port);
}

// put: "put <key>[ <value>]"; the value keeps every byte after the one space.
Result<std::optional<Command>> ParsePut(const Syntax& syntax, std::string_view rest) {
  size_t i = 0;
  while (i < rest.size() && IsSpace(rest[i])) ++i;
  size_t key_start = i;
  while (i < rest.size() && !IsSpace(rest[i])) ++i;
  if (i == key_start) return Usage(syntax);
  Command command;
  command.key = std::string(rest.substr(key_start, i - key_start));
  std::string_view value = i < rest.size() ? rest.substr(i + 1) : std::string_view();
  if (value.empty()) {
    command.kind = CommandKind::kDelete;  // seed semantics: put without a value deletes
  } else {
    command.kind = CommandKind::kPut;
    command.value = std::string(value);
  }
  return std::optional<Command>(std::move(command));
}

// "--any" / "--primary" (any case), else nullopt.
std::optional<client::ReadMode> ReadModeFlag(std::string_view word) {
  std::string w = Lower(word);
  if (w == "--any") return client::ReadMode::kAny;
  if (w == "--primary") return client::ReadMode::kPrimary;
  return std::nullopt;
}

bool IsPlainNotFound(std::string_view reason) {
  return reason.empty() || Lower(reason).find("not found") != std::string::npos;
}

std::string WithKey(WireStatus status, std::string_view key) {
  std::string line = StatusWord(status);
  line += ' ';
  line += key;
  return line;
}

}  // namespace

Result<std::optional<Command>> ParseCommand(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  size_t i = 0;
  while (i < line.size() && IsSpace(line[i])) ++i;
  if (i == line.size()) return std::optional<Command>();
  size_t name_start = i;
  while (i < line.size() && !IsSpace(line[i])) ++i;
  std::string name = Lower(line.substr(name_start, i - name_start));
  std::string_view rest = line.substr(i);

  const Syntax* syntax = nullptr;
  for (const auto& s : kSyntax) {
    if (name == s.name) syntax = &s;
  }
  if (syntax == nullptr) {
    return Status::InvalidArgument("unknown command '" +
                                   std::string(line.substr(name_start, i - name_start)) +
                                   "' (type help)");
  }
  if (syntax->kind == CommandKind::kPut) return ParsePut(*syntax, rest);

  std::vector<std::string_view> args = Words(rest);
  Command command;
  command.kind = syntax->kind;
  if (syntax->kind == CommandKind::kGet && args.size() == 2) {
    command.read_mode = ReadModeFlag(args[0]);
    if (!command.read_mode) return Usage(*syntax);
    args.erase(args.begin());
  }
  if (args.size() != syntax->args) return Usage(*syntax);
  switch (syntax->kind) {
    case CommandKind::kConnect: {
      auto port = ParsePort(args[1]);
      if (!port.ok()) return port.status();
      command.host = std::string(args[0]);
      command.port = *port;
      break;
    }
    case CommandKind::kGet:
    case CommandKind::kDelete:
    case CommandKind::kSubscribe:
    case CommandKind::kUnsubscribe:
      command.key = std::string(args[0]);
      break;
    case CommandKind::kLogLevel:
      command.level = std::string(args[0]);
      break;
    case CommandKind::kSet: {
      std::string value = Lower(args[1]);
      if (Lower(args[0]) != "reads" || (value != "any" && value != "primary")) {
        return Status::InvalidArgument(std::string("no such setting; usage: ") + syntax->usage);
      }
      command.read_mode = value == "any" ? client::ReadMode::kAny : client::ReadMode::kPrimary;
      break;
    }
    default:
      break;
  }
  return std::optional<Command>(std::move(command));
}

bool NeedsConnection(CommandKind kind) {
  switch (kind) {
    case CommandKind::kPut:
    case CommandKind::kGet:
    case CommandKind::kDelete:
    case CommandKind::kKeyrange:
    case CommandKind::kKeyrangeRead:
    case CommandKind::kSubscribe:
    case CommandKind::kDisconnect:
      return true;
    default:
      return false;
  }
}

std::string FormatReply(std::string_view key, const client::KvReply& reply) {
  const WireStatus status = reply.status;
  switch (status) {
    case WireStatus::PUT_SUCCESS:
    case WireStatus::PUT_UPDATE:
    case WireStatus::DELETE_SUCCESS:
      return WithKey(status, key);
    case WireStatus::PUT_ERROR: {
      std::string line = WithKey(status, key);
      if (!reply.reason.empty()) line += " " + reply.reason;
      return line;
    }
    case WireStatus::GET_SUCCESS:
      return WithKey(status, key) + " " + reply.value;
    case WireStatus::GET_ERROR:
    case WireStatus::DELETE_ERROR: {
      std::string line = WithKey(status, key);
      if (!IsPlainNotFound(reply.reason)) line += " " + reply.reason;
      return line;
    }
    case WireStatus::KEYRANGE_SUCCESS:
    case WireStatus::KEYRANGE_READ_SUCCESS:
      return std::string(StatusWord(status)) + " " + reply.metadata;
    case WireStatus::BAD_REQUEST: {
      std::string line = StatusWord(status);
      if (!reply.reason.empty()) line += " " + reply.reason;
      return line;
    }
    case WireStatus::SERVER_NOT_RESPONSIBLE:
    case WireStatus::SERVER_WRITE_LOCK:
    case WireStatus::SERVER_STOPPED:
    case WireStatus::OVERLOADED:
      return StatusWord(status);
  }
  return StatusWord(status);
}

std::string FormatError(const Status& status) { return "error: " + status.message(); }

std::vector<std::string> FormatEvent(const client::KeyEvent& event) {
  std::vector<std::string> lines;
  if (event.missed_before) lines.push_back("notification_gap " + event.key);
  if (event.kind == client::KeyEvent::Kind::kUpdate) {
    lines.push_back("notification_update " + event.key + " " + event.value);
  } else {
    lines.push_back("notification_delete " + event.key);
  }
  return lines;
}

std::string HelpText(bool one_line) {
  if (one_line) {
    return "commands: connect <host> <port> | disconnect | put <key> <value> | put <key> "
           "(deletes) | get [--any|--primary] <key> | delete <key> | keyrange | keyrange_read | "
           "subscribe <key> | unsubscribe <key> | set reads any|primary | logLevel <level> | "
           "help | quit";
  }
  return "commands:\n"
         "  connect <host> <port>  connect to a node, or to a cluster's broker (replaces any\n"
         "                         current connection); keys then go to the node owning them\n"
         "  disconnect             close the connection\n"
         "  put <key> <value>      store value: the rest of the line after one space, "
         "spaces kept\n"
         "  put <key>              delete key (as in the seed system)\n"
         "  get <key>              print the value of key (from its primary: linearizable,\n"
         "                         unless set reads any)\n"
         "  get --any <key>        read key from any node holding a copy (keyrange_read): may\n"
         "                         miss writes acknowledged recently; --primary forces the\n"
         "                         primary\n"
         "  delete <key>           remove key\n"
         "  keyrange               print the write ranges: <from>,<to>,<ip>:<port>;... (from\n"
         "                         the node, or from the broker's ring)\n"
         "  keyrange_read          print the read ranges (primary plus replicas)\n"
         "  subscribe <key>        print notification_update <key> <value> and\n"
         "                         notification_delete <key> as the key changes, wherever it\n"
         "                         lives (notification_gap <key> first when changes were missed)\n"
         "  unsubscribe <key>      stop those notifications\n"
         "  set reads any|primary  how a plain get reads (default primary)\n"
         "  logLevel <level>       ALL|FINE|INFO|WARNING|SEVERE|OFF (or trace..off); logs "
         "go to stderr\n"
         "  help                   show this list\n"
         "  quit                   leave the shell";
}

Shell::Shell(client::KvClient* client, bool interactive)
    : client_(client), interactive_(interactive) {}

Outcome Shell::ExecuteLine(std::string_view line) {
  auto parsed = ParseCommand(line);
  if (!parsed.ok()) return Outcome{FormatError(parsed.status()), Outcome::Kind::kUsageError};
  if (!parsed->has_value()) return Outcome{};
  return Execute(**parsed);
}

Outcome Shell::Execute(const Command& command) {
  using Kind = Outcome::Kind;
  if (NeedsConnection(command.kind) && !client_->connected()) {
    return Outcome{FormatError(Status::Unavailable("not connected (use connect <host> <port>)")),
                   Kind::kFailure};
  }
  switch (command.kind) {
    case CommandKind::kConnect: {
      Status s = client_->Connect(command.host, command.port);
      if (!s.ok()) return Outcome{FormatError(s), Kind::kFailure};
      return Outcome{"connected " + client_->address(), Kind::kSuccess};
    }
    case CommandKind::kDisconnect:
      client_->Disconnect();
      return Outcome{"disconnected", Kind::kSuccess};
    case CommandKind::kLogLevel: {
      auto level = ParseLogLevel(command.level);
      if (!level.ok()) return Outcome{FormatError(level.status()), Kind::kUsageError};
      spdlog::default_logger()->set_level(*level);
      return Outcome{"loglevel " + Upper(command.level), Kind::kSuccess};
    }
    case CommandKind::kSet:
      client_->set_read_mode(*command.read_mode);
      return Outcome{std::string("reads ") + client::ReadModeName(client_->read_mode()),
                     Kind::kSuccess};
    case CommandKind::kHelp:
      return Outcome{HelpText(!interactive_), Kind::kSuccess};
    case CommandKind::kQuit:
      return Outcome{"bye", Kind::kSuccess, /*quit=*/true};
    case CommandKind::kSubscribe:
    case CommandKind::kUnsubscribe:
      return ExecuteSubscription(command);
    default:
      return ExecuteKeyCommand(command);
  }
}

Outcome Shell::ExecuteSubscription(const Command& command) {
  client::Subscriber& subs = client_->subscriptions();
  if (command.kind == CommandKind::kUnsubscribe) {
    Status s = subs.Unsubscribe(command.key);
    if (s.IsNotFound()) s = Status::NotFound("not subscribed to " + command.key);
    if (!s.ok()) return Outcome{FormatError(s), Outcome::Kind::kFailure};
    return Outcome{"unsubscribe_success " + command.key, Outcome::Kind::kSuccess};
  }
  auto state = subs.Subscribe(command.key, client_->request_timeout());
  if (!state.ok()) return Outcome{FormatError(state.status()), Outcome::Kind::kFailure};
  return Outcome{"subscribe_success " + command.key, Outcome::Kind::kSuccess};
}

bool Shell::subscribed() const { return client_->subscriptions().size() > 0; }

std::vector<std::string> Shell::TakeNotifications(std::chrono::milliseconds wait) {
  std::vector<std::string> lines;
  if (!subscribed()) return lines;
  client::Subscriber& subs = client_->subscriptions();
  subs.Poll(wait);
  while (auto event = subs.Next()) {
    for (auto& line : FormatEvent(*event)) lines.push_back(std::move(line));
  }
  return lines;
}

zmq::pollitem_t Shell::NotificationsPollItem() { return client_->subscriptions().PollItem(); }

Outcome Shell::ExecuteKeyCommand(const Command& command) {
  Result<client::KvReply> reply = Status::InvalidArgument("not a key command");
  switch (command.kind) {
    case CommandKind::kPut:
      reply = client_->Put(command.key, command.value);
      break;
    case CommandKind::kGet:
      reply = client_->Get(command.key, command.read_mode.value_or(client_->read_mode()));
      break;
    case CommandKind::kDelete:
      reply = client_->Delete(command.key);
      break;
    case CommandKind::kKeyrange:
      reply = client_->Keyrange();
      break;
    case CommandKind::kKeyrangeRead:
      reply = client_->KeyrangeRead();
      break;
    default:
      break;
  }
  if (!reply.ok()) return Outcome{FormatError(reply.status()), Outcome::Kind::kFailure};
  return Outcome{FormatReply(command.key, *reply),
                 IsSuccess(reply->status) ? Outcome::Kind::kSuccess : Outcome::Kind::kFailure};
}

int RunScript(Shell& shell, std::istream& in, std::ostream& out) {
  std::string line;
  while (std::getline(in, line)) {
    Outcome outcome = shell.ExecuteLine(line);
    if (!outcome.text.empty()) out << outcome.text << '\n' << std::flush;
    if (outcome.quit) break;
  }
  return 0;
}

namespace {

// How long a loop waits for input before it looks at the notifications and
// the ring again, while keys are subscribed.
constexpr std::chrono::milliseconds kNotifyTick{200};

void PrintLines(const std::vector<std::string>& lines, std::ostream& out) {
  for (const auto& line : lines) out << line << '\n';
  out << std::flush;
}

// Waits until fd is readable or, while subscribed, something arrives for the
// subscriptions or the tick passes. True when fd is readable.
bool WaitForInput(Shell& shell, int fd) {
  std::vector<zmq::pollitem_t> items{{nullptr, fd, ZMQ_POLLIN, 0}};
  const bool subscribed = shell.subscribed();
  if (subscribed) items.push_back(shell.NotificationsPollItem());
  try {
    zmq::poll(items.data(), items.size(), subscribed ? kNotifyTick : std::chrono::milliseconds(-1));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    return false;
  }
  return (items[0].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0;
}

// The shell and stream of the running interactive loop. libedit's getc hook
// takes no context pointer, so ReadCharOrNotify reaches them through this.
struct Interactive {
  Shell* shell = nullptr;
  std::ostream* out = nullptr;
};
Interactive g_interactive;

// libedit's character source while reading a line: waits for a key press and,
// meanwhile, prints notifications above the prompt. The prompt line is wiped,
// the notifications printed, and libedit draws the prompt and the half-typed
// line (with its cursor) again below them. -1 at end of input.
int ReadCharOrNotify(FILE* in) {
  const int fd = fileno(in);
  for (;;) {
    const bool readable = WaitForInput(*g_interactive.shell, fd);
    std::vector<std::string> lines = g_interactive.shell->TakeNotifications();
    if (!lines.empty()) {
      *g_interactive.out << "\r\x1b[K";
      PrintLines(lines, *g_interactive.out);
      rl_forced_update_display();
    }
    if (!readable) continue;
    unsigned char c = 0;
    ssize_t n = read(fd, &c, 1);
    if (n == 1) return c;
    if (n == 0 || errno != EINTR) return -1;
  }
}

}  // namespace

int RunInteractive(Shell& shell, std::ostream& out) {
  g_interactive = Interactive{&shell, &out};
  rl_getc_function = ReadCharOrNotify;  // before the first readline(), which installs it
  for (;;) {
    char* raw = readline("kvclient> ");
    if (raw == nullptr) {  // end of input (Ctrl-D)
      out << '\n' << std::flush;
      return 0;
    }
    std::string line(raw);
    std::free(raw);
    if (line.find_first_not_of(" \t") != std::string::npos) add_history(line.c_str());
    Outcome outcome = shell.ExecuteLine(line);
    if (!outcome.text.empty()) out << outcome.text << '\n' << std::flush;
    if (outcome.quit) return 0;
  }
}

int RunScript(Shell& shell, int fd, std::ostream& out) {
  std::string pending;  // read, not yet a whole line
  char buf[1 << 14];
  for (bool eof = false; !eof;) {
    if (WaitForInput(shell, fd)) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof = true;
        if (!pending.empty()) pending.push_back('\n');  // a last line without a newline
      } else {
        pending.append(buf, static_cast<size_t>(n));
      }
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        Outcome outcome = shell.ExecuteLine(std::string_view(pending).substr(start, nl - start));
        if (!outcome.text.empty()) out << outcome.text << '\n' << std::flush;
        if (outcome.quit) return 0;
        PrintLines(shell.TakeNotifications(), out);
      }
      pending.erase(0, start);
    }
    PrintLines(shell.TakeNotifications(), out);
  }
  return 0;
}

int StreamNotifications(Shell& shell, std::ostream& out) {
  while (shell.subscribed()) PrintLines(shell.TakeNotifications(kNotifyTick), out);
  return 0;
}

}  // namespace kv::shell
