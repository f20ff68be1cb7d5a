// Runs a shell command as a user would and captures what it printed: the tool tests' way of calling the
// binaries.
#pragma once

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

namespace tl::testing {

struct CommandResult {
  int exit_code = -1;    // -1 when the command did not exit normally
  bool crashed = false;  // ended by a signal
  std::string output;    // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) r.output += buffer;
  const int status = ::pclose(pipe);
  r.crashed = WIFSIGNALED(status);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Starts `command` in the background with its output in `log` and returns its pid.
inline pid_t start_command(const std::string& command, const std::string& log) {
  return static_cast<pid_t>(
      std::stol(run_command("sh -c '" + command + " > " + log + " 2>&1 & echo $!'").output));
}

// Polls `condition` every millisecond for up to `seconds`; whether it became true.
inline bool wait_for(const std::function<bool()>& condition, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace tl::testing
