#include "schema/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <cctype>

namespace kv {

Result<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  using L = spdlog::level::level_enum;
  if (n == "all" || n == "trace" || n == "finest" || n == "finer") return L::trace;
  if (n == "debug" || n == "fine" || n == "config") return L::debug;
  if (n == "info") return L::info;
  if (n == "warn" || n == "warning") return L::warn;
  if (n == "error" || n == "err" || n == "severe") return L::err;
  if (n == "critical") return L::critical;
  if (n == "off") return L::off;
  return Status::InvalidArgument("unknown log level '" + std::string(name) +
                                 "' (use ALL, FINE, INFO, WARNING, SEVERE, OFF or "
                                 "trace, debug, info, warn, error, critical, off)");
}

Status SetupLogging(const std::string& process, const std::string& file,
                    spdlog::level::level_enum level) {
  try {
    std::shared_ptr<spdlog::logger> logger;
    if (file.empty()) {
      logger = std::make_shared<spdlog::logger>(
          process, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } else {
      logger = std::make_shared<spdlog::logger>(
          process, std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false));
    }
    logger->set_level(level);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    spdlog::flush_every(std::chrono::seconds(1));
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError(std::string("cannot open log: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace kv
