// Logging setup shared by every process: spdlog to stderr or to a file, with
// levels given either as spdlog names (trace, debug, info, warn, error,
// critical, off) or as the seed system's names (ALL, FINEST, FINER, FINE,
// CONFIG, INFO, WARNING, SEVERE, OFF), case-insensitive.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "schema/status.h"

namespace kv {

Result<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// Installs the default logger named after the process. An empty file means
// stderr. Flushes on warnings and above, and every second otherwise.
Status SetupLogging(const std::string& process, const std::string& file,
                    spdlog::level::level_enum level);

}  // namespace kv
