// The shell's pure parts: parsing command lines and formatting replies into the
// seed system's one-line outputs. No terminal, no node.
#include "kvclient/shell.h"

#include <catch2/catch.hpp>
#include <string>

using kv::WireStatus;
using kv::client::KvReply;
using kv::shell::CommandKind;
using kv::shell::FormatReply;
using kv::shell::ParseCommand;

namespace {

kv::shell::Command Parse(const std::string& line) {
  auto parsed = ParseCommand(line);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->has_value());
  return **parsed;
}

std::string ParseError(const std::string& line) {
  auto parsed = ParseCommand(line);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().IsInvalidArgument());
  return parsed.status().message();
}

KvReply ReplyWith(WireStatus status, std::string value = "", std::string reason = "",
                  std::string metadata = "") {
  KvReply r;
  r.status = status;
  r.value = std::move(value);
  r.reason = std::move(reason);
  r.metadata = std::move(metadata);
  return r;
}

}  // namespace

TEST_CASE("a put value is the rest of the line after one space, inner and trailing spaces kept",
          "[shell]") {
  auto c = Parse("put greeting hello   big  world  ");
  CHECK(c.kind == CommandKind::kPut);
  CHECK(c.key == "greeting");
  CHECK(c.value == "hello   big  world  ");
  CHECK(Parse("put k  leading").value == " leading");
  CHECK(Parse("put k\tv").value == "v");
}

TEST_CASE("put with a key and no value parses as a delete, as in the seed system", "[shell]") {
  auto c = Parse("put k");
  CHECK(c.kind == CommandKind::kDelete);
  CHECK(c.key == "k");
  // The one separating space alone leaves an empty value, which also deletes.
  CHECK(Parse("put k ").kind == CommandKind::kDelete);
}

TEST_CASE("every command parses with its arguments", "[shell]") {
  auto connect = Parse("connect 127.0.0.1 5153");
  CHECK(connect.kind == CommandKind::kConnect);
  CHECK(connect.host == "127.0.0.1");
  CHECK(connect.port == 5153);
  CHECK(Parse("disconnect").kind == CommandKind::kDisconnect);
  auto get = Parse("get k");
  CHECK(get.kind == CommandKind::kGet);
  CHECK(get.key == "k");
  auto del = Parse("delete k");
  CHECK(del.kind == CommandKind::kDelete);
  CHECK(del.key == "k");
  CHECK(Parse("keyrange").kind == CommandKind::kKeyrange);
  CHECK(Parse("keyrange_read").kind == CommandKind::kKeyrangeRead);
  auto level = Parse("logLevel FINE");
  CHECK(level.kind == CommandKind::kLogLevel);
  CHECK(level.level == "FINE");
  CHECK(Parse("help").kind == CommandKind::kHelp);
  CHECK(Parse("quit").kind == CommandKind::kQuit);
}

TEST_CASE("command names ignore case, and blanks around words are tolerated", "[shell]") {
  CHECK(Parse("GET k").kind == CommandKind::kGet);
  CHECK(Parse("loglevel info").kind == CommandKind::kLogLevel);
  CHECK(Parse("   get    k   ").key == "k");
  CHECK(Parse("get k\r\n").key == "k");
}

TEST_CASE("a blank line is no command at all", "[shell]") {
  for (const char* line : {"", "   ", "\t", "\r\n"}) {
    auto parsed = ParseCommand(line);
    REQUIRE(parsed.ok());
    CHECK_FALSE(parsed->has_value());
  }
}

TEST_CASE("a wrong number of arguments is an error that shows the usage", "[shell]") {
  CHECK(ParseError("get") == "wrong number of arguments; usage: get [--any|--primary] <key>");
  CHECK(ParseError("get a b") == "wrong number of arguments; usage: get [--any|--primary] <key>");
  CHECK(ParseError("delete") == "wrong number of arguments; usage: delete <key>");
  CHECK(ParseError("put") == "wrong number of arguments; usage: put <key> <value>");
  CHECK(ParseError("connect localhost") ==
        "wrong number of arguments; usage: connect <host> <port>");
  CHECK(ParseError("keyrange now") == "wrong number of arguments; usage: keyrange");
  CHECK(ParseError("quit now") == "wrong number of arguments; usage: quit");
  CHECK(ParseError("logLevel") == "wrong number of arguments; usage: logLevel <level>");
}

TEST_CASE("get takes --any or --primary before the key and set reads chooses the default",
          "[shell]") {
  CHECK_FALSE(Parse("get k").read_mode.has_value());
  auto any = Parse("get --any k");
  CHECK(any.key == "k");
  CHECK(any.read_mode == kv::client::ReadMode::kAny);
  CHECK(Parse("GET --PRIMARY k").read_mode == kv::client::ReadMode::kPrimary);
  CHECK(Parse("get --any").key == "--any");  // a key that looks like a flag, alone
  CHECK(Parse("set reads any").read_mode == kv::client::ReadMode::kAny);
  CHECK(Parse("SET Reads Primary").read_mode == kv::client::ReadMode::kPrimary);
  CHECK(ParseError("set reads often") == "no such setting; usage: set reads any|primary");
  CHECK(ParseError("set writes any") == "no such setting; usage: set reads any|primary");
  CHECK(ParseError("set reads") == "wrong number of arguments; usage: set reads any|primary");

  kv::client::KvClient client;
  kv::shell::Shell shell(&client, /*interactive=*/false);
  CHECK(shell.ExecuteLine("set reads any").text == "reads any");
  CHECK(client.read_mode() == kv::client::ReadMode::kAny);
  CHECK(shell.ExecuteLine("set reads primary").text == "reads primary");
  CHECK(client.read_mode() == kv::client::ReadMode::kPrimary);
}

TEST_CASE("an unknown command is an error that points to help", "[shell]") {
  CHECK(ParseError("gett k") == "unknown command 'gett' (type help)");
}

TEST_CASE("connect refuses a port that is not a number from 1 to 65535", "[shell]") {
  CHECK(ParseError("connect h x") == "x is not a port number");
  CHECK(ParseError("connect h 0") == "port 0 is out of range 1-65535");
  CHECK(ParseError("connect h 65536") == "port 65536 is out of range 1-65535");
}

TEST_CASE("each status word is printed the way the seed shell printed it", "[shell]") {
  CHECK(FormatReply("k", ReplyWith(WireStatus::PUT_SUCCESS)) == "put_success k");
  CHECK(FormatReply("k", ReplyWith(WireStatus::PUT_UPDATE)) == "put_update k");
  CHECK(FormatReply("k", ReplyWith(WireStatus::PUT_ERROR, "", "value too large")) ==
        "put_error k value too large");
  CHECK(FormatReply("k", ReplyWith(WireStatus::GET_SUCCESS, "a  b ")) == "get_success k a  b ");
  CHECK(FormatReply("k", ReplyWith(WireStatus::GET_ERROR)) == "get_error k");
  CHECK(FormatReply("k", ReplyWith(WireStatus::DELETE_SUCCESS)) == "delete_success k");
  CHECK(FormatReply("k", ReplyWith(WireStatus::DELETE_ERROR)) == "delete_error k");
  CHECK(FormatReply("", ReplyWith(WireStatus::KEYRANGE_SUCCESS, "", "", "A,B,127.0.0.1:1;")) ==
        "keyrange_success A,B,127.0.0.1:1;");
  CHECK(FormatReply("", ReplyWith(WireStatus::KEYRANGE_READ_SUCCESS, "", "", "A,B,h:1;")) ==
        "keyrange_read_success A,B,h:1;");
  CHECK(FormatReply("k", ReplyWith(WireStatus::SERVER_NOT_RESPONSIBLE)) ==
        "server_not_responsible");
  CHECK(FormatReply("k", ReplyWith(WireStatus::SERVER_WRITE_LOCK)) == "server_write_lock");
  CHECK(FormatReply("k", ReplyWith(WireStatus::SERVER_STOPPED)) == "server_stopped");
  CHECK(FormatReply("k", ReplyWith(WireStatus::OVERLOADED, "", "queue full")) == "overloaded");
  CHECK(FormatReply("k", ReplyWith(WireStatus::BAD_REQUEST, "", "key is empty")) ==
        "bad_request key is empty");
}

TEST_CASE("get_error and delete_error add a reason only when it is more than not found",
          "[shell]") {
  CHECK(FormatReply("k", ReplyWith(WireStatus::GET_ERROR, "", "key not found")) == "get_error k");
  CHECK(FormatReply("k", ReplyWith(WireStatus::GET_ERROR, "", "disk I/O error")) ==
        "get_error k disk I/O error");
  CHECK(FormatReply("k", ReplyWith(WireStatus::DELETE_ERROR, "", "disk I/O error")) ==
        "delete_error k disk I/O error");
}

TEST_CASE("errors are one line that starts with error:", "[shell]") {
  CHECK(kv::shell::FormatError(kv::Status::Timeout("no reply from h:1 within 5 ms")) ==
        "error: no reply from h:1 within 5 ms");
}

TEST_CASE("help for scripts is one line naming every command", "[shell]") {
  std::string help = kv::shell::HelpText(/*one_line=*/true);
  CHECK(help.find('\n') == std::string::npos);
  for (const char* name : {"connect", "disconnect", "put", "get", "delete", "keyrange",
                           "keyrange_read", "logLevel", "set reads", "--any", "help", "quit"}) {
    CHECK(help.find(name) != std::string::npos);
    CHECK(kv::shell::HelpText(false).find(name) != std::string::npos);
  }
}

TEST_CASE("without a connection, key commands fail with not connected and the shell goes on",
          "[shell]") {
  kv::client::KvClient client;
  kv::shell::Shell shell(&client, /*interactive=*/false);
  auto get = shell.ExecuteLine("get k");
  CHECK(get.text == "error: not connected (use connect <host> <port>)");
  CHECK(get.kind == kv::shell::Outcome::Kind::kFailure);
  CHECK_FALSE(get.quit);
  auto unknown = shell.ExecuteLine("frobnicate");
  CHECK(unknown.kind == kv::shell::Outcome::Kind::kUsageError);
  CHECK(shell.ExecuteLine("").text.empty());
  auto level = shell.ExecuteLine("logLevel off");
  CHECK(level.text == "loglevel OFF");
  CHECK(shell.ExecuteLine("logLevel LOUD").text.rfind("error: unknown log level", 0) == 0);
  auto quit = shell.ExecuteLine("quit");
  CHECK(quit.text == "bye");
  CHECK(quit.quit);
}
