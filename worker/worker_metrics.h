// The worker's Prometheus series (docs/monitoring.md lists them): slots,
// frames and bytes produced, live encode speed per job kind, FFmpeg exits by
// result, encoder capabilities and, on NVIDIA machines, encoder and decoder
// utilisation read from `nvidia-smi dmon`.
#ifndef REELFARM_WORKER_WORKER_METRICS_H_
#define REELFARM_WORKER_WORKER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/process_runner.h"
#include "proto/reelfarm.pb.h"
#include "worker/encoder_probe.h"

namespace reelfarm {

// One GPU's utilisation from `nvidia-smi dmon -s u`; a ratio 0..1, or -1
// when the driver does not expose it ("-").
struct GpuUtilization {
  int index = 0;
  double encoder = -1;
  double decoder = -1;
};

// The argv that samples utilisation once.
std::vector<std::string> NvidiaSmiDmonArgv();
// Parses dmon's output: '#' header lines name the columns (gpu, sm, mem,
// enc, dec, and more on newer drivers), then one row per GPU. Pure; rows it
// cannot read are skipped.
std::vector<GpuUtilization> ParseNvidiaSmiDmon(const std::string& text);

// The bounded `result` label of an attempt's end: succeeded | failed (the
// job's fault, not retried) | retryable (the host's: crash, timeout) |
// cancelled.
const char* AttemptResultLabel(const pb::JobResult& result, bool cancelled);

// How a worker divides its machine (docs/scaling.md).
struct WorkerShape {
  int cores = 1;
  int slots = 1;
  int threads_per_slot = 1;
  int gpu_slots = 0;  // jobs at once on GPU encoders, next to `slots`
};

// Thread-safe: attempt threads report progress and results concurrently.
// The series live in `registry`, which must outlive this object.
class WorkerMetrics {
 public:
  WorkerMetrics(prometheus::Registry& registry, const std::string& worker_name,
                const WorkerShape& shape, const EncoderProbeResult& caps);
  ~WorkerMetrics();  // stops the GPU poller

  // `gpu`: the attempt runs on a GPU slot (Assign.gpu).
  void OnAttemptStart(uint64_t token, const std::string& kind, bool gpu = false);
  // Counts the frames encoded since the attempt's previous sample and
  // updates the live speed and fps of its kind.
  void OnProgress(uint64_t token, const pb::Progress& progress);
  // The attempt ended (its thread is about to exit). `media_seconds` is the
  // job's media duration, counted when the attempt succeeded.
  void OnAttemptEnd(uint64_t token, const pb::JobResult& result, bool cancelled,
                    double media_seconds);

  // Samples GPU utilisation with `runner` every `interval` on a thread of
  // its own until destroyed; gives up for good when nvidia-smi cannot run.
  void StartGpuPoller(ProcessRunner* runner, Duration interval);
  // One sample (the poller's body); false when nvidia-smi could not run.
  bool PollGpuOnce(ProcessRunner* runner);

 private:
  struct Running {
    std::string kind;
    bool gpu = false;
    int64_t last_frame = 0;
    double speed = 0;
    double fps = 0;
  };
  // REQUIRES: mu_ held. Sums the live speed and fps of `kind`'s attempts.
  void RefreshKindLocked(const std::string& kind);

  // REQUIRES: mu_ held. The busy gauges from running_.
  void RefreshBusyLocked();

  prometheus::Gauge& slots_busy_;
  prometheus::Gauge& gpu_slots_busy_;
  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Counter>& output_bytes_;
  prometheus::Family<prometheus::Counter>& media_seconds_;
  prometheus::Family<prometheus::Counter>& encode_seconds_;
  prometheus::Family<prometheus::Gauge>& speed_;
  prometheus::Family<prometheus::Gauge>& fps_;
  prometheus::Family<prometheus::Counter>& exits_;
  prometheus::Family<prometheus::Gauge>& gpu_encoder_;
  prometheus::Family<prometheus::Gauge>& gpu_decoder_;

  std::mutex mu_;
  std::map<uint64_t, Running> running_;  // by attempt token

  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stop_poll_ = false;
  std::thread poller_;
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_WORKER_METRICS_H_
