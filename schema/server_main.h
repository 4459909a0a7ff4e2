// What kvbroker, kvecs and kvnode do around their server object, in one place:
// the log flags, parsing with -h and a refusal of stray arguments, logging
// setup, then Start and Run with SIGINT/SIGTERM asking the server to stop.
// Errors before logging exists go to stderr as "PROGRAM: message"; exit codes
// are 0 after -h, 2 for bad flags, 1 when the server cannot start or fails.
#pragma once

#include <spdlog/spdlog.h>

#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "schema/flags.h"
#include "schema/status.h"
#include "schema/stop_signals.h"

namespace kv {

// -l/--log-file and -ll/--log-level.
void AddLogFlags(FlagParser& flags, std::string* file, std::string* level);

// Parses argv, then runs `check` (cross-flag rules, derived values) if given.
// Returns the exit code when main should return now: 0 after printing -h,
// 2 after printing what is wrong with the flags.
std::optional<int> ParseServerFlags(const std::string& program, FlagParser& flags, int argc,
                                    char** argv, const std::function<Status()>& check = {});

// Installs the process's logger; the exit code (2: bad level, 1: the log file
// cannot be opened) when main should return now.
std::optional<int> StartLogging(const std::string& program, const std::string& file,
                                const std::string& level);

// Starts `server` (anything with Start(), Run() and a signal-safe
// RequestStop()), lets SIGINT/SIGTERM stop it, and runs it to the end.
// Call kv::BlockStopSignals() first thing in main (see stop_signals.h).
template <typename Server>
int StartAndRun(const std::string& program, Server& server) {
  static Server* running = nullptr;  // for the stop handler only
  Status s = server.Start();
  if (!s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    std::cerr << program << ": cannot start: " << s.ToString() << "\n";
    return 1;
  }
  running = &server;
  InstallStopHandler([](int) {
    if (running != nullptr) running->RequestStop();
  });
  s = server.Run();
  running = nullptr;
  if (!s.ok()) {
    spdlog::critical("stopped with error: {}", s.ToString());
    return 1;
  }
  return 0;
}

}  // namespace kv
