// reelfarm-worker: runs FFmpeg jobs the coordinator assigns.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "common/clock.h"
#include "common/daemon_util.h"
#include "common/process_runner.h"
#include "common/service_notify.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  reelfarm::WorkerOptions opts;
  std::string log_level = "info";
  std::string log_format = "text";
  double memory_gb = 0;
  CLI::App app{"reelfarm worker: runs the coordinator's FFmpeg jobs on this machine"};
  app.add_option("--coordinator", opts.coordinator,
                 "coordinator's ZeroMQ endpoint; several separated by commas (active and standby "
                 "coordinators): tried in turn when the one in use goes quiet")
      ->capture_default_str();
  app.add_option("--name", opts.name, "worker name, unique in the farm (default HOST-PID)");
  double drain_timeout_s = 3600;
  app.add_option("--drain-timeout", drain_timeout_s,
                 "seconds running jobs may take to finish after SIGTERM before they are handed "
                 "back (a second SIGTERM: at once; 0: stop at once)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cores", opts.cores,
                 "cores this worker's FFmpegs share (0: the CPUs it may run on, lowered by a "
                 "cgroup CPU quota)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--slots", opts.slots, "jobs run at once (0: one per 4 cores, at least 1)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--threads", opts.executor.threads,
                 "threads each FFmpeg may use (0: cores / slots)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--metrics", opts.metrics, "HOST:PORT of the Prometheus endpoint (empty: off)")
      ->capture_default_str();
  app.add_option("--ffmpeg", opts.ffmpeg, "ffmpeg used for the encoder probe")
      ->capture_default_str();
  app.add_option("--ffprobe", opts.executor.ffprobe, "ffprobe used to verify outputs")
      ->capture_default_str();
  app.add_option("--ffmpeg-override", opts.executor.ffmpeg_override,
                 "run this program instead of each job's argv[0]");
  app.add_option("--memory-limit-gb", memory_gb,
                 "ceiling on any FFmpeg's address space (0: none but the job's own)")
      ->capture_default_str();
  app.add_flag("--job-memory-limits,!--no-job-memory-limits", opts.executor.job_memory_limits,
               "limit each FFmpeg to its job's memory_mb plus per-thread headroom")
      ->capture_default_str();
  app.add_option("--memory-cgroup", opts.memory_cgroup,
                 "auto | off | a cgroup folder: limit each ffmpeg's memory in use with a cgroup "
                 "of its own (auto: under this worker's cgroup when it may create one)")
      ->capture_default_str();
  app.add_option("--allowed-root", opts.executor.allowed_roots,
                 "folder job inputs and outputs must lie in (repeatable; none: any)");
  app.add_option("--encoders", opts.encoders_override,
                 "announce these encoders instead of probing (testing)")
      ->delimiter(',');
  app.add_option("--gpu-slots", opts.gpu_slots,
                 "jobs run at once on GPU encoders next to --slots (-1: the NVENC sessions the "
                 "probe opens at once, 0 without NVENC; 0: no GPU work)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 256));
  app.add_option("--max-gpu-sessions", opts.max_gpu_sessions, "ceiling of the NVENC session probe")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--curve-secret", opts.curve_secret_file,
                 "CURVE secret key file of this worker (reelfarm keys)");
  app.add_option("--curve-server-key", opts.curve_server_key,
                 "the coordinator's CURVE public key, inline or a file");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!reelfarm::ConfigureLogging(log_level, log_format, "worker")) {
    fprintf(stderr, "bad --log-level or --log-format\n");
    return 2;
  }
  opts.executor.memory_limit_bytes = static_cast<uint64_t>(memory_gb * (1ull << 30));
  if (opts.executor.ffmpeg_override.empty() && opts.ffmpeg != "ffmpeg") {
    opts.executor.ffmpeg_override = opts.ffmpeg;
  }
  opts.drain_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, drain_timeout_s) * 1000));
  // SIGTERM drains (a second one stops at once); --drain-timeout 0: stops.
  const auto signals = reelfarm::InstallDrainSignals();
  const auto& stop = drain_timeout_s > 0 ? signals.stop : signals.drain;
  reelfarm::RealClock clock;
  reelfarm::PosixProcessRunner runner;
  reelfarm::Worker worker(opts, &clock, &runner);
  reelfarm::Status s = worker.Start();
  if (!s.ok()) {
    spdlog::error("cannot start: {}", s.ToString());
    return 4;
  }
  // Ready for systemd (Type=notify): encoders probed, metrics listening.
  auto notifier = reelfarm::ServiceNotifier::FromEnvironment(&clock);
  notifier->Ready("worker " + worker.name() + " of " + opts.coordinator);
  worker.Run(stop, notifier.get(), drain_timeout_s > 0 ? &signals.drain : nullptr);
  spdlog::info("worker stopped");
  return 0;
}
