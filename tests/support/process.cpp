#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kvtest {

std::string Bin(const std::string& name) { return std::string(KV_BIN_DIR) + "/" + name; }

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kvtest-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (std::getenv("KVTEST_KEEP") != nullptr) return;  // keep logs for debugging
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

pid_t Spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd, int stderr_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(stdin_fd, 0);
    dup2(stdout_fd, 1);
    dup2(stderr_fd, 2);
    // Own process group, so a stray signal to the test's group does not reach it.
    setpgid(0, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int DecodeWait(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Process::Process(std::vector<std::string> argv, const std::string& log_path,
                 std::optional<std::string> stdin_data)
    : log_path_(log_path) {
  int out = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out < 0) throw std::runtime_error("cannot open " + log_path);
  int in = -1;
  if (stdin_data) {
    std::string in_path = log_path + ".stdin";
    std::ofstream(in_path, std::ios::binary) << *stdin_data;
    in = open(in_path.c_str(), O_RDONLY);
  } else {
    in = open("/dev/null", O_RDONLY);
  }
  pid_ = Spawn(argv, in, out, out);
  close(in);
  close(out);
}

Process::~Process() {
  if (running()) Kill9();
}

bool Process::running() {
  if (exit_status_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = DecodeWait(status);
    return false;
  }
  return r == 0;
}

void Process::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

std::optional<int> Process::Wait(std::chrono::milliseconds deadline) {
  WaitFor([&] { return !running(); }, deadline);
  return exit_status_;
}

void Process::Kill9() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) exit_status_ = DecodeWait(status);
}

RunResult Run(const std::vector<std::string>& argv, const std::string& stdin_data,
              std::chrono::milliseconds deadline) {
  TempDir dir;
  std::string in_path = dir / "stdin", out_path = dir / "stdout", err_path = dir / "stderr";
  std::ofstream(in_path, std::ios::binary) << stdin_data;
  int in = open(in_path.c_str(), O_RDONLY);
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = Spawn(argv, in, out, err);
  close(in);
  close(out);
  close(err);
  RunResult result;
  int status = 0;
  bool done = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, deadline);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  result.exit_status = DecodeWait(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

NodeProcess::NodeProcess(const std::string& data_dir, const std::string& work_dir,
                         std::vector<std::string> extra_flags) {
  static int counter = 0;
  std::string tag = std::to_string(getpid()) + "-" + std::to_string(++counter);
  std::string port_file = work_dir + "/node-" + tag + ".port";
  std::vector<std::string> argv = {Bin("kvnode"), "-a", "127.0.0.1", "-p", "0", "-d", data_dir,
                                   "--port-file", port_file};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  process_ = std::make_unique<Process>(argv, work_dir + "/node-" + tag + ".log");
  WaitFor(
      [&] {
        std::string text = ReadFile(port_file);
        if (text.empty() || text.back() != '\n') return !process_->running();
        std::istringstream in(text);  // "CLIENT PEER"
        int client = 0, peer = 0;
        in >> client >> peer;
        port_ = static_cast<uint16_t>(client);
        peer_port_ = static_cast<uint16_t>(peer);
        return true;
      },
      std::chrono::seconds(15));
}

}  // namespace kvtest
