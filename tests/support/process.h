// Test support: start the project's binaries as child processes on 127.0.0.1,
// wait on observable conditions with deadlines, and stop only the processes we
// started, by PID. Not thread-safe; one test owns its processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvtest {

// Path of a built binary, e.g. Bin("kvnode").
std::string Bin(const std::string& name);

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls cond every few milliseconds until it is true or the deadline passes.
bool WaitFor(const std::function<bool()>& cond,
             std::chrono::milliseconds deadline = std::chrono::seconds(10));

std::string ReadFile(const std::string& path);

// A child process with stdout and stderr sent to a log file (stdin from
// /dev/null unless stdin_data is given). Killed with SIGKILL on destruction if
// still running.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& log_path,
          std::optional<std::string> stdin_data = std::nullopt);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit up to the deadline; returns the exit status (WEXITSTATUS,
  // or 128+signal), or nullopt if still running.
  std::optional<int> Wait(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  void Kill9();  // SIGKILL and reap
  std::string Log() const { return ReadFile(log_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string log_path_;
};

// Runs a command to completion (bounded by the deadline, killed after it),
// feeding stdin_data; returns exit status and combined stdout (stderr goes to
// a separate string).
struct RunResult {
  int exit_status = -1;
  std::string out;
  std::string err;
};
RunResult Run(const std::vector<std::string>& argv, const std::string& stdin_data = "",
              std::chrono::milliseconds deadline = std::chrono::seconds(30));

// A kvnode started on 127.0.0.1 with an ephemeral port (read from its
// --port-file once it listens). Extra flags are appended.
class NodeProcess {
 public:
  NodeProcess(const std::string& data_dir, const std::string& work_dir,
              std::vector<std::string> extra_flags = {});
  uint16_t port() const { return port_; }
  uint16_t peer_port() const { return peer_port_; }
  Process& process() { return *process_; }
  bool started() const { return port_ != 0; }

 private:
  std::unique_ptr<Process> process_;
  uint16_t port_ = 0;
  uint16_t peer_port_ = 0;
};

}  // namespace kvtest
