// Runs a shell command as a user would and captures what it printed: the tool tests' way of calling the
// binaries.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

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

}  // namespace tl::testing
