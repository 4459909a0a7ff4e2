// kvclient: the shell for a kvnode or a cluster (through its kvbroker; every
// key goes to its node). Interactive on a terminal (libedit),
// scripted when stdin is not a terminal, or one-shot when a command follows
// the flags. Flags fill ShellFlags; everything else lives in kvclient_lib.
#include <unistd.h>

#include <iostream>
#include <string>

#include "kvclient/client.h"
#include "kvclient/shell.h"
#include "schema/flags.h"
#include "schema/logging.h"

namespace {

// The command line of one kvclient process.
struct ShellFlags {
  std::string host;                   // -bh: node or broker to connect to at start ("" = none)
  uint16_t port = 0;                  // -bp: its client (node) or control (broker) port
  std::string log_level = "WARNING";  // -ll: spdlog to stderr
  int64_t timeout_ms = 3000;          // --timeout-ms: per-request timeout
  int64_t retry_budget_ms = 10000;    // --retry-budget-ms: how long a request may retry
  int64_t broker_pub_port = -1;       // --broker-pub-port: -1 = -bp + 1
  std::string reads = "primary";      // --reads: how get reads: primary (linearizable) or any
                                      //   replica (stale-OK; the shell's "set reads")
};

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr char kOneShotHelp[] =
    "\none-shot: kvclient -bh HOST -bp PORT <command> [args...] runs one command, prints its\n"
    "line and exits 0 on a success word, 1 on any other reply or error, 2 on a usage error.\n"
    "When stdin is not a terminal, commands are read one per line, without a prompt, and\n"
    "each prints exactly one line (errors start with \"error: \"); notifications of\n"
    "subscribed keys are printed as lines of their own until the end of input.\n"
    "kvclient -bh HOST -bp PORT subscribe <key> prints the key's notifications until stopped.\n";

int RunOneShot(kv::shell::Shell& shell, const kv::client::KvClient& client,
               const std::vector<std::string>& words) {
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + w;
  auto parsed = kv::shell::ParseCommand(line);
  if (!parsed.ok()) {
    std::cout << kv::shell::FormatError(parsed.status()) << std::endl;
    return kExitUsage;
  }
  const kv::shell::Command& command = **parsed;  // words is non-empty, so not blank
  if (kv::shell::NeedsConnection(command.kind) && !client.connected()) {
    std::cout << "error: not connected (pass -bh HOST -bp PORT)" << std::endl;
    return kExitUsage;
  }
  kv::shell::Outcome outcome = shell.Execute(command);
  std::cout << outcome.text << std::endl;
  // "kvclient ... subscribe <key>" prints its notifications until stopped.
  if (command.kind == kv::shell::CommandKind::kSubscribe &&
      outcome.kind == kv::shell::Outcome::Kind::kSuccess) {
    return kv::shell::StreamNotifications(shell, std::cout);
  }
  switch (outcome.kind) {
    case kv::shell::Outcome::Kind::kSuccess:
      return 0;
    case kv::shell::Outcome::Kind::kFailure:
      return kExitFailure;
    case kv::shell::Outcome::Kind::kUsageError:
      return kExitUsage;
  }
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  ShellFlags config;
  kv::FlagParser flags("kvclient",
                       "Shell for a kvnode or a cluster (via its kvbroker): put, get, delete and "
                       "keyrange.");
  flags.String({"-bh", "--host"}, "HOST", "node or broker to connect to at start (with -bp)",
               &config.host);
  flags.Port({"-bp", "--port"}, "client port of that node or control port of that broker",
             &config.port);
  flags.String({"-ll", "--log-level"}, "LEVEL",
               "ALL|FINE|INFO|WARNING|SEVERE|OFF or trace..off; logs go to stderr",
               &config.log_level);
  flags.Int({"--timeout-ms"}, "N", "how long to wait for each reply", &config.timeout_ms, 1,
            3'600'000);
  flags.Int({"--retry-budget-ms"}, "N",
            "how long a request may retry server_stopped, overloaded or a timed-out get",
            &config.retry_budget_ms, 0, 3'600'000);
  flags.Int({"--broker-pub-port"}, "PORT", "the broker's ring publisher (-1: -bp + 1)",
            &config.broker_pub_port, -1, 65535);
  flags.Choice({"--reads"},
               "how get reads: primary (linearizable) or any node holding a copy (may miss "
               "recent writes); get --any / --primary override it",
               &config.reads, {"primary", "any"});
  kv::Status parsed = flags.Parse(argc, argv, /*stop_at_positional=*/true);
  if (!parsed.ok()) {
    std::cerr << "kvclient: " << parsed.message() << std::endl;
    return kExitUsage;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage() << '\n' << kv::shell::HelpText(false) << '\n' << kOneShotHelp;
    return 0;
  }
  auto level = kv::ParseLogLevel(config.log_level);
  if (!level.ok()) {
    std::cerr << "kvclient: -ll: " << level.status().message() << std::endl;
    return kExitUsage;
  }
  if (kv::Status s = kv::SetupLogging("kvclient", "", *level); !s.ok()) {
    std::cerr << "kvclient: " << s.ToString() << std::endl;
    return kExitFailure;
  }
  if (config.host.empty() != (config.port == 0)) {
    std::cerr << "kvclient: -bh and -bp go together" << std::endl;
    return kExitUsage;
  }

  kv::client::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(config.timeout_ms);
  options.retry_budget = std::chrono::milliseconds(config.retry_budget_ms);
  options.broker_pub_port = static_cast<int>(config.broker_pub_port);
  options.read_mode = config.reads == "any" ? kv::client::ReadMode::kAny
                                            : kv::client::ReadMode::kPrimary;
  kv::client::KvClient client(options);
  if (!config.host.empty()) {
    if (kv::Status s = client.Connect(config.host, config.port); !s.ok()) {
      std::cout << kv::shell::FormatError(s) << std::endl;
      return kExitFailure;
    }
  }
  const std::vector<std::string>& words = flags.positional();
  const bool interactive = words.empty() && isatty(STDIN_FILENO);
  kv::shell::Shell shell(&client, interactive);
  if (!words.empty()) return RunOneShot(shell, client, words);
  if (interactive) {
    if (client.connected()) std::cout << "connected " << client.address() << std::endl;
    return kv::shell::RunInteractive(shell, std::cout);
  }
  return kv::shell::RunScript(shell, STDIN_FILENO, std::cout);
}
