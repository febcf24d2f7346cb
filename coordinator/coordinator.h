// The coordinator daemon: FarmState driven by ZeroMQ messages and time,
// persisted to Redis, with the HTTP/JSON API (docs/api.md) and a Prometheus
// endpoint.
//
// Threads: Run()'s loop owns the ZeroMQ ROUTER socket; the HTTP server's
// threads call the API methods. Both take mu_, which guards the FarmState,
// the Redis client and the pending effects.
#ifndef REELFARM_COORDINATOR_COORDINATOR_H_
#define REELFARM_COORDINATOR_COORDINATOR_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/probe_cache.h"
#include "common/process_runner.h"
#include "common/spec.h"
#include "common/status.h"
#include "coordinator/farm_state.h"
#include "coordinator/http_guard.h"
#include "coordinator/leader_lease.h"
#include "coordinator/manifest.h"
#include "coordinator/webhook_outbox.h"
#include "planning/planner.h"
#include "planning/submission.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace reelfarm {

class JobStore;
class MetricsServer;
class RedisClient;
class CoordinatorMetrics;
class ServiceNotifier;
class ZapAuthenticator;

struct CoordinatorOptions {
  std::string redis_url = "redis://127.0.0.1:6379";
  std::string bind = "tcp://0.0.0.0:8471";  // ZeroMQ ROUTER for workers
  // ZMQ_MAXMSGSIZE of the ROUTER: a worker connection sending a larger
  // frame is dropped before the frame is read. <= 0: no limit.
  int64_t max_message_bytes = 1 << 20;
  std::string http = "0.0.0.0:8470";  // HTTP/JSON API
  // Bounds on API clients: threads, per-request time, header and body sizes,
  // connections per client address (coordinator/http_guard.h).
  HttpLimits http_limits;
  std::string metrics = "0.0.0.0:9470";  // Prometheus; empty = off
  std::string ffprobe = "ffprobe";
  // CURVE: the coordinator's secret key file and the allow-list of worker
  // public keys. Both or neither; with them, unlisted workers are refused.
  std::string curve_secret_file;
  std::string curve_allow_file;
  // When non-empty, /api/ requests need "Authorization: Bearer <token>".
  std::string api_token;
  // Folders sources, subtitle files and output_dirs must lie in (symlinks
  // resolved); a spec naming anything else is refused (422). Empty: any.
  std::vector<std::string> allowed_roots;
  FarmOptions farm;
  PlannerOptions planner;
  // The output cache (docs/versions.md): unchanged deliverables of a new
  // version are published from it. `cache_dir` "": each delivery's own
  // <output_dir>/.reelfarm-cache; a farm-wide folder must be one the
  // workers can reach (and inside their allowed roots). Kept to
  // cache_max_bytes by removing the least recently used entries after each
  // delivery.
  // One active coordinator per Redis (coordinator/leader_lease.h): a
  // coordinator that finds the lease held waits as standby (its /healthz
  // says so, its API answers 503) and takes over within lease_ttl of the
  // active one stopping to renew it. 0: no lease (never two at once!).
  std::chrono::milliseconds lease_ttl{3000};
  bool reuse_outputs = true;
  std::string cache_dir;
  int64_t cache_max_bytes = int64_t{200} << 30;
  // A manifest that cannot be written (a read-only or full folder) is tried
  // again after manifest_retry_initial, doubling up to manifest_retry_max,
  // for as long as the coordinator runs (and again after a restart).
  std::chrono::milliseconds manifest_retry_initial{1000};
  std::chrono::milliseconds manifest_retry_max{60000};
  // Fault injection for tests only (--fault-kill-before-sending-assignment):
  // when > 0, the process SIGKILLs itself right after the N-th assignment
  // has been persisted to Redis and before it is sent to its worker.
  int fault_kill_before_assignment = 0;
  // (--fault-kill-on-result): when > 0, SIGKILLs itself on receiving the
  // N-th result, before recording it.
  int fault_kill_on_result = 0;
  // Farm-wide webhooks, the allow-list and retries (docs/webhooks.md).
  WebhookOptions webhooks;
};

struct SubmitOutcome {
  int http_status = 201;  // 201, 422 (spec errors), 503 (Redis down)
  nlohmann::json body;
};

class Coordinator {
 public:
  // `clock` and `runner` are not owned and must outlive the coordinator.
  Coordinator(CoordinatorOptions options, Clock* clock, ProcessRunner* runner);
  ~Coordinator();

  // Connects to Redis, reloads every delivery, binds the sockets and starts
  // the HTTP and metrics servers.
  // Connects, waits as standby while another coordinator holds the lease
  // (Cancelled when *stop turns true meanwhile; `notifier`, if any, is told
  // READY with a standby status and kept alive for the watchdog), reloads
  // the farm from Redis and listens.
  Status Start(const std::atomic<bool>* stop = nullptr, ServiceNotifier* notifier = nullptr);
  // The event loop; returns when *stop turns true (OK), or Unavailable when
  // this coordinator lost the lease to another (it must not go on: a
  // restart reloads it as standby). Each turn tells `notifier` (not owned;
  // may be null) that the loop is alive; the end, that it is stopping.
  Status Run(const std::atomic<bool>& stop, ServiceNotifier* notifier = nullptr);

  // API (thread-safe).
  // `extra_webhooks` (the request's "webhooks", `reelfarm submit --webhook`)
  // are added to the spec's own; their secret files are absolute.
  SubmitOutcome Submit(const std::string& spec_text, const std::string& spec_file,
                       const std::string& base_dir,
                       const std::vector<WebhookSpec>& extra_webhooks = {});
  nlohmann::json ListDeliveries();
  StatusOr<nlohmann::json> ShowDelivery(const std::string& id);
  StatusOr<nlohmann::json> CancelDelivery(const std::string& id);
  // POST /api/v1/deliveries/{id}/priority: the delivery's summary after.
  // GET /api/v1/history/{name}: every version's manifest in the folder of
  // the latest delivery of that name (files of packages left out).
  StatusOr<nlohmann::json> History(const std::string& name);
  // POST /api/v1/deliveries/{id}/retry: what failed or was cancelled runs
  // again (all of it, or one deliverable's); FarmState::Retry.
  StatusOr<nlohmann::json> RetryDelivery(const std::string& id, const std::string& deliverable);
  // POST /api/v1/deliveries/{id}/cancel {"deliverable": NAME}.
  StatusOr<nlohmann::json> CancelDeliverable(const std::string& id, const std::string& deliverable);
  StatusOr<nlohmann::json> SetDeliveryPriority(const std::string& id, int priority);
  nlohmann::json ListWorkers();
  // Puts a quarantined worker back into rotation. NotFound when it is not.
  Status ReleaseWorker(const std::string& name);
  // POST /api/v1/workers/{name}/drain.
  Status DrainWorker(const std::string& name);
  // /healthz: whether Redis answers and takes writes, and has not lost its
  // data since the start; `error` says what is wrong.
  struct Health {
    bool ok = true;
    std::string error;
  };
  Health CheckHealth();
  // GET /api/v1/webhooks and POST /api/v1/webhooks/dead/{entry}/redeliver.
  StatusOr<nlohmann::json> Webhooks();
  Status RedeliverWebhook(const std::string& entry_id);

 private:
  struct ManifestTask;
  // REQUIRES: mu_ held. Persists what fx dirtied (and anything still pending
  // from a failed attempt), then sends fx's messages; on a Redis failure the
  // messages wait with the records.
  void ApplyLocked(Effects fx);
  // REQUIRES: mu_ held. Sends now the pending messages that need nothing
  // persisted: a publish grant (the attempt's running state was persisted
  // when it was assigned; a grant changes nothing stored), a heartbeat, a
  // reconnect. A peer's messages keep their order: after one that waits for
  // the save, the rest of that peer's wait too.
  void SendUnpersistedLocked();
  // REQUIRES: mu_ held, router_ set. Sends `out`; false when its peer is
  // gone (ROUTER_MANDATORY).
  bool SendLocked(const Outgoing& out);
  // REQUIRES: mu_ held. One turn of the event loop: the waiting worker
  // messages, a tick, and their effects.
  void RunOnceLocked();
  // Renews the lease when due; false when another coordinator has led since
  // (this one must stop).
  bool RenewLease();
  struct SubmitLane;
  // A submission lane of its own (the first free one; when none is, waits
  // for one), returned locked.
  SubmitLane& AcquireSubmitLane();
  // REQUIRES: `lane` held. The next delivery sequence number, from a block
  // reserved in Redis (one write per kSeqBlock submissions).
  StatusOr<uint64_t> NextSeq(SubmitLane& lane);
  // REQUIRES: `lane` held. The next one after a new block past `past` (an
  // id Redis handed out again: it lost its data).
  StatusOr<uint64_t> NextSeqPast(SubmitLane& lane, uint64_t past);
  // REQUIRES: `lane` and seq_mu_ held. Moves Redis' sequence on by
  // `advance`; the block is the kSeqBlock numbers ending there.
  StatusOr<uint64_t> NextSeqOfNewBlockLocked(SubmitLane& lane, uint64_t advance);
  // REQUIRES: mu_ held. Copies what the manifest of a finished delivery is
  // made of and hands it to the manifest thread; the API shows the delivery running until it
  // is written.
  void QueueManifestLocked(const std::string& delivery_id);
  // The manifest thread: opens the delivery's folder once, re-checks that
  // it lies inside the allowed roots, removes its parts folder and writes its
  // manifest relative to it (temp file, fsync, rename, fsync of the folder),
  // off the event loop. A failed write is shown in the API and retried with
  // backoff (manifest_retry_*); when stopping, what is due is tried once.
  void ManifestLoop();
  // One try at a task; OK or why not.
  Status WriteManifest(const ManifestTask& task);
  void Wake();
  // REQUIRES: mu_ held. Enqueues the webhook events of these deliveries not
  // enqueued yet (their state is persisted).
  void ReconcileWebhooksLocked(const std::set<std::string>& delivery_ids);
  void StartHttp();
  // Redis' rf:epoch is no longer the one seen at start: say so (once in the
  // log; the metric and /healthz from then on).
  void NoteRedisDataLost(const std::string& why);
  // REQUIRES: `lane` held. Checks rf:epoch over the lane's connection.
  void CheckEpoch(SubmitLane& lane);

  CoordinatorOptions options_;
  Clock* clock_;
  ProcessRunner* runner_;

  std::mutex mu_;
  FarmState farm_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<JobStore> store_;
  // Submissions are persisted on connections of their own, kSubmitLanes at
  // once (Redis syncs them together), each lane used by one at a time.
  // Lock order: a lane, then seq_mu_, then mu_.
  struct SubmitLane {
    std::mutex mu;
    std::unique_ptr<RedisClient> redis;  // guarded by mu
    std::unique_ptr<JobStore> store;     // guarded by mu
  };
  static constexpr int kSubmitLanes = 4;
  std::vector<std::unique_ptr<SubmitLane>> submit_lanes_;  // made by Start
  std::atomic<size_t> next_lane_{0};
  static constexpr uint64_t kSeqBlock = 64;
  std::mutex seq_mu_;
  uint64_t seq_next_ = 0;  // guarded by seq_mu_
  uint64_t seq_last_ = 0;  // guarded by seq_mu_
  // Output folders of submissions under way (reserved until their delivery
  // is added or they are refused).
  std::set<std::string> dirs_submitting_;  // guarded by mu_
  std::string redis_epoch_;                // rf:epoch at start; set once
  std::atomic<bool> redis_data_lost_{false};
  ProbeCache probe_cache_;         // sources probed once per identity, not per submission
  Effects pending_;                // not yet persisted (Redis was down)
  int assignments_persisted_ = 0;  // for fault_kill_before_assignment
  int results_received_ = 0;       // for fault_kill_on_result
  // When the event loop hands freed memory back to the system: a second
  // after the last submission; zero when nothing is due.
  SteadyTime trim_after_{};
  // Parse, check, probe (probe_cache_), plan: what `reelfarm plan` does too.
  SubmissionPipeline submission_;
  std::unique_ptr<RedisClient> lease_redis_;     // the lease's own connection
  std::unique_ptr<LeaderLease> lease_;           // null without a lease
  std::atomic<bool> active_{false};              // holds the lease (or has none)
  SteadyTime lease_renewed_{}, next_renewal_{};  // main thread only
  bool lease_warned_ = false;

  std::unique_ptr<zmq::context_t> zmq_;
  std::unique_ptr<ZapAuthenticator> zap_;  // before router_: outlives it
  std::unique_ptr<zmq::socket_t> router_;
  std::unique_ptr<zmq::socket_t> wake_push_;  // guarded by mu_
  std::unique_ptr<zmq::socket_t> wake_pull_;

  struct ManifestTask {
    std::string delivery_id;
    std::string output_dir;
    // What it is made of; built into `content` by the manifest thread.
    std::optional<ManifestSnapshot> snapshot;
    std::string content;
    int version = 1;         // written as manifests/v<version>.json too
    std::string cache_root;  // kept under cache_max_bytes afterwards
    std::string cache_error;
    int failures = 0;         // tries that failed so far
    SteadyTime not_before{};  // the next try, after a failure
  };
  static constexpr int kManifestNice = 10;  // the manifest thread's nice value
  // Lock order: mu_, then manifest_mu_.
  std::mutex manifest_mu_;
  std::condition_variable manifest_cv_;
  std::deque<ManifestTask> manifest_queue_;  // guarded by manifest_mu_
  bool manifest_stop_ = false;               // guarded by manifest_mu_
  std::thread manifest_thread_;

  // Webhooks: the outbox is used under mu_ (its API part on its own
  // connection); the sender runs on its own thread while active.
  std::unique_ptr<WebhookOutbox> webhooks_;
  std::unique_ptr<WebhookSender> webhook_sender_;
  std::set<std::string> webhook_dirty_;  // guarded by mu_: deliveries changed, not yet saved
  SteadyTime webhook_retry_at_{};        // guarded by mu_

  std::unique_ptr<GuardedHttpServer> http_;
  std::thread http_thread_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<CoordinatorMetrics> coord_metrics_;
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_COORDINATOR_H_
