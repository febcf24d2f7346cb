#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <zmq.hpp>

#include "common/curve_auth.h"
#include "common/daemon_util.h"
#include "common/metrics.h"
#include "common/probe.h"
#include "common/service_notify.h"
#include "common/thread_budget.h"
#include "worker/worker_metrics.h"

namespace reelfarm {
namespace {

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

Worker::Worker(WorkerOptions options, Clock* clock, ProcessRunner* runner)
    : options_(Sanitize(std::move(options))), clock_(clock), runner_(runner) {}

WorkerOptions Worker::Sanitize(WorkerOptions o) {
  if (o.name.empty()) o.name = Hostname() + "-" + std::to_string(getpid());
  if (o.cores < 1) o.cores = UsableCores();
  if (o.slots < 1) o.slots = DefaultSlots(o.cores);
  if (o.executor.threads < 1) o.executor.threads = ThreadsPerSlot(o.cores, o.slots);
  if (o.liveness < 2) o.liveness = 2;
  return o;
}

Worker::~Worker() {
  for (auto& [id, a] : attempts_) {
    a.cancel->store(true);
    if (a.thread.joinable()) a.thread.join();
  }
}

Status Worker::Start() {
  if (options_.memory_cgroup != "off") {
    auto parent = MemoryCgroupParent::Open(
        options_.memory_cgroup == "auto" ? std::string() : options_.memory_cgroup);
    if (parent.ok()) {
      cgroups_ = std::move(*parent);
      options_.executor.cgroups = cgroups_.get();
      spdlog::info("worker {}: each ffmpeg's memory in use is limited by a cgroup v{} under {}",
                   options_.name, cgroups_->version(), cgroups_->dir());
    } else if (options_.memory_cgroup != "auto") {
      return parent.status();
    } else {
      spdlog::info("worker {}: no memory cgroups ({}); address-space limits only", options_.name,
                   parent.status().message());
    }
  }
  if (options_.executor.ffmpeg_version.empty()) {
    // Outputs are kept in the cache only under the FFmpeg that made them.
    const std::string& ffmpeg = options_.executor.ffmpeg_override.empty()
                                    ? options_.ffmpeg
                                    : options_.executor.ffmpeg_override;
    StatusOr<std::string> version = ProgramVersion(*runner_, ffmpeg);
    if (version.ok()) {
      options_.executor.ffmpeg_version = *version;
    } else {
      spdlog::warn("worker {}: {}; its outputs are not kept in the output cache", options_.name,
                   version.status().message());
    }
  }
  executor_ = std::make_unique<JobExecutor>(runner_, options_.executor, clock_);
  if (options_.encoders_override.empty()) {
    caps_ = ProbeEncoders(*runner_, options_.ffmpeg, options_.max_gpu_sessions);
  } else {
    caps_.encoders = options_.encoders_override;
  }
  if (options_.gpu_slots < 0) options_.gpu_slots = caps_.gpu_sessions;
  if (options_.gpu_slots > 0) {
    spdlog::info("worker {}: {} GPU slot(s) for {}; NVDEC decodes: {}", options_.name,
                 options_.gpu_slots, fmt::join(caps_.encoders, " "),
                 caps_.gpu_decoders.empty()
                     ? std::string("none")
                     : fmt::format("{}", fmt::join(caps_.gpu_decoders, " ")));
  }
  spdlog::info("worker {}: {} cores, {} slots of {} threads, encoders: {}{}", options_.name,
               options_.cores, options_.slots, options_.executor.threads,
               fmt::join(caps_.encoders, " "), caps_.gpu ? " (GPU)" : "");
  if (!caps_.failed.empty()) {
    spdlog::info("worker {}: encoders that did not open here: {}", options_.name,
                 fmt::join(caps_.failed, " "));
  }
  if (!options_.metrics.empty()) {
    auto m = MetricsServer::Start(options_.metrics, "worker");
    if (!m.ok()) return m.status();
    metrics_ = std::move(m.value());
    worker_metrics_ = std::make_unique<WorkerMetrics>(
        metrics_->registry(), options_.name,
        WorkerShape{options_.cores, options_.slots, options_.executor.threads, options_.gpu_slots},
        caps_);
    if (caps_.gpu) worker_metrics_->StartGpuPoller(runner_, std::chrono::seconds(5));
  }
  if (options_.curve_secret_file.empty() != options_.curve_server_key.empty()) {
    return Status::InvalidArgument("--curve-secret and --curve-server-key go together");
  }
  if (!options_.curve_secret_file.empty()) {
    auto pair = ReadCurveSecretFile(options_.curve_secret_file);
    if (!pair.ok()) return pair.status();
    auto server = ReadCurvePublicKey(options_.curve_server_key);
    if (!server.ok()) return server.status();
    curve_public_ = pair->public_key;
    curve_secret_ = pair->secret_key;
    curve_server_ = *server;
    spdlog::info("worker {}: CURVE on, public key {}", options_.name, curve_public_);
  }
  zmq_ = std::make_unique<zmq::context_t>(1);
  return Status::OK();
}

WorkerSessionOptions Worker::SessionOptions() const {
  WorkerSessionOptions o;
  o.name = options_.name;
  o.host = Hostname();
  o.slots = options_.slots;
  o.cores = options_.cores;
  o.threads_per_slot = options_.executor.threads;
  o.encoders = caps_.encoders;
  o.gpu = caps_.gpu;
  o.gpu_names = caps_.gpu_names;
  o.gpu_slots = options_.gpu_slots;
  o.gpu_decoders = caps_.gpu_decoders;
  o.version = REELFARM_VERSION;
  o.heartbeat_interval = options_.heartbeat_interval;
  o.liveness = options_.liveness;
  o.reconnect_min = options_.reconnect_min;
  o.reconnect_max = options_.reconnect_max;
  o.result_resend = options_.result_resend;
  return o;
}

void Worker::Connect() {
  if (dealer_) dealer_->close();
  dealer_ = std::make_unique<zmq::socket_t>(*zmq_, zmq::socket_type::dealer);
  dealer_->set(zmq::sockopt::linger, 0);
  if (!curve_server_.empty()) {
    dealer_->set(zmq::sockopt::curve_serverkey, curve_server_);
    dealer_->set(zmq::sockopt::curve_publickey, curve_public_);
    dealer_->set(zmq::sockopt::curve_secretkey, curve_secret_);
  }
  if (endpoints_.empty()) {
    std::string rest = options_.coordinator;
    for (size_t at; (at = rest.find(',')) != std::string::npos; rest = rest.substr(at + 1)) {
      if (at > 0) endpoints_.push_back(rest.substr(0, at));
    }
    if (!rest.empty()) endpoints_.push_back(rest);
    if (endpoints_.empty()) endpoints_.push_back(options_.coordinator);
  }
  // The first connection goes to the first; each reconnection (the one it
  // talked to went quiet) to the next.
  endpoint_ = connects_++ % endpoints_.size();
  dealer_->connect(endpoints_[endpoint_]);
}

void Worker::Send(const pb::WorkerMessage& m) {
  std::string payload = m.SerializeAsString();
  try {
    (void)dealer_->send(zmq::buffer(payload), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::debug("send failed: {}", e.what());
  }
}

void Worker::Apply(const SessionEffects& fx) {
  if (fx.reconnect_in > Duration::zero()) {
    spdlog::warn("worker {}: coordinator silent, reconnecting in {} ms", options_.name,
                 std::chrono::duration_cast<std::chrono::milliseconds>(fx.reconnect_in).count());
  }
  if (fx.reconnect) Connect();
  if (fx.welcomed) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      expiry_ = session_->heartbeat_interval() * session_->liveness();
    }
    spdlog::info("worker {}: connected to {}", options_.name, endpoints_[endpoint_]);
  }
  if (!fx.hello_refused.empty()) {
    spdlog::warn("worker {}: the coordinator refused its hello: {}", options_.name,
                 fx.hello_refused);
  }
  for (const auto& a : fx.publish_answers) {
    AnswerPublish(a.job_id, a.token, a.granted, a.valid_ms);
  }
  for (const auto& c : fx.cancel) {
    auto it = attempts_.find(c.job_id);
    if (it == attempts_.end() || it->second.token != c.token) continue;
    LogFields log_fields({{"delivery", DeliveryOfJob(c.job_id)}, {"job", c.job_id}});
    spdlog::info("worker {}: cancelling {} (attempt {})", options_.name, c.job_id, c.token);
    it->second.cancel->store(true);
  }
  for (const auto& a : fx.start) StartAttempt(a);
  for (const auto& m : fx.send) Send(m);
}

void Worker::Push(pb::WorkerMessage m) {
  std::lock_guard<std::mutex> lock(mu_);
  outbox_.push_back(std::move(m));
}

void Worker::DrainOutbox() {
  std::deque<pb::WorkerMessage> in;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in.swap(outbox_);
  }
  for (const auto& m : in) {
    if (m.has_progress()) {
      Apply(session_->OnProgress(m.progress()));
    } else if (m.has_result()) {
      Apply(session_->OnAttemptFinished(m.result()));
    } else if (m.has_publish_request()) {
      const auto& r = m.publish_request();
      Apply(session_->OnPublishRequested(r.job_id(), r.token(), r.attempt_key()));
    }
  }
}

StatusOr<SteadyTime> Worker::AwaitPublish(const std::string& job_id, uint64_t token,
                                          const std::string& attempt_key) {
  std::unique_lock<std::mutex> lock(mu_);
  auto key = std::make_pair(job_id, token);
  publish_waits_[key] = PublishWait{};
  pb::WorkerMessage ask;
  ask.mutable_publish_request()->set_job_id(job_id);
  ask.mutable_publish_request()->set_token(token);
  ask.mutable_publish_request()->set_attempt_key(attempt_key);
  outbox_.push_back(std::move(ask));
  auto limit = std::chrono::steady_clock::now() + 2 * expiry_;
  bool answered = publish_cv_.wait_until(lock, limit, [&] { return publish_waits_[key].answered; });
  PublishWait w = publish_waits_[key];
  publish_waits_.erase(key);
  if (!answered) return Status::Unavailable("the coordinator did not answer the publish request");
  if (!w.granted) return Status::Cancelled("the coordinator gave this job to a newer attempt");
  return w.deadline;
}

void Worker::AnswerPublish(const std::string& job_id, uint64_t token, bool granted, int valid_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = publish_waits_.find({job_id, token});
  if (it == publish_waits_.end()) return;
  it->second.answered = true;
  it->second.granted = granted;
  // The window starts when the grant arrives here, on this machine's clock.
  it->second.deadline = clock_->Now() + std::chrono::milliseconds(valid_ms);
  publish_cv_.notify_all();
}

void Worker::StartAttempt(const pb::Assign& assign) {
  const std::string id = assign.job().id();
  auto existing = attempts_.find(id);
  if (existing != attempts_.end()) {
    // The thread of an older attempt of this job (superseded, and told to
    // stop by the session's cancel): it must be gone before the new starts.
    existing->second.cancel->store(true);
    // Also when its publish request has not reached the session yet.
    AnswerPublish(id, existing->second.token, false, 0);
    if (existing->second.thread.joinable()) existing->second.thread.join();
    attempts_.erase(existing);
  }
  LogFields log_fields({{"delivery", DeliveryOfJob(id)}, {"job", id}});
  spdlog::info("worker {}: running {} attempt {} (token {}): {}", options_.name, id,
               assign.attempt(), assign.token(),
               assign.job().outputs_size() > 0 ? assign.job().outputs(0).relative_path() : "");
  Attempt& a = attempts_[id];
  a.token = assign.token();
  a.cancel = std::make_unique<std::atomic<bool>>(false);
  a.done = std::make_unique<std::atomic<bool>>(false);
  std::atomic<bool>* cancel = a.cancel.get();
  std::atomic<bool>* done = a.done.get();
  a.thread = std::thread([this, assign, cancel, done] {
    const std::string& jid = assign.job().id();
    LogFields log_fields({{"delivery", DeliveryOfJob(jid)}, {"job", jid}});
    if (worker_metrics_)
      worker_metrics_->OnAttemptStart(assign.token(), assign.job().kind(), assign.gpu());
    SteadyTime last_sent{};
    auto on_progress = [&](const pb::Progress& p) {
      if (worker_metrics_) worker_metrics_->OnProgress(assign.token(), p);
      SteadyTime now = clock_->Now();
      if (now - last_sent < options_.progress_interval) return;
      last_sent = now;
      pb::WorkerMessage m;
      *m.mutable_progress() = p;
      m.mutable_progress()->set_attempt_key(assign.attempt_key());
      Push(std::move(m));
    };
    const std::string job_id = assign.job().id();
    const uint64_t token = assign.token();
    const std::string key = assign.attempt_key();
    pb::JobResult result = executor_->Execute(
        assign, on_progress, cancel,
        [this, job_id, token, key]() -> StatusOr<std::chrono::steady_clock::time_point> {
          return AwaitPublish(job_id, token, key);
        });
    result.set_job_id(assign.job().id());
    result.set_token(assign.token());
    result.set_attempt_key(key);
    if (result.ok()) {
      spdlog::info("worker {}: {} done in {:.1f} s with {} threads, peak {} MiB in use",
                   options_.name, assign.job().id(), result.encode_seconds(), result.threads(),
                   result.peak_memory_bytes() >> 20);
    } else {
      spdlog::warn("worker {}: {} failed: {}", options_.name, assign.job().id(), result.error());
    }
    if (worker_metrics_) {
      worker_metrics_->OnAttemptEnd(assign.token(), result, cancel->load(),
                                    assign.job().media_duration_s());
    }
    pb::WorkerMessage m;
    *m.mutable_result() = std::move(result);
    Push(std::move(m));
    done->store(true);
  });
}

void Worker::ReapFinished() {
  for (auto it = attempts_.begin(); it != attempts_.end();) {
    if (it->second.done->load()) {
      if (it->second.thread.joinable()) it->second.thread.join();
      it = attempts_.erase(it);
    } else {
      ++it;
    }
  }
}

void Worker::Run(const std::atomic<bool>& stop, ServiceNotifier* notifier,
                 const std::atomic<bool>* drain) {
  std::optional<SteadyTime> drain_until;
  session_ = std::make_unique<WorkerSession>(SessionOptions());
  {
    std::lock_guard<std::mutex> lock(mu_);
    expiry_ = session_->heartbeat_interval() * session_->liveness();
  }
  Apply(session_->Start(clock_->Now()));
  while (!stop.load()) {
    if (notifier != nullptr) notifier->Alive();
    zmq::pollitem_t items[] = {{dealer_->handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    SteadyTime now = clock_->Now();
    if (items[0].revents & ZMQ_POLLIN) {
      zmq::message_t frame;
      while (dealer_->recv(frame, zmq::recv_flags::dontwait)) {
        pb::CoordinatorMessage m;
        // A frame that does not parse still shows the coordinator is alive.
        if (!m.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) m.Clear();
        Apply(session_->OnMessage(m, now));
      }
    }
    // Threads that ended have pushed their results before: DrainOutbox
    // hands those to the session.
    ReapFinished();
    DrainOutbox();
    Apply(session_->Tick(now));
    // A signal, or the coordinator's drain message (the session is then
    // draining already).
    if (((drain != nullptr && drain->load()) || session_->draining()) && !drain_until) {
      drain_until = now + options_.drain_timeout;
      Apply(session_->Drain(now));
      const std::string status =
          "draining: no new work; finishing " + std::to_string(session_->RunningRefs().size()) +
          " attempt(s) within " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(options_.drain_timeout).count()) +
          " s";
      spdlog::info("worker {}: {}", options_.name, status);
      if (notifier != nullptr) notifier->Status(status);
    }
    if (drain_until && session_->Idle()) {
      spdlog::info("worker {}: drained: everything it ran has finished", options_.name);
      break;
    }
    if (drain_until && now >= *drain_until) {
      spdlog::warn("worker {}: drain timeout: handing back {} attempt(s)", options_.name,
                   session_->RunningRefs().size());
      break;
    }
  }
  // Shutting down: stop attempts, tell the coordinator.
  if (notifier != nullptr) {
    notifier->Stopping("worker " + options_.name + " stopping: cancelling " +
                       std::to_string(attempts_.size()) + " running attempt(s)");
  }
  SessionEffects bye = session_->Stop();
  {
    // Publish requests are refused, also those the session has not seen.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, w] : publish_waits_) w.answered = true;
    publish_cv_.notify_all();
  }
  for (auto& [id, a] : attempts_) a.cancel->store(true);
  for (auto& [id, a] : attempts_) {
    if (a.thread.joinable()) a.thread.join();
  }
  attempts_.clear();
  for (const auto& m : bye.send) Send(m);
  // Give the goodbye a moment to leave before the socket closes.
  dealer_->set(zmq::sockopt::linger, 200);
  dealer_->close();
}

}  // namespace reelfarm
