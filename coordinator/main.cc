// reelfarm-coordinator: plans deliveries, keeps jobs in Redis, dispatches them
// to workers over ZeroMQ, serves the HTTP API and Prometheus metrics.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>

#include "common/clock.h"
#include "common/daemon_util.h"
#include "common/process_runner.h"
#include "common/service_notify.h"
#include "coordinator/coordinator.h"

int main(int argc, char** argv) {
  // The coordinator's heap is long-lived (every queued job); per-thread
  // arenas for the API threads only fragment it (about 20 MiB more resident
  // per 100,000 queued jobs, bench/RESULTS.md).
  mallopt(M_ARENA_MAX, 2);
  reelfarm::CoordinatorOptions opts;
  std::string log_level = "info";
  std::string log_format = "text";
  int heartbeat_ms = 1000;
  CLI::App app{"reelfarm coordinator: turns delivery specs into jobs and hands them to workers"};
  app.add_option("--redis", opts.redis_url, "Redis URL redis://[user:password@]HOST:PORT[/DB]")
      ->capture_default_str();
  app.add_option("--bind", opts.bind, "ZeroMQ endpoint workers connect to")->capture_default_str();
  app.add_option("--http", opts.http, "HOST:PORT of the HTTP/JSON API")->capture_default_str();
  double http_request_timeout_s = 10;
  app.add_option("--http-threads", opts.http_limits.threads,
                 "API connections served at once (more wait their turn)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--http-request-timeout-s", http_request_timeout_s,
                 "an API request (headers and body) must arrive within this many seconds of its "
                 "first byte, or the connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--http-max-body-bytes", opts.http_limits.max_body_bytes,
                 "largest API request body; a larger declared one is answered 413 unread")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app.add_option("--http-max-connections-per-client", opts.http_limits.max_connections_per_client,
                 "API connections one client address may hold open (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--max-message-bytes", opts.max_message_bytes,
                 "largest ZeroMQ frame a worker may send; a connection sending a larger one is "
                 "dropped before it is read (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--metrics", opts.metrics, "HOST:PORT of the Prometheus endpoint (empty: off)")
      ->capture_default_str();
  app.add_option("--ffprobe", opts.ffprobe, "ffprobe used to probe sources")->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval in milliseconds")
      ->capture_default_str()
      ->check(CLI::Range(50, 60000));
  app.add_option("--liveness", opts.farm.liveness,
                 "missed heartbeats before a worker and its jobs are given up")
      ->capture_default_str()
      ->check(CLI::Range(2, 100));
  app.add_option("--max-attempts", opts.farm.max_attempts, "attempts per job before it fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  int lease_ms = static_cast<int>(opts.lease_ttl.count());
  app.add_option("--lease-ms", lease_ms,
                 "coordinator lease in Redis: one active coordinator, a second waits as standby "
                 "and takes over within this long of the first stopping (0: no lease)")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_flag("--reuse-outputs,!--no-reuse-outputs", opts.reuse_outputs,
               "publish deliverables whose output key is in the output cache instead of encoding "
               "them again (docs/versions.md)")
      ->capture_default_str();
  app.add_option("--cache-dir", opts.cache_dir,
                 "farm-wide output cache folder, reachable by every worker (default: each "
                 "delivery's own <output_dir>/.reelfarm-cache)");
  double cache_max_gb = static_cast<double>(opts.cache_max_bytes) / (1 << 30);
  app.add_option("--cache-max-gb", cache_max_gb,
                 "bound on each output cache: least recently used entries go beyond it")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--allowed-root", opts.allowed_roots,
                 "folder sources, subtitles and output_dirs must lie in (repeatable; none: any)");
  app.add_option(
         "--job-timeout-base-s", opts.planner.timeout_base_s,
         "each attempt's wall-clock limit: this many seconds plus --job-timeout-per-media-s "
         "per second of media, weighted by the encoder's cost")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--job-timeout-per-media-s", opts.planner.timeout_per_media_s,
                 "seconds allowed per second of media (raise it for slow or CPU-limited workers)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--gpu-farm", opts.planner.gpu_farm,
               "this farm has GPU workers: deliverables a GPU encoder can make (encoder: auto) "
               "are planned one job each, to run on a GPU slot or a CPU one (docs/gpu.md)");
  app.add_option("--piece-cost", opts.planner.piece_cost,
                 "cost of one piece of work: costlier pictures are cut into time chunks of about "
                 "this cost, cheaper ones grouped up to it (4: about 2 s of 1080p x264; 0: one "
                 "job per deliverable)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--min-chunk-s", opts.planner.min_chunk_s,
                 "no time chunk shorter than this many seconds of source")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--fan-out,!--no-fan-out", opts.planner.fan_out,
               "group cheap deliverables that share a decode")
      ->capture_default_str();
  app.add_flag("--chunks,!--no-chunks", opts.planner.chunking,
               "cut costly deliverables into time chunks")
      ->capture_default_str();
  int64_t manifest_retry_ms = opts.manifest_retry_initial.count();
  int64_t manifest_retry_max_ms = opts.manifest_retry_max.count();
  app.add_option("--manifest-retry-ms", manifest_retry_ms,
                 "a manifest that cannot be written is tried again after this long, doubling")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--manifest-retry-max-ms", manifest_retry_max_ms,
                 "the longest wait between tries of a manifest")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  // Testing only, so not in --help: see CoordinatorOptions.
  app.add_option("--fault-kill-before-sending-assignment", opts.fault_kill_before_assignment)
      ->group("");
  app.add_option("--fault-kill-on-result", opts.fault_kill_on_result)->group("");
  app.add_option("--curve-secret", opts.curve_secret_file,
                 "CURVE secret key file of the coordinator (reelfarm keys); needs --curve-allow");
  app.add_option("--curve-allow", opts.curve_allow_file,
                 "file of worker public keys allowed to connect, one a line");
  app.add_option("--webhook", opts.webhooks.urls,
                 "URL every delivery's events are POSTed to, signed with --webhook-secret-file "
                 "(repeatable; docs/webhooks.md)");
  app.add_option("--webhook-secret-file", opts.webhooks.secret_file,
                 "file holding the farm-wide webhooks' secret, whsec_<base64> of 24-64 bytes");
  app.add_option("--webhook-allow", opts.webhooks.allow,
                 "CIDR, address or host name that may receive webhooks although not public "
                 "(loopback, private, link-local); repeatable");
  int64_t webhook_retry_ms = opts.webhooks.retry.first_backoff.count();
  int64_t webhook_retry_max_ms = opts.webhooks.retry.max_backoff.count();
  app.add_option("--webhook-retry-ms", webhook_retry_ms,
                 "a failed webhook is sent again after about this long, doubling")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  app.add_option("--webhook-retry-max-ms", webhook_retry_max_ms,
                 "the longest wait between attempts of a webhook")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}));
  app.add_option("--webhook-attempts", opts.webhooks.retry.attempts,
                 "attempts of a webhook before it is a dead letter")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  std::string token_file;
  app.add_option("--api-token-file", token_file,
                 "file holding the bearer token the HTTP API requires (also REELFARM_API_TOKEN)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!reelfarm::ConfigureLogging(log_level, log_format, "coordinator")) {
    fprintf(stderr, "bad --log-level or --log-format\n");
    return 2;
  }
  opts.farm.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  opts.cache_max_bytes = static_cast<int64_t>(cache_max_gb * (1 << 30));
  opts.lease_ttl = std::chrono::milliseconds(lease_ms);
  opts.webhooks.retry.first_backoff = std::chrono::milliseconds(webhook_retry_ms);
  opts.webhooks.retry.max_backoff =
      std::chrono::milliseconds(std::max(webhook_retry_ms, webhook_retry_max_ms));
  opts.manifest_retry_initial = std::chrono::milliseconds(manifest_retry_ms);
  opts.manifest_retry_max =
      std::chrono::milliseconds(std::max(manifest_retry_ms, manifest_retry_max_ms));
  opts.http_limits.request_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(http_request_timeout_s * 1000));
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, opts.api_token);
    if (opts.api_token.empty()) {
      fprintf(stderr, "no token in %s\n", token_file.c_str());
      return 2;
    }
  } else if (const char* t = getenv("REELFARM_API_TOKEN"); t != nullptr) {
    opts.api_token = t;
  }
  const auto& stop = reelfarm::InstallStopSignals();
  reelfarm::RealClock clock;
  reelfarm::PosixProcessRunner runner;
  reelfarm::Coordinator coordinator(opts, &clock, &runner);
  auto notifier = reelfarm::ServiceNotifier::FromEnvironment(&clock);
  reelfarm::Status s = coordinator.Start(&stop, notifier.get());
  if (s.code() == reelfarm::Status::Code::kCancelled) {
    spdlog::info("coordinator stopped while standby");
    return 0;
  }
  if (!s.ok()) {
    spdlog::error("cannot start: {}", s.ToString());
    return 4;
  }
  // Ready for systemd (Type=notify): Redis reloaded, every port listening.
  notifier->Ready("coordinator: workers on " + opts.bind + ", API on " + opts.http);
  s = coordinator.Run(stop, notifier.get());
  if (!s.ok()) {
    // Restarted (systemd Restart=, Kubernetes), it reloads from Redis as
    // standby.
    spdlog::error("{}; exiting", s.message());
    return 75;
  }
  spdlog::info("coordinator stopped");
  return 0;
}
