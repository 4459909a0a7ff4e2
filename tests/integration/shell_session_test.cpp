// kvclient as a real process against a real standalone kvnode on 127.0.0.1:
// scripted sessions, one-shot exit codes, and timeouts when the node is gone.
// Routing through a broker is in client_routing_test.cpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

using kvtest::Bin;

namespace {

// A TCP port on 127.0.0.1 that accepts connections into its backlog and never
// speaks: to a ZeroMQ peer, a node that is gone. Closed on destruction.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0) close(fd_);
  }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace

using kvtest::NodeProcess;
using kvtest::Run;
using kvtest::TempDir;

namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Shell(uint16_t port, std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {Bin("kvclient"), "-bh", "127.0.0.1", "-bp",
                                   std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

TEST_CASE("a scripted session prints one seed-style line per command and goes on after errors",
          "[shell][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  const std::string script =
      "put k1 first\n"
      "put k1 second\n"
      "get k1\n"
      "put spaced  two  inner spaces and a trailing one \n"
      "get spaced\n"
      "\n"
      "frobnicate k1\n"
      "get\n"
      "delete k1\n"
      "get k1\n"
      "delete k1\n"
      "put spaced\n"
      "get spaced\n"
      "keyrange\n"
      "help\n"
      "quit\n"
      "get k1\n";
  auto result = Run(Shell(node.port()), script);
  CHECK(result.exit_status == 0);
  auto lines = Lines(result.out);
  REQUIRE(lines.size() == 15);
  CHECK(lines[0] == "put_success k1");
  CHECK(lines[1] == "put_update k1");
  CHECK(lines[2] == "get_success k1 second");
  CHECK(lines[3] == "put_success spaced");
  CHECK(lines[4] == "get_success spaced  two  inner spaces and a trailing one ");
  CHECK(lines[5].rfind("error: unknown command 'frobnicate'", 0) == 0);
  CHECK(lines[6].rfind("error: wrong number of arguments", 0) == 0);
  CHECK(lines[7] == "delete_success k1");
  CHECK(lines[8] == "get_error k1");
  CHECK(lines[9] == "delete_error k1");
  CHECK(lines[10] == "delete_success spaced");  // put without a value deletes
  CHECK(lines[11] == "get_error spaced");
  CHECK(lines[12].rfind("keyrange_success ", 0) == 0);
  CHECK(lines[12].find(",127.0.0.1:" + std::to_string(node.port()) + ";") != std::string::npos);
  CHECK(lines[13].rfind("commands: ", 0) == 0);
  CHECK(lines[14] == "bye");
  CHECK(result.err.empty());  // no prompt, no logs at the default level
}

TEST_CASE("the shell connects and disconnects on command", "[shell][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  const std::string port = std::to_string(node.port());
  auto result =
      Run({Bin("kvclient")}, "get k\nconnect 127.0.0.1 " + port + "\nput k v\ndisconnect\nget k\n");
  CHECK(result.exit_status == 0);
  auto lines = Lines(result.out);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "error: not connected (use connect <host> <port>)");
  CHECK(lines[1] == "connected 127.0.0.1:" + port);
  CHECK(lines[2] == "put_success k");
  CHECK(lines[3] == "disconnected");
  CHECK(lines[4] == "error: not connected (use connect <host> <port>)");
}

TEST_CASE("one-shot commands exit 0 on a success word, 1 on another reply, 2 on misuse",
          "[shell][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());

  auto put = Run(Shell(node.port(), {"put", "k", "a", "b"}));
  CHECK(put.exit_status == 0);
  CHECK(put.out == "put_success k\n");
  auto get = Run(Shell(node.port(), {"get", "k"}));
  CHECK(get.exit_status == 0);
  CHECK(get.out == "get_success k a b\n");
  auto missing = Run(Shell(node.port(), {"get", "missing"}));
  CHECK(missing.exit_status == 1);
  CHECK(missing.out == "get_error missing\n");
  auto unknown = Run(Shell(node.port(), {"fetch", "k"}));
  CHECK(unknown.exit_status == 2);
  CHECK(unknown.out.rfind("error: unknown command", 0) == 0);
  auto unconnected = Run({Bin("kvclient"), "get", "k"});
  CHECK(unconnected.exit_status == 2);
  CHECK(unconnected.out.rfind("error: not connected", 0) == 0);
  auto bad_flag = Run({Bin("kvclient"), "--no-such-flag"});
  CHECK(bad_flag.exit_status == 2);
}

TEST_CASE("help lists the flags and every command", "[shell][integration]") {
  auto help = Run({Bin("kvclient"), "-h"});
  CHECK(help.exit_status == 0);
  for (const char* word : {"-bh", "-bp", "-ll", "--timeout-ms", "--retry-budget-ms",
                           "--broker-pub-port", "broker", "connect", "disconnect", "put", "get",
                           "delete", "keyrange_read", "logLevel", "help", "quit"}) {
    INFO(word);
    CHECK(help.out.find(word) != std::string::npos);
  }
}

TEST_CASE("commands to a killed node give up with a clear message instead of hanging",
          "[shell][integration]") {
  // A dead node's port, held by a listener that never answers: the port of a
  // node killed here could be taken by a server of a test running alongside
  // (ctest -j2), which then answered the shell.
  SilentListener dead;
  REQUIRE(dead.port() != 0);
  const uint16_t port = dead.port();
  // Nothing answers the probe either: the shell still starts, and treats the
  // address as a node that may come up. Gets retry for the budget; puts are
  // never resent blindly, since a lost reply may hide an applied write.
  const std::vector<std::string> flags = {"--timeout-ms", "500", "--retry-budget-ms", "1000"};
  auto result = Run(Shell(port, flags), "get k\nput k v\nhelp\n", std::chrono::seconds(20));
  CHECK(result.exit_status == 0);
  auto lines = Lines(result.out);
  REQUIRE(lines.size() == 3);
  const std::string no_reply = "no reply from 127.0.0.1:" + std::to_string(port) + " within 500 ms";
  CHECK(lines[0] == "error: gave up after 1 s: " + no_reply);
  CHECK(lines[1] == "error: " + no_reply + "; outcome unknown: the put may have been applied");
  CHECK(lines[2].rfind("commands: ", 0) == 0);

  std::vector<std::string> one_shot_args = flags;
  one_shot_args.insert(one_shot_args.end(), {"get", "k"});
  auto one_shot = Run(Shell(port, one_shot_args), "", std::chrono::seconds(20));
  CHECK(one_shot.exit_status == 1);
  CHECK(one_shot.out == "error: gave up after 1 s: " + no_reply + "\n");
}
