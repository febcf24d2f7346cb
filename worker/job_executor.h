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

#include "common/clock.h"
#include "common/memory_cgroup.h"
#include "common/process_runner.h"
#include "common/secure.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct JobExecutorOptions {
  std::string ffprobe = "ffprobe";
  // Replaces argv[0] when non-empty (e.g. a test points it at /bin/false).
  std::string ffmpeg_override;
  // Threads each FFmpeg may use (ApplyThreadBudget); 0 = FFmpeg's own
  // choice (one per core of the machine). An attempt's Assign.max_threads
  // lowers it.
  int threads = 0;
  // Ceiling on any FFmpeg's address space; 0 = none.
  uint64_t memory_limit_bytes = 0;
  // A job with a memory_mb of its own runs with an address-space limit of
  // memory_mb + T x its memory_per_thread_mb, T being its thread budget (or
  // the hardware threads without one), capped by memory_limit_bytes, and
  // malloc arenas capped so that the limit holds on many-core hosts. Jobs
  // without memory_per_thread_mb get headroom_per_thread_mb a thread.
  int headroom_per_thread_mb = 32;
  // Where each FFmpeg gets a memory cgroup limiting the memory it has in use
  // to its job's need (ResidentLimitFor); not owned; nullptr = none (then
  // the address-space limit alone bounds it).
  const MemoryCgroupParent* cgroups = nullptr;
  bool job_memory_limits = true;
  // Folders every input and output of a job must lie in, symlinks resolved
  // (defence in depth behind the coordinator's check); empty: any.
  std::vector<std::string> allowed_roots;
  // This host's FFmpeg (`ffmpeg -version`): outputs are kept in the output
  // cache only when it is the version their key names; "" keeps none.
  std::string ffmpeg_version;
};

// The memory in use one attempt of `job` may reach with `threads` threads:
// memory_mb + threads x memory_per_thread_mb (bytes; 0 = no limit).
uint64_t ResidentLimitFor(const pb::Job& job, const JobExecutorOptions& options, unsigned threads);

// The address-space limit (RLIMIT_AS) of such an attempt: its resident
// limit plus what FFmpeg reserves without using (thread stacks, malloc
// arenas: AddressSpaceSlackMb), capped by memory_limit_bytes (0 = none).
uint64_t MemoryLimitFor(const pb::Job& job, const JobExecutorOptions& options, unsigned threads);

// MiB of address space an FFmpeg with a budget of `threads` reserves beyond
// what it uses: 384 + 96 per thread. Measured (docs/memory.md) up to 64
// threads and 4K: FFmpeg starts about 4 threads per budgeted thread
// (decoder frame threads, filter and encoder threads), each with an 8 MiB
// stack, and decoders reserve frame pools they do not touch; the most seen
// beyond resident was 210 + 80 per thread (MJPEG from a 4K source).
uint64_t AddressSpaceSlackMb(unsigned threads);

// The thread budget of one attempt: the executor's, lowered by the
// attempt's max_threads; the hardware threads when neither is set.
int AttemptThreads(const JobExecutorOptions& options, const pb::Assign& assign,
                   unsigned hardware_threads);

// Whether a line of FFmpeg's log says that an allocation failed.
bool IsOutOfMemoryLine(std::string_view line);

// Whether FFmpeg's log line says a GPU encoder or CUDA could not be used
// (NVENC's session limit, no capable device, libcuda or the driver missing,
// an encoder that did not open): in a GPU attempt the job then runs again
// elsewhere, on the CPU where it may (JobResult.gpu_unavailable).
bool IsGpuUnavailableLine(std::string_view line);

// The temporary path an attempt writes instead of `final_path`: a hidden
// name in the same folder, unique per attempt token.
std::string TempPathFor(const std::string& final_path, uint64_t token);

// Checks probed media against the plan's expectation; empty when it holds,
// else one sentence naming each mismatch. Pure.
std::string CompareMedia(const pb::MediaInfo& expected, const pb::MediaInfo& actual);

// Thread-safe: one executor serves all slots.
class JobExecutor {
 public:
  using ProgressFn = std::function<void(const pb::Progress&)>;
  // Asked once, after verification and before the first rename: may this
  // attempt publish? Returns the steady-clock instant after which it must
  // not rename any more (the coordinator's grant, shorter than the time the
  // coordinator waits before giving the job to another worker), or why not.
  // This fences a stalled, superseded attempt out of the final names.
  using PublishGate = std::function<StatusOr<SteadyTime>()>;
  // `runner` and `clock` are not owned and must outlive the executor.
  JobExecutor(ProcessRunner* runner, JobExecutorOptions options, const Clock* clock);

  // Runs the attempt to the end (or until *cancel turns true) and returns
  // its result, ok or not. Never throws. Without a gate it publishes as soon
  // as the outputs are verified.
  pb::JobResult Execute(const pb::Assign& assign, const ProgressFn& progress,
                        const std::atomic<bool>* cancel, const PublishGate& gate = nullptr);

 private:
  // A "reuse" job: the cache entry's files linked (or copied) to temporary
  // names, each checked against its SHA-256, then renamed into place.
  pb::JobResult Reuse(const pb::Assign& assign, const std::atomic<bool>* cancel,
                      const PublishGate& gate) const;
  // Keeps a published output in the output cache when its job asks for it
  // (JobOutput.cache) and this host's FFmpeg is the key's.
  void KeepInCache(const pb::JobOutput& out, const pb::OutputResult& published) const;

  ProcessRunner* runner_;
  JobExecutorOptions options_;
  const Clock* clock_;
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_JOB_EXECUTOR_H_
