#include "schema/server_main.h"

#include "schema/logging.h"

namespace kv {

void AddLogFlags(FlagParser& flags, std::string* file, std::string* level) {
  flags.String({"-l", "--log-file"}, "FILE", "log file (default: stderr)", file);
  flags.String({"-ll", "--log-level"}, "LEVEL",
               "ALL|FINE|INFO|WARNING|SEVERE|OFF or trace|debug|info|warn|error|off", level);
}

std::optional<int> ParseServerFlags(const std::string& program, FlagParser& flags, int argc,
                                    char** argv, const std::function<Status()>& check) {
  Status s = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (s.ok() && !flags.positional().empty()) {
    s = Status::InvalidArgument("unexpected argument '" + flags.positional()[0] + "'");
  }
  if (s.ok() && check) s = check();
  if (!s.ok()) {
    std::cerr << program << ": " << s.message() << " (-h for help)\n";
    return 2;
  }
  return std::nullopt;
}

std::optional<int> StartLogging(const std::string& program, const std::string& file,
                                const std::string& level) {
  auto parsed = ParseLogLevel(level);
  if (!parsed.ok()) {
    std::cerr << program << ": " << parsed.status().message() << "\n";
    return 2;
  }
  Status s = SetupLogging(program, file, *parsed);
  if (!s.ok()) {
    std::cerr << program << ": " << s.message() << "\n";
    return 1;
  }
  return std::nullopt;
}

}  // namespace kv
