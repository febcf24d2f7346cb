// Runs one attempt of a job on this machine: FFmpeg into temporary files in
// the output folder, ffprobe verification against the plan's expectations,
// fsync, atomic rename, SHA-256. A failed attempt leaves nothing at a final
// name and no temporary file behind.
#ifndef REELFARM_WORKER_JOB_EXECUTOR_H_
#define REELFARM_WORKER_JOB_EXECUTOR_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/process_runner.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct JobExecutorOptions {
  std::string ffprobe = "ffprobe";
  // Replaces argv[0] when non-empty (e.g. a test points it at /bin/false).
  std::string ffmpeg_override;
  // Ceiling on any FFmpeg's address space; 0 = none.
  uint64_t memory_limit_bytes = 0;
  // A job with a memory_mb of its own runs with an address-space limit of
  // memory_mb + headroom_per_thread_mb x hardware threads (thread stacks),
  // capped by memory_limit_bytes, and malloc arenas capped so that the
  // headroom holds on many-core hosts.
  int headroom_per_thread_mb = 32;
  bool job_memory_limits = true;
  // Folders every input and output of a job must lie in, symlinks resolved
  // (defence in depth behind the coordinator's check); empty: any.
  std::vector<std::string> allowed_roots;
};

// The address-space limit one attempt of `job` runs under (0 = none).
uint64_t MemoryLimitFor(const pb::Job& job, const JobExecutorOptions& options,
                        unsigned hardware_threads);

// The temporary path an attempt writes instead of `final_path`: a hidden
// name in the same folder, unique per attempt token.
std::string TempPathFor(const std::string& final_path, uint64_t token);

// Checks probed media against the plan's expectation; empty when it holds,
// else one sentence naming each mismatch. Pure.
std::string CompareMedia(const pb::MediaInfo& expected, const pb::MediaInfo& actual);

// SHA-256 of a file as lowercase hex.
StatusOr<std::string> Sha256File(const std::string& path);

// Thread-safe: one executor serves all slots.
class JobExecutor {
 public:
  using ProgressFn = std::function<void(const pb::Progress&)>;
  // Asked once, after verification and before the first rename: may this
  // attempt publish? Returns the steady-clock instant after which it must
  // not rename any more (the coordinator's grant, shorter than the time the
  // coordinator waits before giving the job to another worker), or why not.
  // This fences a stalled, superseded attempt out of the final names.
  using PublishGate = std::function<StatusOr<std::chrono::steady_clock::time_point>()>;
  JobExecutor(ProcessRunner* runner, JobExecutorOptions options);  // runner not owned

  // Runs the attempt to the end (or until *cancel turns true) and returns
  // its result, ok or not. Never throws. Without a gate it publishes as soon
  // as the outputs are verified.
  pb::JobResult Execute(const pb::Assign& assign, const ProgressFn& progress,
                        const std::atomic<bool>* cancel, const PublishGate& gate = nullptr);

 private:
  ProcessRunner* runner_;
  JobExecutorOptions options_;
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_JOB_EXECUTOR_H_
