#include "worker/worker_metrics.h"

#include <spdlog/spdlog.h>

#include <sstream>

namespace reelfarm {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

// Job kinds the planner emits (pb::Job::kind); others get series on first use.
constexpr const char* kKinds[] = {"encode", "thumbnail", "audio"};
constexpr const char* kResults[] = {"succeeded", "failed", "retryable", "cancelled"};

}  // namespace

std::vector<std::string> NvidiaSmiDmonArgv() {
  return {"nvidia-smi", "dmon", "-s", "u", "-c", "1"};
}

std::vector<GpuUtilization> ParseNvidiaSmiDmon(const std::string& text) {
  std::vector<GpuUtilization> out;
  int gpu_col = -1, enc_col = -1, dec_col = -1;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> cols;
    for (std::string w; words >> w;) cols.push_back(w);
    if (cols.empty()) continue;
    if (cols[0] == "#") {
      // "# gpu sm mem enc dec ..." names the columns; "# Idx % % ..." gives units.
      if (cols.size() > 1 && cols[1] == "gpu") {
        gpu_col = enc_col = dec_col = -1;
        for (size_t i = 1; i < cols.size(); ++i) {
          int at = static_cast<int>(i) - 1;  // data rows have no '#'
          if (cols[i] == "gpu") gpu_col = at;
          if (cols[i] == "enc") enc_col = at;
          if (cols[i] == "dec") dec_col = at;
        }
      }
      continue;
    }
    if (gpu_col < 0) continue;
    auto number = [&](int col, double* v) {
      if (col < 0 || col >= static_cast<int>(cols.size())) return false;
      try {
        size_t used = 0;
        *v = std::stod(cols[col], &used);
        return used == cols[col].size();
      } catch (...) {
        return false;
      }
    };
    double idx = 0, v = 0;
    if (!number(gpu_col, &idx)) continue;
    GpuUtilization g;
    g.index = static_cast<int>(idx);
    if (number(enc_col, &v)) g.encoder = v / 100.0;
    if (number(dec_col, &v)) g.decoder = v / 100.0;
    out.push_back(g);
  }
  return out;
}

const char* AttemptResultLabel(const pb::JobResult& result, bool cancelled) {
  if (cancelled) return "cancelled";
  if (result.ok()) return "succeeded";
  return result.retryable() ? "retryable" : "failed";
}

WorkerMetrics::WorkerMetrics(prometheus::Registry& r, const std::string& worker_name,
                             const WorkerShape& shape, const EncoderProbeResult& caps)
    : slots_busy_(BuildGauge()
                      .Name("reelfarm_worker_slots_busy")
                      .Help("Job slots running an attempt (CPU and GPU)")
                      .Register(r)
                      .Add({})),
      gpu_slots_busy_(BuildGauge()
                          .Name("reelfarm_worker_gpu_slots_busy")
                          .Help("GPU slots running an attempt on a GPU encoder")
                          .Register(r)
                          .Add({})),
      frames_(BuildCounter()
                  .Name("reelfarm_worker_frames_encoded_total")
                  .Help("Video frames FFmpeg encoded, by job kind (failed attempts included)")
                  .Register(r)),
      output_bytes_(BuildCounter()
                        .Name("reelfarm_worker_output_bytes_total")
                        .Help("Bytes of verified, published outputs, by job kind")
                        .Register(r)),
      media_seconds_(BuildCounter()
                         .Name("reelfarm_worker_media_encoded_seconds_total")
                         .Help("Seconds of media in successful attempts, by job kind")
                         .Register(r)),
      encode_seconds_(BuildCounter()
                          .Name("reelfarm_worker_encode_seconds_total")
                          .Help("Wall-clock seconds of successful attempts, by job kind")
                          .Register(r)),
      speed_(BuildGauge()
                 .Name("reelfarm_worker_encode_speed_ratio")
                 .Help("Live encode speed (x realtime) summed over running attempts, by job kind")
                 .Register(r)),
      fps_(BuildGauge()
               .Name("reelfarm_worker_encode_frames_per_second")
               .Help("Live frames per second summed over running attempts, by job kind")
               .Register(r)),
      exits_(BuildCounter()
                 .Name("reelfarm_worker_ffmpeg_exits_total")
                 .Help("Attempts ended, by job kind and result")
                 .Register(r)),
      gpu_encoder_(BuildGauge()
                       .Name("reelfarm_worker_gpu_encoder_utilization_ratio")
                       .Help("NVENC utilisation 0..1 from nvidia-smi, by GPU index")
                       .Register(r)),
      gpu_decoder_(BuildGauge()
                       .Name("reelfarm_worker_gpu_decoder_utilization_ratio")
                       .Help("NVDEC utilisation 0..1 from nvidia-smi, by GPU index")
                       .Register(r)) {
  BuildGauge()
      .Name("reelfarm_worker_slots")
      .Help("Job slots this worker offers")
      .Register(r)
      .Add({})
      .Set(shape.slots);
  BuildGauge()
      .Name("reelfarm_worker_gpu_slots")
      .Help("Jobs this worker runs at once on GPU encoders, next to its slots")
      .Register(r)
      .Add({})
      .Set(shape.gpu_slots);
  BuildGauge()
      .Name("reelfarm_worker_cores")
      .Help("Cores this worker's FFmpegs share (CPU affinity, lowered by a CPU quota)")
      .Register(r)
      .Add({})
      .Set(shape.cores);
  BuildGauge()
      .Name("reelfarm_worker_threads_per_slot")
      .Help("Threads each FFmpeg may use (cores / slots)")
      .Register(r)
      .Add({})
      .Set(shape.threads_per_slot);
  BuildGauge()
      .Name("reelfarm_worker_info")
      .Help("The worker's name as the coordinator knows it; always 1")
      .Register(r)
      .Add({{"worker", worker_name}})
      .Set(1);
  auto& enc = BuildGauge()
                  .Name("reelfarm_worker_encoder_info")
                  .Help("Encoders that opened on this machine at start; always 1")
                  .Register(r);
  for (const auto& e : caps.encoders) enc.Add({{"encoder", e}}).Set(1);
  auto& gpu = BuildGauge()
                  .Name("reelfarm_worker_gpu_info")
                  .Help("GPUs usable for decoding and encoding (CUDA), by index; always 1")
                  .Register(r);
  if (caps.gpu) {
    for (size_t i = 0; i < caps.gpu_names.size(); ++i) {
      gpu.Add({{"gpu", std::to_string(i)}, {"name", caps.gpu_names[i]}}).Set(1);
    }
  }
  for (const char* k : kKinds) {
    frames_.Add({{"kind", k}});
    output_bytes_.Add({{"kind", k}});
    media_seconds_.Add({{"kind", k}});
    encode_seconds_.Add({{"kind", k}});
    speed_.Add({{"kind", k}});
    fps_.Add({{"kind", k}});
    for (const char* res : kResults) exits_.Add({{"kind", k}, {"result", res}});
  }
}

WorkerMetrics::~WorkerMetrics() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stop_poll_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void WorkerMetrics::OnAttemptStart(uint64_t token, const std::string& kind, bool gpu) {
  std::lock_guard<std::mutex> lock(mu_);
  running_[token] = Running{kind, gpu};
  RefreshBusyLocked();
}

void WorkerMetrics::RefreshBusyLocked() {
  int gpu = 0;
  for (const auto& [token, a] : running_) gpu += a.gpu ? 1 : 0;
  slots_busy_.Set(static_cast<double>(running_.size()));
  gpu_slots_busy_.Set(gpu);
}

void WorkerMetrics::OnProgress(uint64_t token, const pb::Progress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(token);
  if (it == running_.end()) return;
  Running& a = it->second;
  if (p.frame() > a.last_frame) {
    frames_.Add({{"kind", a.kind}}).Increment(static_cast<double>(p.frame() - a.last_frame));
    a.last_frame = p.frame();
  }
  a.speed = p.speed();
  a.fps = p.fps();
  RefreshKindLocked(a.kind);
}

void WorkerMetrics::OnAttemptEnd(uint64_t token, const pb::JobResult& result, bool cancelled,
                                 double media_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(token);
  std::string kind = it == running_.end() ? "encode" : it->second.kind;
  if (it != running_.end()) running_.erase(it);
  RefreshBusyLocked();
  RefreshKindLocked(kind);
  exits_.Add({{"kind", kind}, {"result", AttemptResultLabel(result, cancelled)}}).Increment();
  if (!result.ok() || cancelled) return;
  double bytes = 0;
  for (const auto& o : result.outputs()) bytes += static_cast<double>(o.bytes());
  output_bytes_.Add({{"kind", kind}}).Increment(bytes);
  if (media_seconds > 0) media_seconds_.Add({{"kind", kind}}).Increment(media_seconds);
  if (result.encode_seconds() > 0) {
    encode_seconds_.Add({{"kind", kind}}).Increment(result.encode_seconds());
  }
}

void WorkerMetrics::RefreshKindLocked(const std::string& kind) {
  double speed = 0, fps = 0;
  for (const auto& [token, a] : running_) {
    if (a.kind != kind) continue;
    speed += a.speed;
    fps += a.fps;
  }
  speed_.Add({{"kind", kind}}).Set(speed);
  fps_.Add({{"kind", kind}}).Set(fps);
}

bool WorkerMetrics::PollGpuOnce(ProcessRunner* runner) {
  ProcessOptions opts;
  opts.argv = NvidiaSmiDmonArgv();
  opts.timeout_s = 15;
  auto ran = runner->Run(opts);
  if (!ran.ok() || !ran->Succeeded()) return false;
  for (const auto& g : ParseNvidiaSmiDmon(ran->stdout_data)) {
    std::string idx = std::to_string(g.index);
    if (g.encoder >= 0) gpu_encoder_.Add({{"gpu", idx}}).Set(g.encoder);
    if (g.decoder >= 0) gpu_decoder_.Add({{"gpu", idx}}).Set(g.decoder);
  }
  return true;
}

void WorkerMetrics::StartGpuPoller(ProcessRunner* runner, Duration interval) {
  if (poller_.joinable()) return;
  poller_ = std::thread([this, runner, interval] {
    std::unique_lock<std::mutex> lock(poll_mu_);
    while (!stop_poll_) {
      lock.unlock();
      bool ok = PollGpuOnce(runner);
      lock.lock();
      if (!ok) {
        spdlog::info("nvidia-smi dmon is not available: no GPU utilisation metrics");
        return;
      }
      poll_cv_.wait_for(lock, interval, [this] { return stop_poll_; });
    }
  });
}

}  // namespace reelfarm
