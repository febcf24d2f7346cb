// Starting child processes from an argument vector (never a shell).
#ifndef REELFARM_COMMON_PROCESS_RUNNER_H_
#define REELFARM_COMMON_PROCESS_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace reelfarm {

struct ProcessOptions {
  // argv[0] is looked up in PATH when it has no '/'. REQUIRES: non-empty.
  std::vector<std::string> argv;
  // Kill (SIGKILL to its process group) after this many seconds; 0 = none.
  double timeout_s = 0;
  // Address-space limit for the child (RLIMIT_AS); 0 = none.
  uint64_t memory_limit_bytes = 0;
  // A cgroup's cgroup.procs file the child joins before exec (MemoryCgroup);
  // empty = none. Failing to join fails the start.
  std::string cgroup_procs_file;
  // "NAME=value" entries set (or replaced) in the child's environment, which
  // is otherwise the caller's.
  std::vector<std::string> env;
  // Keep at most this many bytes of the end of stderr.
  size_t stderr_tail_bytes = 8192;
  // Called on the runner's thread for each complete stdout line (no '\n').
  // When unset, stdout is collected into ProcessResult::stdout_data.
  std::function<void(std::string_view line)> on_stdout_line;
  // Called on the runner's thread for each complete stderr line (no '\n'),
  // however long the stream: what the tail no longer holds can still be
  // classified. The tail is kept either way.
  std::function<void(std::string_view line)> on_stderr_line;
  // Polled about every 50 ms; when it becomes true the child is killed.
  const std::atomic<bool>* cancel = nullptr;
};

struct ProcessResult {
  int exit_code = -1;   // valid when term_signal == 0
  int term_signal = 0;  // the signal that ended it, 0 when it exited
  bool timed_out = false;
  bool cancelled = false;
  std::string stdout_data;  // only when on_stdout_line is unset
  std::string stderr_tail;
  bool Succeeded() const { return term_signal == 0 && exit_code == 0 && !timed_out && !cancelled; }
  // "exit code 1", "killed by signal 9 (timeout after 30 s)", ...
  std::string Describe() const;
};

// Thread-safe: Run may be called from several threads at once.
class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs to completion. A non-OK Status means the process could not be
  // started at all; a process that ran and failed is an OK Status with a
  // result that says how it ended.
  virtual StatusOr<ProcessResult> Run(const ProcessOptions& options) = 0;
};

// fork/exec with: stdin from /dev/null, its own process group, and
// PR_SET_PDEATHSIG=SIGKILL so it dies with the caller.
class PosixProcessRunner final : public ProcessRunner {
 public:
  StatusOr<ProcessResult> Run(const ProcessOptions& options) override;
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PROCESS_RUNNER_H_
