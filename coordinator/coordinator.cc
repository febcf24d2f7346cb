#include "coordinator/coordinator.h"

#include <httplib.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/curve_auth.h"
#include "common/daemon_util.h"
#include "common/fs_util.h"
#include "common/metrics.h"
#include "common/output_cache.h"
#include "common/probe.h"
#include "common/redis_client.h"
#include "common/secure.h"
#include "common/service_notify.h"
#include "common/versions.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/http_guard.h"
#include "coordinator/job_store.h"
#include "coordinator/manifest.h"
#include "coordinator/web_ui.h"
#include "planning/output_keys.h"

namespace reelfarm {

namespace {

bool SplitHostPort(const std::string& addr, std::string* host, int* port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return false;
  *host = addr.substr(0, colon);
  try {
    *port = std::stoi(addr.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return *port > 0 && *port < 65536;
}

nlohmann::json ErrorsJson(const std::vector<SpecError>& errors) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : errors) {
    list.push_back({{"file", e.file},
                    {"line", e.line},
                    {"field", e.field},
                    {"message", e.message},
                    {"text", e.ToString()}});
  }
  return {{"error", "invalid spec"}, {"errors", list}};
}

SubmitOutcome Invalid(const std::vector<SpecError>& errors) { return {422, ErrorsJson(errors)}; }

// Attempt keys are secrets: from the CSPRNG, never the farm's seeded generator.
CoordinatorOptions WithSecureAttemptKeys(CoordinatorOptions options) {
  options.farm.random_bytes = [](size_t n) { return SecureRandomBytes(n); };
  return options;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, Clock* clock, ProcessRunner* runner)
    : options_(WithSecureAttemptKeys(std::move(options))),
      clock_(clock),
      runner_(runner),
      farm_(options_.farm),
      submission_(SubmissionOptions{.allowed_roots = options_.allowed_roots,
                                    .ffprobe = options_.ffprobe,
                                    .planner = options_.planner,
                                    .reuse_outputs = options_.reuse_outputs,
                                    .cache_root = options_.cache_dir},
                  runner_, &probe_cache_) {}

Coordinator::~Coordinator() {
  if (webhook_sender_) webhook_sender_->Stop();
  if (http_) http_->stop();
  if (http_thread_.joinable()) http_thread_.join();
  {
    std::lock_guard<std::mutex> lock(manifest_mu_);
    manifest_stop_ = true;
  }
  manifest_cv_.notify_all();
  if (manifest_thread_.joinable()) manifest_thread_.join();
}

Status Coordinator::Start(const std::atomic<bool>* stop, ServiceNotifier* notifier) {
  auto ep = ParseRedisUrl(options_.redis_url);
  if (!ep.ok()) return ep.status();
  redis_ = std::make_unique<RedisClient>(*ep);
  store_ = std::make_unique<JobStore>(redis_.get());
  for (int k = 0; k < kSubmitLanes; ++k) {
    auto lane = std::make_unique<SubmitLane>();
    lane->redis = std::make_unique<RedisClient>(*ep);
    lane->store = std::make_unique<JobStore>(lane->redis.get());
    submit_lanes_.push_back(std::move(lane));
  }
  Status ping = redis_->Ping();
  if (!ping.ok()) return ping;
  auto epoch = store_->EnsureEpoch(HexBytes(SecureRandomBytes(16)));
  if (!epoch.ok()) return epoch.status();
  redis_epoch_ = *epoch;

  // Metrics first: a standby is scraped too (up, reelfarm_coordinator_active 0).
  if (!options_.metrics.empty()) {
    auto m = MetricsServer::Start(options_.metrics, "coordinator");
    if (!m.ok()) return m.status();
    metrics_ = std::move(m.value());
    coord_metrics_ = std::make_unique<CoordinatorMetrics>(metrics_->registry());
  }
  if (options_.lease_ttl.count() > 0) {
    lease_redis_ = std::make_unique<RedisClient>(*ep);
    char host[256] = {};
    (void)gethostname(host, sizeof(host) - 1);
    const std::string owner =
        std::string(host) + ":" + std::to_string(::getpid()) + ":" + HexBytes(SecureRandomBytes(6));
    lease_ = std::make_unique<LeaderLease>(lease_redis_.get(),
                                           LeaseOptions{.ttl = options_.lease_ttl}, owner);
    bool standby = false;
    for (;;) {
      auto got = lease_->TryAcquire();
      if (got.ok() && *got) break;
      if (!standby) {
        auto holder = lease_->Holder();
        spdlog::info(
            "standby: coordinator {} is active; taking over when it stops renewing its "
            "lease ({} ms)",
            holder.ok() ? *holder : "?", options_.lease_ttl.count());
        standby = true;
        StartHttp();  // /healthz answers "standby", the API 503
        // Up and doing its job (waiting): systemd must not time it out.
        if (notifier != nullptr) notifier->Ready("standby: another coordinator is active");
      }
      if (notifier != nullptr) notifier->Alive();
      if (stop != nullptr && stop->load()) return Status::Cancelled("stopped while standby");
      std::this_thread::sleep_for(options_.lease_ttl / 6);
    }
    spdlog::info("active: coordinator {} holds the lease (epoch {})", owner, lease_->epoch());
    // Every write from now on only while the lease is this coordinator's.
    store_->set_fence(lease_->fence());
    for (auto& lane : submit_lanes_) lane->store->set_fence(lease_->fence());
    lease_renewed_ = clock_->Now();
  }
  webhooks_ = std::make_unique<WebhookOutbox>(options_.webhooks, redis_.get(), *ep, clock_);
  if (lease_) webhooks_->set_fence(lease_->fence());
  Status hooks = webhooks_->Init();
  if (!hooks.ok()) return hooks;
  manifest_thread_ = std::thread([this] { ManifestLoop(); });

  std::vector<std::pair<DeliveryRecord, std::vector<JobRecord>>> loaded;
  Status s = store_->LoadAll(&loaded);
  if (!s.ok()) return s;
  {
    std::vector<std::string> ids;
    for (const auto& [d, jobs] : loaded) ids.push_back(d.id);
    std::lock_guard<std::mutex> lock(mu_);
    Status hooks_loaded = webhooks_->Load(ids);
    if (!hooks_loaded.ok()) return hooks_loaded;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    Effects fx;
    int unfinished = 0;
    for (auto& [d, jobs] : loaded) {
      bool was_finished = d.finished;
      std::string id = d.id;
      std::string manifest = d.output_dir + "/manifest.json";
      if (!was_finished) ++unfinished;
      farm_.AddDelivery(std::move(d), std::move(jobs), clock_->Now(), &fx);
      // Finished before a crash but its manifest was never written.
      if (was_finished && !std::filesystem::exists(manifest)) QueueManifestLocked(id);
    }
    std::map<std::string, std::string> quarantined;
    Status q = store_->LoadQuarantine(&quarantined);
    if (!q.ok()) return q;
    for (const auto& [name, reason] : quarantined) farm_.Quarantine(name, reason, &fx);
    fx.quarantine_changes.clear();  // already in Redis
    spdlog::info("loaded {} deliveries from redis ({} unfinished), {} quarantined workers",
                 loaded.size(), unfinished, quarantined.size());
    ApplyLocked(std::move(fx));
    // What was missed while no coordinator ran (or before a crash) is
    // enqueued now; what was enqueued before is not again.
    std::set<std::string> ids;
    for (const auto& [id, d] : farm_.deliveries()) ids.insert(id);
    ReconcileWebhooksLocked(ids);
  }

  zmq_ = std::make_unique<zmq::context_t>(1);
  if (options_.curve_secret_file.empty() != options_.curve_allow_file.empty()) {
    return Status::InvalidArgument("--curve-secret and --curve-allow go together");
  }
  std::optional<CurveKeyPair> curve;
  if (!options_.curve_secret_file.empty()) {
    auto pair = ReadCurveSecretFile(options_.curve_secret_file);
    if (!pair.ok()) return pair.status();
    auto allowed = ReadCurveAllowList(options_.curve_allow_file);
    if (!allowed.ok()) return allowed.status();
    zap_ = std::make_unique<ZapAuthenticator>(zmq_.get(), *allowed);
    curve = *pair;
    spdlog::info("CURVE on: {} worker keys allowed; coordinator public key {}", allowed->size(),
                 pair->public_key);
  }
  router_ = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::router);
  if (curve) {
    router_->set(zmq::sockopt::curve_server, 1);
    router_->set(zmq::sockopt::curve_secretkey, curve->secret_key);
    router_->set(zmq::sockopt::zap_domain, "reelfarm");
  }
  router_->set(zmq::sockopt::router_mandatory, 1);
  router_->set(zmq::sockopt::linger, 0);
  // A peer announcing a larger frame is disconnected before it is read.
  if (options_.max_message_bytes > 0) {
    router_->set(zmq::sockopt::maxmsgsize, options_.max_message_bytes);
  }
  try {
    router_->bind(options_.bind);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + options_.bind + ": " + e.what());
  }
  wake_pull_ = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::pull);
  wake_pull_->bind("inproc://wake");
  wake_push_ = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::push);
  wake_push_->set(zmq::sockopt::linger, 0);
  wake_push_->connect("inproc://wake");

  active_ = true;
  if (coord_metrics_) coord_metrics_->SetActive(true);
  webhook_sender_ = std::make_unique<WebhookSender>(webhooks_.get(), *ep,
                                                    lease_ ? lease_->fence() : RedisClient::Fence{},
                                                    clock_, coord_metrics_.get());
  {
    std::lock_guard<std::mutex> lock(mu_);
    webhooks_->set_on_enqueue([sender = webhook_sender_.get()] { sender->Wake(); });
  }
  webhook_sender_->Start();
  if (!http_) StartHttp();
  spdlog::info("coordinator ready: workers on {}, API on {}, metrics on {}", options_.bind,
               options_.http, options_.metrics);
  return Status::OK();
}

bool Coordinator::RenewLease() {
  const SteadyTime now = clock_->Now();
  if (!lease_ || now < next_renewal_) return true;
  next_renewal_ = now + options_.lease_ttl / 3;
  auto renewed = lease_->Renew();
  if (!renewed.ok()) {
    // Redis away: writes fail (and are fenced) until it is renewed.
    if (now - lease_renewed_ > options_.lease_ttl && !lease_warned_) {
      spdlog::warn("cannot renew the coordinator lease: {}", renewed.status().message());
      lease_warned_ = true;
    }
    return true;
  }
  switch (*renewed) {
    case LeaderLease::Renewal::kHeld:
      lease_renewed_ = now;
      lease_warned_ = false;
      return true;
    case LeaderLease::Renewal::kReclaimed:
      spdlog::info("coordinator lease taken back after Redis lost it (nobody held it since)");
      lease_renewed_ = now;
      lease_warned_ = false;
      return true;
    case LeaderLease::Renewal::kTaken: {
      auto holder = lease_->Holder();
      spdlog::error("coordinator {} took over the lease; this one stops (its writes are fenced)",
                    holder.ok() ? *holder : "?");
      return false;
    }
  }
  return true;
}

void Coordinator::Wake() {
  // REQUIRES: mu_ held (the push socket is not thread-safe).
  if (wake_push_) (void)wake_push_->send(zmq::const_buffer("", 0), zmq::send_flags::dontwait);
}

bool Coordinator::SendLocked(const Outgoing& out) {
  const std::string payload = out.Wire();
  try {
    (void)router_->send(zmq::buffer(out.peer),
                        zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)router_->send(zmq::buffer(payload), zmq::send_flags::dontwait);
    return true;
  } catch (const zmq::error_t& e) {
    spdlog::debug("cannot send to a worker: {}", e.what());
    return false;
  }
}

void Coordinator::SendUnpersistedLocked() {
  if (!router_) return;
  std::set<std::string> waiting;  // peers with a message that waits for the save
  std::vector<Outgoing> rest;
  for (auto& out : pending_.messages) {
    const pb::CoordinatorMessage& m = out.message;
    const bool needs_nothing = m.has_publish_grant() || m.has_heartbeat() || m.has_reconnect();
    // A peer found gone is found out again, and handled, after the save.
    if (needs_nothing && !waiting.count(out.peer) && SendLocked(out)) continue;
    waiting.insert(out.peer);
    rest.push_back(std::move(out));
  }
  pending_.messages.swap(rest);
}

void Coordinator::ApplyLocked(Effects fx) {
  for (const auto& e : fx.events) {
    LogFarmEvent(e);
    if (coord_metrics_) coord_metrics_->Observe(e, farm_);
  }
  pending_.dirty_jobs.merge(fx.dirty_jobs);
  pending_.rewritten_jobs.merge(fx.rewritten_jobs);
  pending_.dirty_deliveries.merge(fx.dirty_deliveries);
  for (auto& [name, reason] : fx.quarantine_changes) {
    pending_.quarantine_changes[name] = reason;
    if (!reason.empty()) spdlog::warn("worker {} quarantined: {}", name, reason);
  }
  for (auto& m : fx.messages) pending_.messages.push_back(std::move(m));
  SendUnpersistedLocked();
  for (auto& id : fx.finished_deliveries) {
    DeliveryRecord* d = farm_.MutableDelivery(id);
    if (d != nullptr && d->finished_ms == 0) d->finished_ms = clock_->WallMillis();
    pending_.finished_deliveries.push_back(id);
  }
  if (coord_metrics_) coord_metrics_->OnStaleResults(fx.stale_results);
  for (const auto& f : fx.forged) {
    spdlog::warn("refused a forged {} from connection {}{} about {}: {}", f.kind, HexBytes(f.peer),
                 f.peer_key.empty() ? "" : " (key " + f.peer_key + ")", f.job_id, f.why);
    if (coord_metrics_) coord_metrics_->OnForged(f.kind);
  }

  // Redis refuses: the messages wait with their records, except assignments,
  // which are taken back (their jobs queued again, the attempts uncounted),
  // and nothing is assigned until Redis takes writes again. A Redis outage
  // delays work; it does not use up attempts of jobs that never started.
  auto hold = [this](const char* what, const Status& s) {
    Effects undo;
    int taken_back = 0;
    for (auto it = pending_.messages.begin(); it != pending_.messages.end();) {
      if (it->message.has_assign()) {
        farm_.Unassign(it->message.assign().job().id(), it->message.assign().token(), &undo);
        it = pending_.messages.erase(it);
        ++taken_back;
      } else {
        ++it;
      }
    }
    pending_.dirty_jobs.merge(undo.dirty_jobs);
    if (!farm_.dispatch_paused()) spdlog::warn("pausing assignments until Redis takes writes");
    farm_.set_dispatch_paused(true);
    spdlog::warn("cannot persist {}, holding {} messages ({} assignments taken back): {}", what,
                 pending_.messages.size(), taken_back, s.ToString());
  };
  if (!pending_.quarantine_changes.empty()) {
    Status s = store_->SaveQuarantine(pending_.quarantine_changes);
    if (!s.ok()) {
      hold("quarantine", s);
      return;
    }
    pending_.quarantine_changes.clear();
  }
  if (webhooks_ && webhooks_->AnyTargets()) {
    for (const auto& id : pending_.dirty_deliveries) webhook_dirty_.insert(id);
    for (const auto& id : pending_.dirty_jobs) {
      if (auto* j = farm_.FindJob(id)) webhook_dirty_.insert(j->delivery_id);
    }
  }
  if (!pending_.dirty_jobs.empty() || !pending_.dirty_deliveries.empty()) {
    std::vector<const DeliveryRecord*> ds;
    std::vector<const JobRecord*> js;
    for (const auto& id : pending_.dirty_deliveries) {
      if (auto* d = farm_.FindDelivery(id)) ds.push_back(d);
    }
    for (const auto& id : pending_.dirty_jobs) {
      if (auto* j = farm_.FindJob(id)) js.push_back(j);
    }
    Status s = store_->Save(ds, js, pending_.rewritten_jobs);
    if (!s.ok()) {
      hold("state", s);
      return;
    }
    pending_.dirty_jobs.clear();
    pending_.rewritten_jobs.clear();
    pending_.dirty_deliveries.clear();
  }
  if (farm_.dispatch_paused()) {
    farm_.set_dispatch_paused(false);
    spdlog::info("Redis takes writes again: assigning");
  }
  // Manifests after their records are durable.
  for (const auto& id : pending_.finished_deliveries) QueueManifestLocked(id);
  pending_.finished_deliveries.clear();
  // Webhooks of what is durable now.
  if (!webhook_dirty_.empty()) {
    std::set<std::string> ids;
    ids.swap(webhook_dirty_);
    ReconcileWebhooksLocked(ids);
  }

  if (options_.fault_kill_before_assignment > 0) {
    for (const auto& out : pending_.messages) {
      if (out.message.has_assign() &&
          ++assignments_persisted_ == options_.fault_kill_before_assignment) {
        spdlog::warn(
            "fault injection: killing the coordinator after persisting assignment {} "
            "of job {} and before sending it",
            assignments_persisted_, out.message.assign().job().id());
        spdlog::default_logger()->flush();
        raise(SIGKILL);
      }
    }
  }
  Effects gone;  // peers whose connection is gone, learnt by sending to them
  if (router_) {
    std::set<std::string> gone_peers;
    for (auto& out : pending_.messages) {
      if (gone_peers.count(out.peer) || SendLocked(out)) continue;
      // The peer is gone (ROUTER_MANDATORY): an assignment it never got
      // does not count, and its worker is lost now rather than after an
      // expiry (its restarted process may take the name at once).
      gone_peers.insert(out.peer);
      if (out.message.has_assign()) {
        farm_.Unassign(out.message.assign().job().id(), out.message.assign().token(), &gone);
      }
    }
    for (const auto& peer : gone_peers) farm_.PeerGone(peer, clock_->Now(), &gone);
  }
  pending_.messages.clear();
  if (!gone.dirty_jobs.empty() || !gone.events.empty()) {
    ApplyLocked(std::move(gone));  // each peer is lost once: this ends
    return;
  }
  if (coord_metrics_) coord_metrics_->MaybeUpdateGauges(farm_, clock_->Now());
}

void Coordinator::ReconcileWebhooksLocked(const std::set<std::string>& delivery_ids) {
  if (!webhooks_) return;
  std::vector<WebhookDeliveryView> views;
  for (const auto& id : delivery_ids) {
    if (!webhooks_->HasTargets(id)) continue;
    if (const DeliveryRecord* d = farm_.FindDelivery(id)) {
      views.push_back(ViewOfDelivery(farm_, *d));
    }
  }
  // A failure is logged by the outbox and tried again from RunOnceLocked.
  (void)webhooks_->Reconcile(views);
}

StatusOr<nlohmann::json> Coordinator::Webhooks() { return webhooks_->Describe(); }

Status Coordinator::RedeliverWebhook(const std::string& entry_id) {
  return webhooks_->Redeliver(entry_id);
}

void Coordinator::QueueManifestLocked(const std::string& delivery_id) {
  DeliveryRecord* d = farm_.MutableDelivery(delivery_id);
  if (d == nullptr) return;
  d->manifest_pending = true;
  ManifestTask task;
  task.delivery_id = delivery_id;
  task.output_dir = d->output_dir;
  // Copied here, built there: a manifest of many deliverables costs the
  // event loop milliseconds as JSON.
  task.snapshot = SnapshotForManifest(farm_, *d);
  task.version = std::max(1, d->plan.version());
  task.cache_root = d->plan.cache_root();
  {
    std::lock_guard<std::mutex> lock(manifest_mu_);
    manifest_queue_.push_back(std::move(task));
  }
  manifest_cv_.notify_one();
}

Status Coordinator::WriteManifest(const ManifestTask& task) {
  // The folder is opened once and checked where it really is: a path swapped
  // for a symlink since submission is refused, not written through.
  auto dir = OpenedDir::Open(task.output_dir, options_.allowed_roots);
  if (!dir.ok()) return dir.status();
  // The parts of chunked deliverables are joined or useless now.
  Status parts = dir->RemoveTree(kPartsFolder);
  if (!parts.ok()) spdlog::warn("delivery {}: {}", task.delivery_id, parts.ToString());
  // Every version's manifest is kept; manifest.json is the latest's.
  const std::string history = (std::filesystem::path(dir->real_path()) / kManifestsFolder).string();
  Status made = CreateDirsDurably(history);
  if (!made.ok()) return made;
  auto versions = OpenedDir::Open(history, options_.allowed_roots);
  if (!versions.ok()) return versions.status();
  Status kept = versions->WriteFileAtomically(ManifestFileName(task.version), task.content);
  if (!kept.ok()) return kept;
  Status latest = dir->WriteFileAtomically("manifest.json", task.content);
  if (!latest.ok() || task.cache_root.empty()) return latest;
  EvictionResult evicted = EvictCache(task.cache_root, options_.cache_max_bytes);
  if (coord_metrics_) coord_metrics_->OnCacheEviction(evicted);
  if (evicted.evicted > 0) {
    spdlog::info("output cache {}: {} entries ({} bytes) removed to stay under {} bytes",
                 task.cache_root, evicted.evicted, evicted.bytes_freed, options_.cache_max_bytes);
  }
  return latest;
}

void Coordinator::ManifestLoop() {
  // Background work: where CPUs are short, the event loop (assignments,
  // results) goes first; a manifest may wait a little.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kManifestNice);
  for (;;) {
    ManifestTask task;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(manifest_mu_);
      for (;;) {
        stopping = manifest_stop_;
        if (manifest_queue_.empty()) {
          if (stopping) return;
          manifest_cv_.wait(lock);
          continue;
        }
        auto due = std::min_element(manifest_queue_.begin(), manifest_queue_.end(),
                                    [](const ManifestTask& a, const ManifestTask& b) {
                                      return a.not_before < b.not_before;
                                    });
        // Stopping: each task once more, due or not; a restart finds the
        // manifests still missing and tries again.
        if (stopping || due->not_before <= clock_->Now()) {
          task = std::move(*due);
          manifest_queue_.erase(due);
          break;
        }
        manifest_cv_.wait_for(lock, due->not_before - clock_->Now());
      }
    }
    if (task.snapshot) {
      task.content = BuildManifest(*task.snapshot).dump(2) + "\n";
      task.snapshot.reset();
    }
    Status s = WriteManifest(task);
    std::lock_guard<std::mutex> lock(mu_);
    LogFields log_fields({{"delivery", task.delivery_id}});
    DeliveryRecord* d = farm_.MutableDelivery(task.delivery_id);
    if (s.ok()) {
      if (d != nullptr) {
        d->manifest_pending = false;
        d->manifest_error.clear();
        d->manifest_failures = 0;
        if (coord_metrics_ && task.failures > 0) coord_metrics_->UpdateGauges(farm_, clock_->Now());
        DeliveryCounts c = farm_.Counts(*d);
        spdlog::info("delivery {} finished: {} ({} delivered, {} failed); manifest {}",
                     task.delivery_id, c.state, c.delivered, c.failed,
                     task.output_dir + "/manifest.json");
        ReconcileWebhooksLocked({task.delivery_id});  // delivery.finished
      }
      continue;
    }
    ++task.failures;
    auto backoff = options_.manifest_retry_initial;
    for (int i = 1; i < task.failures && backoff < options_.manifest_retry_max; ++i) backoff *= 2;
    backoff = std::min(backoff, options_.manifest_retry_max);
    if (d != nullptr) {
      d->manifest_error = s.ToString();
      d->manifest_failures = task.failures;
    }
    if (coord_metrics_) {
      coord_metrics_->OnManifestWriteFailed();
      coord_metrics_->UpdateGauges(farm_, clock_->Now());
    }
    if (stopping) {
      spdlog::error("delivery {}: cannot write its manifest: {}; tried again at the next start",
                    task.delivery_id, s.ToString());
      continue;
    }
    spdlog::error("delivery {}: cannot write its manifest (try {}): {}; trying again in {} ms",
                  task.delivery_id, task.failures, s.ToString(), backoff.count());
    task.not_before = clock_->Now() + backoff;
    std::lock_guard<std::mutex> qlock(manifest_mu_);
    manifest_queue_.push_back(std::move(task));
  }
}

Status Coordinator::Run(const std::atomic<bool>& stop, ServiceNotifier* notifier) {
  std::vector<zmq::pollitem_t> items = {{router_->handle(), 0, ZMQ_POLLIN, 0},
                                        {wake_pull_->handle(), 0, ZMQ_POLLIN, 0}};
  auto tick = std::chrono::milliseconds(std::max<int64_t>(
      10, std::chrono::duration_cast<std::chrono::milliseconds>(options_.farm.heartbeat_interval)
                  .count() /
              4));
  while (!stop.load()) {
    if (notifier != nullptr) notifier->Alive();
    try {
      zmq::poll(items.data(), items.size(), tick);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    zmq::message_t drain;
    while (wake_pull_->recv(drain, zmq::recv_flags::dontwait)) {
    }
    SteadyTime trim_after{};
    {
      std::lock_guard<std::mutex> lock(mu_);
      RunOnceLocked();
      trim_after = trim_after_;
    }
    if (!RenewLease()) {
      active_ = false;
      if (coord_metrics_) coord_metrics_->SetActive(false);
      if (notifier != nullptr) notifier->Stopping("coordinator lost its lease");
      return Status::Unavailable("lost the coordinator lease to another coordinator");
    }
    // After a burst of submissions: planning leaves freed scratch memory
    // spread over the heap (and the API threads' arenas); hand it back.
    if (trim_after != SteadyTime{} && clock_->Now() >= trim_after) {
      malloc_trim(0);
      std::lock_guard<std::mutex> lock(mu_);
      if (trim_after_ == trim_after) trim_after_ = SteadyTime{};
    }
  }
  if (notifier != nullptr) notifier->Stopping("coordinator stopping");
  // Webhooks due are sent once more while the lease is still this one's.
  if (webhook_sender_) webhook_sender_->Stop(/*send_due=*/true);
  // A clean stop hands the lease over at once.
  if (lease_) lease_->Release();
  return Status::OK();
}

void Coordinator::RunOnceLocked() {
  Effects fx;
  for (int i = 0; i < 1000; ++i) {
    std::vector<zmq::message_t> frames;
    auto n = zmq::recv_multipart(*router_, std::back_inserter(frames), zmq::recv_flags::dontwait);
    if (!n) break;
    if (frames.size() != 2) continue;
    pb::WorkerMessage msg;
    if (!msg.ParseFromArray(frames[1].data(), static_cast<int>(frames[1].size()))) {
      spdlog::warn("dropping a malformed worker message ({} bytes)", frames[1].size());
      continue;
    }
    if (options_.fault_kill_on_result > 0 && msg.has_result() &&
        ++results_received_ == options_.fault_kill_on_result) {
      spdlog::warn("fault injection: killing the coordinator on receiving result {} of job {}",
                   results_received_, msg.result().job_id());
      spdlog::default_logger()->flush();
      raise(SIGKILL);
    }
    // With CURVE, the ZAP handler's User-Id: the peer's authenticated key.
    const char* user_id = zmq_msg_gets(frames[1].handle(), "User-Id");
    farm_.OnMessage(frames[0].to_string(), msg, clock_->Now(), &fx,
                    user_id != nullptr ? std::string(user_id) : std::string());
  }
  farm_.Tick(clock_->Now(), &fx);
  ApplyLocked(std::move(fx));
  // Webhook enqueues Redis refused: again, at most every second.
  if (webhooks_ && clock_->Now() >= webhook_retry_at_) {
    webhook_retry_at_ = clock_->Now() + std::chrono::seconds(1);
    std::set<std::string> again = webhooks_->TakePending();
    if (!again.empty()) ReconcileWebhooksLocked(again);
  }
}

Coordinator::SubmitLane& Coordinator::AcquireSubmitLane() {
  const size_t first = next_lane_.fetch_add(1) % submit_lanes_.size();
  for (size_t k = 0; k < submit_lanes_.size(); ++k) {
    SubmitLane& lane = *submit_lanes_[(first + k) % submit_lanes_.size()];
    if (lane.mu.try_lock()) return lane;
  }
  SubmitLane& lane = *submit_lanes_[first];  // every lane busy: wait for one
  lane.mu.lock();
  return lane;
}

StatusOr<uint64_t> Coordinator::NextSeq(SubmitLane& lane) {
  std::lock_guard<std::mutex> lock(seq_mu_);
  if (seq_next_ != 0 && seq_next_ <= seq_last_) return seq_next_++;
  return NextSeqOfNewBlockLocked(lane, kSeqBlock);
}

StatusOr<uint64_t> Coordinator::NextSeqPast(SubmitLane& lane, uint64_t past) {
  std::lock_guard<std::mutex> lock(seq_mu_);
  return NextSeqOfNewBlockLocked(
      lane, past + kSeqBlock > seq_last_ ? past + kSeqBlock - seq_last_ : kSeqBlock);
}

StatusOr<uint64_t> Coordinator::NextSeqOfNewBlockLocked(SubmitLane& lane, uint64_t advance) {
  auto last = lane.store->ReserveSeqs(advance);
  if (!last.ok()) return last.status();
  seq_last_ = *last;
  seq_next_ = *last - kSeqBlock + 1;
  return seq_next_++;
}

SubmitOutcome Coordinator::Submit(const std::string& spec_text, const std::string& spec_file,
                                  const std::string& base_dir,
                                  const std::vector<WebhookSpec>& extra_webhooks) {
  Submission planned = submission_.Run(spec_text, spec_file, base_dir);
  if (!planned.ok()) return Invalid(planned.errors);
  const DeliverySpec& spec = *planned.spec;
  std::vector<WebhookSubscription> hooks;
  if (auto errors = ReadWebhookSubscriptions(spec, extra_webhooks, options_.allowed_roots,
                                             webhooks_->allow(), &hooks);
      !errors.empty()) {
    return Invalid(errors);
  }
  // One submission into a folder at a time: it is reserved (under mu_) from
  // here until its delivery is added, or the submission refused. Two
  // unfinished deliveries writing the same files would fence each other's
  // attempts out; one folder serves one delivery at a time.
  int version = 0;  // the highest this farm knows in the folder
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto in_use = [&](const std::string& by) {
      return Invalid({{spec_file, spec.output_dir_line, "output_dir",
                       spec.output_dir + " is in use by " + by +
                           "; wait for it, cancel it, or choose another output_dir"}});
    };
    if (dirs_submitting_.count(spec.output_dir)) return in_use("a submission under way");
    for (const auto& [other_id, other] : farm_.deliveries()) {
      if (other.output_dir != spec.output_dir) continue;
      if (!other.finished || other.manifest_pending) {
        return in_use("unfinished delivery " + other_id);
      }
      version = std::max(version, other.plan.version());
    }
    dirs_submitting_.insert(spec.output_dir);
  }
  // Declared before any lock of mu_ below: released after it.
  struct DirReservation {
    Coordinator* self;
    std::string dir;
    ~DirReservation() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->dirs_submitting_.erase(dir);
    }
  } reservation{this, spec.output_dir};
  // Folders made for a delivery that is then refused (Redis full or down)
  // are taken back: a refused submission leaves nothing.
  struct MadeDirs {
    std::vector<std::string> dirs;  // deepest first
    bool keep = false;
    ~MadeDirs() {
      if (!keep) RemoveEmptyDirs(dirs);
    }
  } made{MissingDirs(spec.output_dir)};
  std::error_code ec;
  std::filesystem::create_directories(spec.output_dir, ec);
  if (ec) {
    return Invalid(
        {{spec_file, 0, "output_dir", "cannot create " + spec.output_dir + ": " + ec.message()}});
  }
  // The folder's next version: after every manifest it holds and every
  // delivery into it this farm knows (its manifest may not be written yet).
  version = std::max(version, HighestManifestVersion(spec.output_dir));
  ++version;
  // Each deliverable's key in this version, for what the last one keeps.
  std::map<std::string, std::string> keys;
  for (const auto& k : planned.plan.keys()) keys[k.deliverable()] = k.key();
  if (version > 1) {
    // What this version replaces or drops is kept first (never overwritten
    // while a reader may use it), as the spec's keep_versions says.
    Status kept = KeepReplacedFiles(spec.output_dir, version - 1, keys, spec.keep_versions);
    if (!kept.ok()) {
      return Invalid({{spec_file, spec.output_dir_line, "output_dir",
                       "cannot keep version " + std::to_string(version - 1) +
                           "'s files before replacing them: " + kept.message()}});
    }
  }
  planned.plan.set_version(version);
  planned.plan.set_keep_versions(spec.keep_versions);
  if (!planned.cache_root.empty()) {
    planned.plan.set_cache_root(planned.cache_root);
    SetCacheStores(planned.cache_root, version, &planned.plan);
  }
  // Persisted on a connection of its own, without holding mu_: the event
  // loop goes on while Redis syncs it, and submissions on other lanes share
  // Redis' fsync.
  SubmitLane& lane = AcquireSubmitLane();
  std::unique_lock<std::mutex> lane_lock(lane.mu, std::adopt_lock);
  CheckEpoch(lane);
  auto seq = NextSeq(lane);
  if (!seq.ok()) return {503, {{"error", "redis unavailable: " + seq.status().message()}}};
  // An id already used (Redis' sequence went backwards: it lost its data)
  // is never given again: the sequence jumps past every one this
  // coordinator knows.
  for (int tries = 0;; ++tries) {
    const std::string candidate = spec.name + "-" + std::to_string(*seq);
    uint64_t known_max = 0;
    bool known = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      known = farm_.FindDelivery(candidate) != nullptr;
      if (known) {
        for (const auto& [other_id, other] : farm_.deliveries()) {
          known_max = std::max(known_max, other.seq);
        }
      }
    }
    auto in_redis = known ? StatusOr<bool>(true) : lane.store->DeliveryExists(candidate);
    if (!in_redis.ok())
      return {503, {{"error", "redis unavailable: " + in_redis.status().message()}}};
    if (!*in_redis) break;
    NoteRedisDataLost("delivery id " + candidate + " was handed out again");
    if (tries == 3) return {503, {{"error", "no unused delivery id: redis lost its data"}}};
    seq = NextSeqPast(lane, std::max(known_max, *seq));
    if (!seq.ok()) return {503, {{"error", "redis unavailable: " + seq.status().message()}}};
  }

  DeliveryRecord d;
  d.id = spec.name + "-" + std::to_string(*seq);
  d.name = spec.name;
  d.spec_file = spec_file;
  d.output_dir = spec.output_dir;
  d.priority = spec.priority;
  d.seq = *seq;
  d.created_ms = clock_->WallMillis();
  d.plan = std::move(planned.plan);
  // Farm-unique job ids.
  std::map<std::string, std::string> rename;
  // A reuse job's fallback jobs (and their members) are named and depend
  // like the plan's own.
  auto name_all = [&](pb::Job* job, auto& self) -> void {
    std::string id = d.id + "." + job->id();
    rename[job->id()] = id;
    job->set_id(id);
    for (auto& member : *job->mutable_members()) self(&member, self);
    for (auto& f : *job->mutable_fallback()) self(&f, self);
  };
  auto point_all = [&](pb::Job* job, bool top, auto& self) -> void {
    if (!top) {
      for (auto& dep : *job->mutable_depends_on()) dep = rename[dep];
    }
    for (auto& member : *job->mutable_members()) self(&member, false, self);
    for (auto& f : *job->mutable_fallback()) self(&f, false, self);
  };
  for (auto& job : *d.plan.mutable_jobs()) name_all(&job, name_all);
  for (auto& job : *d.plan.mutable_jobs()) point_all(&job, true, point_all);
  // Within the delivery the costliest pieces go first (longest processing
  // time first): the cheap ones then fill the slots that free up at the end.
  std::vector<int> order(d.plan.jobs_size());
  for (int k = 0; k < d.plan.jobs_size(); ++k) order[k] = k;
  // The source's analysis, which others wait for, goes before everything.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const bool ea = d.plan.jobs(a).kind() == "analyse", eb = d.plan.jobs(b).kind() == "analyse";
    if (ea != eb) return ea;
    return d.plan.jobs(a).cost() > d.plan.jobs(b).cost();
  });
  std::vector<uint64_t> rank(order.size());
  for (size_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  std::vector<JobRecord> jobs;
  uint64_t n = 0;
  for (auto& job : *d.plan.mutable_jobs()) {
    for (auto& dep : *job.mutable_depends_on()) dep = rename[dep];
    JobRecord j;
    j.delivery_id = d.id;
    j.priority = d.priority;
    j.seq = d.seq * 100000 + rank[n++];
    j.state = job.depends_on_size() > 0 ? JobState::kWaiting : JobState::kQueued;
    d.job_ids.push_back(job.id());
    j.job = std::move(job);
    PackJob(&j);
    jobs.push_back(std::move(j));
  }
  // Stored once, in the job records (the delivery keeps their ids).
  DropPlanJobs(&d.plan);
  // The delivery's webhooks before the delivery: a stored delivery has them.
  if (!hooks.empty()) {
    Status saved = WebhookOutbox::SaveSubscriptions(lane.redis.get(),
                                                    lease_ ? lease_->fence() : RedisClient::Fence{},
                                                    kWebhookKeyPrefix, d.id, hooks);
    if (!saved.ok()) return {503, {{"error", "redis unavailable: " + saved.message()}}};
  }
  Status s = lane.store->SaveNewDelivery(d, jobs);
  lane_lock.unlock();
  if (!s.ok() && s.code() == Status::Code::kFailedPrecondition) {
    NoteRedisDataLost(s.message());
    return {503, {{"error", s.message() + ": redis lost its data? try again"}}};
  }
  if (!s.ok()) return {503, {{"error", "redis unavailable: " + s.message()}}};
  made.keep = true;
  if (version > 1) {
    Status aside = SetAsideDroppedFiles(d.output_dir, version - 1, keys, d.plan.keep_versions());
    // Left in place, the dropped files are harmless: not in the new manifest.
    if (!aside.ok()) spdlog::warn("delivery {}: {}", d.id, aside.ToString());
  }

  nlohmann::json body = {{"id", d.id},
                         {"name", d.name},
                         {"output_dir", d.output_dir},
                         {"jobs", jobs.size()},
                         {"failed_at_plan", d.plan.failures_size()}};
  LogFields log_fields({{"delivery", d.id}});
  spdlog::info("delivery {} submitted: {} jobs, {} failed at plan, into {}", d.id, jobs.size(),
               d.plan.failures_size(), d.output_dir);
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  const std::string new_id = d.id;
  webhooks_->AddSubscriptions(new_id, std::move(hooks));
  farm_.AddDelivery(std::move(d), std::move(jobs), clock_->Now(), &fx);
  ApplyLocked(std::move(fx));
  ReconcileWebhooksLocked({new_id});  // delivery.accepted (and plan failures)
  trim_after_ = clock_->Now() + std::chrono::seconds(1);
  if (coord_metrics_) {
    coord_metrics_->OnSubmitted(farm_.FindDelivery(body["id"].get<std::string>())->plan);
  }
  Wake();
  return {201, body};
}

nlohmann::json Coordinator::ListDeliveries() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const DeliveryRecord*> all;
  for (const auto& [id, d] : farm_.deliveries()) all.push_back(&d);
  std::sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->seq > b->seq; });
  const Eta eta = EstimateEta(farm_, clock_->Now());
  nlohmann::json list = nlohmann::json::array();
  for (const auto* d : all) list.push_back(DeliverySummaryJson(farm_, *d, &eta));
  return {{"deliveries", list}};
}

StatusOr<nlohmann::json> Coordinator::ShowDelivery(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const DeliveryRecord* d = farm_.FindDelivery(id);
  if (d == nullptr) return Status::NotFound("no delivery " + id);
  const Eta eta = EstimateEta(farm_, clock_->Now());
  return DeliveryDetailJson(farm_, *d, &eta);
}

StatusOr<nlohmann::json> Coordinator::CancelDelivery(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.Cancel(id, clock_->Now(), &fx);
  if (!s.ok()) return s;
  ApplyLocked(std::move(fx));
  LogFields log_fields({{"delivery", id}});
  spdlog::info("delivery {} cancelled", id);
  return DeliverySummaryJson(farm_, *farm_.FindDelivery(id));
}

StatusOr<nlohmann::json> Coordinator::RetryDelivery(const std::string& id,
                                                    const std::string& deliverable) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.Retry(id, deliverable, clock_->Now(), &fx);
  if (!s.ok()) return s;
  farm_.MutableDelivery(id)->finished_ms = 0;
  ApplyLocked(std::move(fx));
  LogFields log_fields({{"delivery", id}});
  spdlog::info("delivery {}: {} runs again", id,
               deliverable.empty() ? std::string("what failed") : deliverable);
  Wake();
  return DeliverySummaryJson(farm_, *farm_.FindDelivery(id));
}

StatusOr<nlohmann::json> Coordinator::CancelDeliverable(const std::string& id,
                                                        const std::string& deliverable) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.CancelDeliverable(id, deliverable, clock_->Now(), &fx);
  if (!s.ok()) return s;
  ApplyLocked(std::move(fx));
  LogFields log_fields({{"delivery", id}});
  spdlog::info("delivery {}: {} cancelled", id, deliverable);
  Wake();
  return DeliverySummaryJson(farm_, *farm_.FindDelivery(id));
}

StatusOr<nlohmann::json> Coordinator::SetDeliveryPriority(const std::string& id, int priority) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.SetPriority(id, priority, &fx);
  if (!s.ok()) return s;
  ApplyLocked(std::move(fx));
  LogFields log_fields({{"delivery", id}});
  spdlog::info("delivery {} now has priority {}", id, priority);
  Wake();
  return DeliverySummaryJson(farm_, *farm_.FindDelivery(id));
}

StatusOr<nlohmann::json> Coordinator::History(const std::string& name) {
  std::string output_dir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t latest = 0;
    for (const auto& [id, d] : farm_.deliveries()) {
      if (d.name == name && (output_dir.empty() || d.seq > latest)) {
        output_dir = d.output_dir;
        latest = d.seq;
      }
    }
  }
  if (output_dir.empty()) return Status::NotFound("no delivery named " + name);
  // Read without the farm's lock: the versions are files in its folder.
  nlohmann::json versions = nlohmann::json::array();
  for (auto& m : ReadHistory(output_dir)) {
    // A package lists every file; its sha256 stands for them here.
    if (m.contains("deliverables") && m["deliverables"].is_array()) {
      for (auto& item : m["deliverables"]) {
        if (item.is_object()) item.erase("files");
      }
    }
    versions.push_back(std::move(m));
  }
  return nlohmann::json{{"name", name}, {"output_dir", output_dir}, {"versions", versions}};
}

nlohmann::json Coordinator::ListWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  return WorkersJson(farm_, clock_->Now());
}

Status Coordinator::ReleaseWorker(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.Release(name, &fx);
  if (!s.ok()) return s;
  ApplyLocked(std::move(fx));
  spdlog::info("worker {} released from quarantine", name);
  Wake();
  return Status::OK();
}

Status Coordinator::DrainWorker(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Effects fx;
  Status s = farm_.Drain(name, &fx);
  if (!s.ok()) return s;
  ApplyLocked(std::move(fx));
  spdlog::info("worker {} asked to drain", name);
  Wake();
  return Status::OK();
}

Coordinator::Health Coordinator::CheckHealth() {
  std::lock_guard<std::mutex> lock(mu_);
  Status ping = redis_->Ping();
  if (!ping.ok()) return {false, "redis unavailable: " + ping.message()};
  auto epoch = store_->ReadEpoch();
  if (epoch.ok() && *epoch != redis_epoch_) {
    NoteRedisDataLost(epoch->empty() ? "rf:epoch is gone" : "rf:epoch changed");
  }
  if (redis_data_lost_.load()) {
    return {false,
            "redis lost its data since this coordinator started (rf:epoch changed): delivery "
            "records may be missing; ids are not reused; restart the coordinator once Redis "
            "is sound"};
  }
  // Redis answers PING but may refuse every write (out of memory, too few
  // replicas): then nothing can be submitted or assigned.
  Status write = store_->ProbeWrite(clock_->WallMillis());
  if (!write.ok()) return {false, write.message()};
  return {};
}

void Coordinator::NoteRedisDataLost(const std::string& why) {
  if (redis_data_lost_.exchange(true)) return;
  spdlog::error("redis lost its data since this coordinator started ({}): {}", why,
                "records it held may be gone; delivery ids will not be reused");
  // Lock order: callers hold mu_ or a submit lane; the metric is thread-safe.
  if (coord_metrics_) coord_metrics_->SetRedisDataLost(true);
}

void Coordinator::CheckEpoch(SubmitLane& lane) {
  auto epoch = lane.store->ReadEpoch();
  if (epoch.ok() && *epoch != redis_epoch_) {
    NoteRedisDataLost(epoch->empty() ? "rf:epoch is gone" : "rf:epoch changed");
  }
}

void Coordinator::StartHttp() {
  http_ = std::make_unique<GuardedHttpServer>(options_.http_limits);
  // A reply is written as headers, then body: with Nagle's algorithm the body
  // of a kept-alive connection waits for the client's delayed ACK (40 ms).
  http_->set_tcp_nodelay(true);
  // The web board (docs/web.md): its pages, login and downloads; /api/
  // takes the bearer token or the board's session cookie (CSRF-checked).
  auto web = std::make_shared<WebUi>(
      WebUiOptions{.api_token = options_.api_token,
                   .allowed_roots = options_.allowed_roots,
                   .show_delivery = [this](const std::string& id) { return ShowDelivery(id); },
                   .clock = clock_});
  WebUi::Register(web, http_.get());
  http_->SetPreRoutingHandler([this, web](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/api/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (!web->AuthorizeApi(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (!active_.load()) {
      // A standby knows nothing yet: the active coordinator answers.
      res.status = 503;
      res.set_content("{\"error\": \"standby: another coordinator is active\"}\n",
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto json_reply = [](httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", "application/json");
  };
  http_->Post("/api/v1/deliveries", [this, json_reply](const httplib::Request& req,
                                                       httplib::Response& res) {
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("spec") ||
        !body["spec"].is_string()) {
      json_reply(res, 400, {{"error", "body must be JSON with a string field 'spec'"}});
      return;
    }
    // Optional strings: present with another type is the client's
    // mistake (400), not ours (json::value() would throw: 500).
    for (const char* field : {"spec_file", "base_dir"}) {
      if (body.contains(field) && !body[field].is_string()) {
        json_reply(res, 400, {{"error", std::string("'") + field + "' must be a string"}});
        return;
      }
    }
    std::string spec_file = body.value("spec_file", std::string("spec.yaml"));
    std::string base_dir = body.value("base_dir", std::string());
    if (base_dir.empty() || base_dir[0] != '/') {
      json_reply(res, 400, {{"error", "base_dir must be an absolute folder"}});
      return;
    }
    // Optional "webhooks": [{"url": ..., "secret_file": ABSOLUTE, "events": [...]}].
    std::vector<WebhookSpec> hooks;
    if (body.contains("webhooks") && !ParseRequestWebhooks(body["webhooks"], &hooks)) {
      json_reply(res, 400,
                 {{"error",
                   "'webhooks' must be a list of at most 8 {\"url\": URL, "
                   "\"secret_file\": ABSOLUTE PATH, \"events\": [TYPE...]}"}});
      return;
    }
    SubmitOutcome out = Submit(body["spec"].get<std::string>(), spec_file, base_dir, hooks);
    json_reply(res, out.http_status, out.body);
  });
  http_->Get("/api/v1/deliveries",
             [this, json_reply](const httplib::Request&, httplib::Response& res) {
               json_reply(res, 200, ListDeliveries());
             });
  http_->Get(R"(/api/v1/deliveries/([^/]+))",
             [this, json_reply](const httplib::Request& req, httplib::Response& res) {
               auto d = ShowDelivery(req.matches[1]);
               if (!d.ok()) return json_reply(res, 404, {{"error", d.status().message()}});
               json_reply(res, 200, *d);
             });
  // An optional {"deliverable": NAME} narrows a cancel or retry to one.
  auto deliverable_of = [](const httplib::Request& req, std::string* name) {
    if (req.body.empty()) return true;
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object()) return false;
    if (!body.contains("deliverable")) return true;
    if (!body["deliverable"].is_string()) return false;
    *name = body["deliverable"].get<std::string>();
    return !name->empty();
  };
  auto status_reply = [json_reply](httplib::Response& res, const Status& s) {
    const int code = s.code() == Status::Code::kNotFound          ? 404
                     : s.code() == Status::Code::kInvalidArgument ? 400
                                                                  : 409;
    json_reply(res, code, {{"error", s.message()}});
  };
  http_->Post(R"(/api/v1/deliveries/([^/]+)/cancel)", [this, json_reply, deliverable_of,
                                                       status_reply](const httplib::Request& req,
                                                                     httplib::Response& res) {
    std::string name;
    if (!deliverable_of(req, &name)) {
      return json_reply(res, 400, {{"error", "the body must be empty or {\"deliverable\": NAME}"}});
    }
    auto d =
        name.empty() ? CancelDelivery(req.matches[1]) : CancelDeliverable(req.matches[1], name);
    if (!d.ok()) return status_reply(res, d.status());
    json_reply(res, 200, *d);
  });
  http_->Post(R"(/api/v1/deliveries/([^/]+)/retry)", [this, json_reply, deliverable_of,
                                                      status_reply](const httplib::Request& req,
                                                                    httplib::Response& res) {
    std::string name;
    if (!deliverable_of(req, &name)) {
      return json_reply(res, 400, {{"error", "the body must be empty or {\"deliverable\": NAME}"}});
    }
    auto d = RetryDelivery(req.matches[1], name);
    if (!d.ok()) return status_reply(res, d.status());
    json_reply(res, 200, *d);
  });
  http_->Post(R"(/api/v1/deliveries/([^/]+)/priority)",
              [this, json_reply](const httplib::Request& req, httplib::Response& res) {
                nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
                if (!body.is_object() || !body.contains("priority") ||
                    !body["priority"].is_number_integer()) {
                  return json_reply(res, 400,
                                    {{"error",
                                      "the body must be {\"priority\": N}, N from 0 "
                                      "to 100"}});
                }
                auto d = SetDeliveryPriority(req.matches[1], body["priority"].get<int>());
                if (!d.ok()) {
                  const int code = d.status().code() == Status::Code::kNotFound          ? 404
                                   : d.status().code() == Status::Code::kInvalidArgument ? 400
                                                                                         : 409;
                  return json_reply(res, code, {{"error", d.status().message()}});
                }
                json_reply(res, 200, *d);
              });
  http_->Get(R"(/api/v1/history/([^/]+))",
             [this, json_reply](const httplib::Request& req, httplib::Response& res) {
               auto h = History(req.matches[1]);
               if (!h.ok()) return json_reply(res, 404, {{"error", h.status().message()}});
               json_reply(res, 200, *h);
             });
  http_->Get("/api/v1/workers",
             [this, json_reply](const httplib::Request&, httplib::Response& res) {
               json_reply(res, 200, ListWorkers());
             });
  http_->Post(R"(/api/v1/workers/([^/]+)/drain)",
              [this, json_reply](const httplib::Request& req, httplib::Response& res) {
                Status s = DrainWorker(req.matches[1]);
                if (!s.ok()) return json_reply(res, 404, {{"error", s.message()}});
                json_reply(res, 200, {{"draining", std::string(req.matches[1])}});
              });
  http_->Post(R"(/api/v1/workers/([^/]+)/release)",
              [this, json_reply](const httplib::Request& req, httplib::Response& res) {
                Status s = ReleaseWorker(req.matches[1]);
                if (!s.ok()) return json_reply(res, 404, {{"error", s.message()}});
                json_reply(res, 200, {{"released", std::string(req.matches[1])}});
              });
  http_->Get("/api/v1/webhooks",
             [this, json_reply](const httplib::Request&, httplib::Response& res) {
               auto w = Webhooks();
               if (!w.ok()) return json_reply(res, 503, {{"error", w.status().message()}});
               json_reply(res, 200, *w);
             });
  http_->Post(R"(/api/v1/webhooks/dead/([A-Za-z0-9_]{1,128})/redeliver)",
              [this, json_reply](const httplib::Request& req, httplib::Response& res) {
                Status s = RedeliverWebhook(req.matches[1]);
                if (s.code() == Status::Code::kNotFound) {
                  return json_reply(res, 404, {{"error", s.message()}});
                }
                if (!s.ok()) return json_reply(res, 503, {{"error", s.message()}});
                json_reply(res, 200, {{"redelivering", std::string(req.matches[1])}});
              });
  http_->Get("/healthz", [this, json_reply](const httplib::Request&, httplib::Response& res) {
    if (!active_.load()) {
      json_reply(res, 503,
                 {{"ok", false},
                  {"role", "standby"},
                  {"error",
                   "standby: another coordinator "
                   "holds the lease"}});
      return;
    }
    Health health = CheckHealth();
    nlohmann::json body = {{"ok", health.ok}, {"role", "active"}};
    if (!health.ok) body["error"] = health.error;
    json_reply(res, health.ok ? 200 : 503, body);
  });

  std::string host;
  int port = 0;
  if (!SplitHostPort(options_.http, &host, &port)) {
    spdlog::error("bad --http address {}", options_.http);
    return;
  }
  if (!http_->bind_to_port(host.c_str(), port)) {
    spdlog::error("cannot serve the API on {}", options_.http);
    return;
  }
  http_thread_ = std::thread([this] { http_->listen_after_bind(); });
}

}  // namespace reelfarm
