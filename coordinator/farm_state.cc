#include "coordinator/farm_state.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <zlib.h>

#include <algorithm>

#include "common/qc.h"
#include "common/secure.h"

namespace reelfarm {
namespace {

constexpr const char* kStateNames[] = {"waiting",   "queued", "running",
                                       "succeeded", "failed", "cancelled"};

pb::CoordinatorMessage CancelMessage(const std::string& job_id, uint64_t token) {
  pb::CoordinatorMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_token(token);
  return m;
}

void StripToSummary(pb::Job* job) {
  // Swapped out and destroyed: Clear() would keep the elements allocated.
  google::protobuf::RepeatedPtrField<std::string> argv, inputs;
  google::protobuf::RepeatedPtrField<pb::Job> members, fallback;
  google::protobuf::RepeatedPtrField<pb::GeneratedFile> write_files;
  job->mutable_argv()->Swap(&argv);
  job->mutable_inputs()->Swap(&inputs);
  job->mutable_members()->Swap(&members);
  job->mutable_fallback()->Swap(&fallback);
  job->clear_reuse();
  // Its needs stay: the dispatcher reads them (mutable_gpu() would make one).
  google::protobuf::RepeatedPtrField<std::string> gpu_argv;
  if (job->has_gpu()) job->mutable_gpu()->mutable_argv()->Swap(&gpu_argv);
  job->mutable_write_files()->Swap(&write_files);
  // What an output must hold is the worker's to check; its cache entry and
  // QC gates are the stored job's (the worker's) too.
  for (auto& out : *job->mutable_outputs()) {
    out.clear_expect();
    out.clear_cache();
    out.clear_qc();
  }
}

using google::protobuf::internal::WireFormatLite;

// `bytes` as length-delimited field `field` appended to `out`.
void AppendBytesField(int field, const std::string& bytes, std::string* out) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag(WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteString(bytes);
}

// How much of `payload` (`whole` serialized) is the job without its GPU
// variant. The serializer writes fields in number order and gpu (18) is
// Job's last, so that is a prefix; checked, not assumed: the payload must
// end with exactly the variant's field, else 0.
size_t CpuPayloadSize(const pb::Job& whole, const std::string& payload) {
  if (!whole.has_gpu()) return payload.size();
  std::string field;
  AppendBytesField(pb::Job::kGpuFieldNumber, whole.gpu().SerializeAsString(), &field);
  if (payload.size() <= field.size() ||
      payload.compare(payload.size() - field.size(), field.size(), field) != 0) {
    return 0;
  }
  return payload.size() - field.size();
}

// `raw` deflated (zlib, fastest level): "" when that is no smaller.
std::string Deflate(const std::string& raw) {
  uLongf size = compressBound(raw.size());
  std::string out(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                reinterpret_cast<const Bytef*>(raw.data()), raw.size(), Z_BEST_SPEED) != Z_OK ||
      size >= raw.size()) {
    return "";
  }
  out.resize(size);
  out.shrink_to_fit();
  return out;
}

}  // namespace

std::string JobRecord::Payload() const {
  if (!payload_deflated()) return payload;
  std::string raw(payload_size, '\0');
  uLongf size = payload_size;
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &size,
                 reinterpret_cast<const Bytef*>(payload.data()), payload.size()) != Z_OK ||
      size != payload_size) {
    return "";  // cannot happen to bytes deflated here; parsed as an empty job
  }
  return raw;
}

void PackJob(JobRecord* rec) {
  if (rec->packed) return;
  if (rec->payload.empty()) rec->payload = rec->job.SerializeAsString();
  rec->cpu_payload_size = CpuPayloadSize(rec->job, rec->payload);
  rec->payload_size = static_cast<uint32_t>(rec->payload.size());
  if (std::string deflated = Deflate(rec->payload); !deflated.empty()) {
    rec->payload = std::move(deflated);
  } else {
    rec->payload.shrink_to_fit();
  }
  StripToSummary(&rec->job);
  rec->packed = true;
}

void RepackJob(JobRecord* rec, pb::Job whole) {
  rec->job = std::move(whole);
  rec->payload.clear();
  rec->payload_size = 0;
  rec->packed = false;
  PackJob(rec);
}

std::string Outgoing::Wire() const {
  if (job_bytes.empty()) return message.SerializeAsString();
  // A field given twice is merged by the reader: the job's id here and its
  // whole bytes after it make the whole job.
  std::string assign = message.assign().SerializeAsString();
  AppendBytesField(pb::Assign::kJobFieldNumber, job_bytes, &assign);
  std::string wire;
  AppendBytesField(pb::CoordinatorMessage::kAssignFieldNumber, assign, &wire);
  return wire;
}

pb::CoordinatorMessage Outgoing::Whole() const {
  if (job_bytes.empty()) return message;
  pb::CoordinatorMessage whole;
  (void)whole.ParseFromString(Wire());
  return whole;
}

void DropPlanJobs(pb::Plan* plan) {
  google::protobuf::RepeatedPtrField<pb::Job> jobs;
  plan->mutable_jobs()->Swap(&jobs);
}

pb::Job UnpackJob(const JobRecord& rec) {
  pb::Job whole;
  if (!whole.ParseFromString(rec.Payload())) return rec.job;
  return whole;
}

void FarmState::Emit(FarmEvent::Kind kind, const JobRecord& job, const std::string& reason,
                     Effects* fx, Duration queue_wait, Duration run_time) {
  FarmEvent e;
  e.kind = kind;
  e.job_id = job.job.id();
  e.delivery_id = job.delivery_id;
  e.preset = job.job.outputs_size() > 0 ? job.job.outputs(0).preset() : job.job.kind();
  e.worker = job.worker;
  e.reason = reason;
  e.queue_wait = queue_wait;
  e.run_time = run_time;
  fx->events.push_back(std::move(e));
}

const char* JobStateName(JobState s) { return kStateNames[static_cast<int>(s)]; }

bool ParseJobState(const std::string& name, JobState* out) {
  for (int i = 0; i < 6; ++i) {
    if (name == kStateNames[i]) {
      *out = static_cast<JobState>(i);
      return true;
    }
  }
  return false;
}

void FarmOptions::Sanitize() {
  if (heartbeat_interval <= Duration::zero()) heartbeat_interval = std::chrono::milliseconds(1000);
  if (liveness < 2) liveness = 2;
  if (max_attempts < 1) max_attempts = 1;
  if (retry_base <= Duration::zero()) retry_base = std::chrono::milliseconds(1000);
  if (retry_cap < retry_base) retry_cap = retry_base;
}

FarmState::FarmState(FarmOptions options)
    : options_(options), rng_(options.seed), key_rng_(options.seed ^ 0x6b6579735f726e67ull) {
  options_.Sanitize();
}

std::string FarmState::NewAttemptKey() {
  constexpr size_t kKeyBytes = 16;
  if (options_.random_bytes) {
    std::string key = options_.random_bytes(kKeyBytes);
    if (key.size() == kKeyBytes) return key;
  }
  std::string key(kKeyBytes, '\0');
  for (size_t i = 0; i < kKeyBytes; i += 8) {
    uint64_t r = key_rng_();
    for (size_t b = 0; b < 8; ++b) key[i + b] = static_cast<char>(r >> (8 * b));
  }
  return key;
}

bool FarmState::IsCurrentAttempt(const JobRecord& job, uint64_t token) const {
  return job.state == JobState::kRunning && job.token == token;
}

bool FarmState::KeyMatches(const JobRecord& job, const std::string& key) const {
  return !job.attempt_key.empty() && ConstantTimeEquals(job.attempt_key, key);
}

bool FarmState::Authentic(const JobRecord* job, uint64_t token, const std::string& key,
                          const WorkerRecord* w, const std::string& kind, const std::string& peer,
                          const std::string& peer_key, Effects* fx) const {
  if (job == nullptr || !IsCurrentAttempt(*job, token)) return false;  // stale, not forged
  bool key_ok = KeyMatches(*job, key);
  if (key_ok && w != nullptr && job->worker == w->name) return true;
  // A worker that holds the key but speaks from a new connection is the
  // attempt's own worker before its Hello: refused, not forged.
  if (key_ok && w == nullptr) return false;
  fx->forged.push_back(
      {kind, peer, peer_key, job->job.id(),
       key_ok ? "the attempt belongs to worker " + job->worker : "its attempt key is wrong"});
  return false;
}

void FarmState::AddDelivery(DeliveryRecord delivery, std::vector<JobRecord> jobs, SteadyTime now,
                            Effects* fx) {
  const std::string id = delivery.id;
  // The job records hold the jobs; a second copy in the plan would double
  // the coordinator's memory (Redis keeps the job ids with the delivery).
  DropPlanJobs(&delivery.plan);
  delivery.job_ids.clear();
  delivery.unfinished_jobs = 0;
  DeliveryRecord& d = deliveries_[id] = std::move(delivery);
  for (auto& j : jobs) {
    last_token_ = std::max(last_token_, j.token);
    JobRecord& rec = AddJob(d, std::move(j));
    const std::string& jid = rec.job.id();
    switch (rec.state) {
      case JobState::kQueued:
        rec.queued_at = now;
        queue_.insert({-rec.priority, rec.seq, jid});
        break;
      case JobState::kRunning:
        // Reloaded: its worker must claim it within one expiry.
        rec.lease_until = now + options_.expiry();
        rec.started_at = now;
        running_.insert(jid);
        if (auto w = workers_.find(rec.worker); w != workers_.end() && !w->second.lost) {
          w->second.running.insert(jid);
          if (rec.on_gpu) w->second.running_gpu.insert(jid);
        }
        break;
      default:
        break;
    }
  }
  // Waiting jobs whose dependencies already succeeded can go.
  for (const auto& jid : d.job_ids) {
    JobRecord& rec = jobs_[jid];
    if (rec.state == JobState::kWaiting && DependenciesSucceeded(rec)) Enqueue(rec, now, fx);
  }
  CheckDelivery(id, fx);
}

JobRecord& FarmState::AddJob(DeliveryRecord& d, JobRecord rec) {
  PackJob(&rec);
  std::string jid = rec.job.id();
  d.job_ids.push_back(jid);
  if (!IsTerminal(rec.state)) ++d.unfinished_jobs;
  for (const auto& dep : rec.job.depends_on()) dependents_[dep].push_back(jid);
  return jobs_[jid] = std::move(rec);
}

bool FarmState::DependenciesSucceeded(const JobRecord& job) const {
  for (const auto& dep : job.job.depends_on()) {
    auto it = jobs_.find(dep);
    if (it == jobs_.end() || it->second.state != JobState::kSucceeded) return false;
  }
  return true;
}

const DeliveryRecord* FarmState::FindDelivery(const std::string& id) const {
  auto it = deliveries_.find(id);
  return it == deliveries_.end() ? nullptr : &it->second;
}

DeliveryRecord* FarmState::MutableDelivery(const std::string& id) {
  auto it = deliveries_.find(id);
  return it == deliveries_.end() ? nullptr : &it->second;
}

const JobRecord* FarmState::FindJob(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

WorkerRecord* FarmState::WorkerForPeer(const std::string& peer) {
  auto it = peer_to_worker_.find(peer);
  if (it == peer_to_worker_.end()) return nullptr;
  auto w = workers_.find(it->second);
  if (w == workers_.end() || w->second.peer != peer) return nullptr;
  return &w->second;
}

void FarmState::OnMessage(const std::string& peer, const pb::WorkerMessage& msg, SteadyTime now,
                          Effects* fx, const std::string& peer_key) {
  if (msg.has_hello()) {
    OnHello(peer, peer_key, msg.hello(), now, fx);
    return;
  }
  WorkerRecord* w = WorkerForPeer(peer);
  const WorkerRecord* known = w;  // also when given up: its stale results are acknowledged
  if (w != nullptr) {
    w->last_seen = now;
    if (w->lost) {
      // It came back after being given up: its attempts were handed on; it
      // must introduce itself again.
      w = nullptr;
    }
  }
  if (msg.has_result()) {
    // Only from the attempt's worker, with its key. From a connection that
    // has not introduced itself it is not acknowledged: a worker resends it
    // after its Hello (a coordinator restart), anyone else gets nothing.
    OnResult(peer, peer_key, known, msg.result(), now, fx);
  }
  if (w == nullptr) {
    if (msg.has_progress() || msg.has_publish_request()) {
      // Only to count a forgery of the current attempt.
      const std::string& jid =
          msg.has_progress() ? msg.progress().job_id() : msg.publish_request().job_id();
      auto it = jobs_.find(jid);
      if (msg.has_progress()) {
        Authentic(it == jobs_.end() ? nullptr : &it->second, msg.progress().token(),
                  msg.progress().attempt_key(), nullptr, "progress", peer, peer_key, fx);
      } else {
        Authentic(it == jobs_.end() ? nullptr : &it->second, msg.publish_request().token(),
                  msg.publish_request().attempt_key(), nullptr, "publish", peer, peer_key, fx);
      }
    }
    pb::CoordinatorMessage m;
    m.set_reconnect(true);
    fx->messages.push_back({peer, std::move(m)});
    return;
  }
  if (msg.has_heartbeat()) {
    w->draining = msg.heartbeat().draining();
    for (const auto& ref : msg.heartbeat().running()) {
      auto it = jobs_.find(ref.job_id());
      JobRecord* job = it == jobs_.end() ? nullptr : &it->second;
      if (Authentic(job, ref.token(), ref.attempt_key(), w, "heartbeat", peer, peer_key, fx)) {
        job->lease_until = now + options_.expiry();
      } else {
        fx->messages.push_back({peer, CancelMessage(ref.job_id(), ref.token())});
      }
    }
  } else if (msg.has_progress()) {
    const auto& p = msg.progress();
    auto it = jobs_.find(p.job_id());
    JobRecord* job = it == jobs_.end() ? nullptr : &it->second;
    if (Authentic(job, p.token(), p.attempt_key(), w, "progress", peer, peer_key, fx)) {
      job->progress = std::clamp(p.fraction(), 0.0, 1.0);
      job->fps = p.fps();
      job->speed = p.speed();
      job->lease_until = now + options_.expiry();
    }
  } else if (msg.has_publish_request()) {
    const auto& ref = msg.publish_request();
    auto it = jobs_.find(ref.job_id());
    JobRecord* job = it == jobs_.end() ? nullptr : &it->second;
    if (Authentic(job, ref.token(), ref.attempt_key(), w, "publish", peer, peer_key, fx)) {
      // Renew the lease for a full expiry and grant half of it: the window
      // closes on the worker before the job can be handed to anyone else.
      job->lease_until = now + options_.expiry();
      job->publishing_until = job->lease_until;
      pb::CoordinatorMessage m;
      auto* g = m.mutable_publish_grant();
      g->set_job_id(ref.job_id());
      g->set_token(ref.token());
      g->set_valid_ms(static_cast<int32_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.expiry()).count() / 2));
      fx->messages.push_back({peer, std::move(m)});
    } else {
      fx->messages.push_back({peer, CancelMessage(ref.job_id(), ref.token())});
    }
  } else if (msg.has_goodbye()) {
    w->lost = true;
    w->lost_at = now;
    for (const auto& jid : std::set<std::string>(w->running)) {
      auto it = jobs_.find(jid);
      if (it != jobs_.end() && it->second.state == JobState::kRunning) {
        LoseAttempt(it->second, "worker " + w->name + " left", "worker_left", now, fx);
      }
    }
  }
}

std::string FarmState::HelloRefusal(const WorkerRecord& old, const std::string& peer_key,
                                    const pb::Hello& hello, SteadyTime now) const {
  if (!old.key.empty() || !peer_key.empty()) {
    // CURVE: the authenticated key says who it is.
    if (old.key.empty() || ConstantTimeEquals(old.key, peer_key)) return "";
    return "the name " + old.name + " is bound to another CURVE key";
  }
  // Without CURVE a name proves nothing: the name's live connection keeps it
  // unless it has gone quiet or the Hello holds one of its attempts' keys.
  if (old.lost || now - old.last_seen > options_.expiry()) return "";
  for (const auto& ref : hello.running()) {
    auto it = jobs_.find(ref.job_id());
    if (it != jobs_.end() && it->second.worker == old.name &&
        IsCurrentAttempt(it->second, ref.token()) && KeyMatches(it->second, ref.attempt_key())) {
      return "";
    }
  }
  return "the name " + old.name + " is in use by another live connection";
}

void FarmState::OnHello(const std::string& peer, const std::string& peer_key,
                        const pb::Hello& hello, SteadyTime now, Effects* fx) {
  std::string refusal;
  if (hello.name().empty()) {
    refusal = "a worker needs a name";
  } else if (auto old = workers_.find(hello.name());
             old != workers_.end() && !old->second.peer.empty() && old->second.peer != peer) {
    refusal = HelloRefusal(old->second, peer_key, hello, now);
  } else if (old != workers_.end() && !old->second.key.empty() &&
             !ConstantTimeEquals(old->second.key, peer_key)) {
    refusal = "the name " + hello.name() + " is bound to another CURVE key";
  }
  if (!refusal.empty()) {
    fx->forged.push_back({"hello", peer, peer_key, hello.name(), refusal});
    pb::CoordinatorMessage m;
    m.set_hello_refused(refusal);
    fx->messages.push_back({peer, std::move(m)});
    return;
  }
  WorkerRecord& w = workers_[hello.name()];
  if (!w.peer.empty() && w.peer != peer) peer_to_worker_.erase(w.peer);
  w.name = hello.name();
  w.peer = peer;
  if (!peer_key.empty()) w.key = peer_key;
  w.host = hello.host();
  w.version = hello.version();
  w.slots = std::max(1, hello.slots());
  w.cores = std::max(0, hello.cores());
  w.threads_per_slot = std::max(0, hello.threads_per_slot());
  w.encoders = std::set<std::string>(hello.encoders().begin(), hello.encoders().end());
  w.gpu = hello.gpu();
  w.gpu_names.assign(hello.gpu_names().begin(), hello.gpu_names().end());
  w.gpu_slots = std::max(0, hello.gpu_slots());
  w.gpu_decoders.assign(hello.gpu_decoders().begin(), hello.gpu_decoders().end());
  w.gpu_closed = false;  // probed again at its start
  w.draining = hello.draining();
  w.last_seen = now;
  w.lost = false;
  peer_to_worker_[peer] = w.name;

  pb::CoordinatorMessage welcome;
  auto* wm = welcome.mutable_welcome();
  wm->set_heartbeat_interval_ms(static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat_interval).count()));
  wm->set_liveness(options_.liveness);

  std::set<std::string> claimed;
  for (const auto& ref : hello.running()) {
    auto it = jobs_.find(ref.job_id());
    if (it != jobs_.end() && IsCurrentAttempt(it->second, ref.token()) &&
        KeyMatches(it->second, ref.attempt_key())) {
      // The key proves it runs this attempt (also under another name: it
      // was renamed, or Redis named its worker wrongly).
      JobRecord& job = it->second;
      if (job.worker != w.name) {
        DetachFromWorker(job);
        job.worker = w.name;
        fx->dirty_jobs.insert(job.job.id());
      }
      job.lease_until = now + options_.expiry();
      w.running.insert(job.job.id());
      if (job.on_gpu) w.running_gpu.insert(job.job.id());
      claimed.insert(job.job.id());
    } else {
      if (it != jobs_.end() && IsCurrentAttempt(it->second, ref.token())) {
        fx->forged.push_back({"hello", peer, peer_key, ref.job_id(), "its attempt key is wrong"});
      }
      pb::JobRef cancel;
      cancel.set_job_id(ref.job_id());
      cancel.set_token(ref.token());
      *wm->add_cancel() = std::move(cancel);
    }
  }
  // Attempts we think it runs but it no longer knows of (it restarted) are
  // lost now rather than at lease expiry.
  std::vector<std::string> forgotten;
  for (const auto& jid : running_) {
    if (jobs_.at(jid).worker == w.name && !claimed.count(jid)) forgotten.push_back(jid);
  }
  for (const auto& jid : forgotten) {
    LoseAttempt(jobs_.at(jid), "worker " + w.name + " restarted", "worker_restarted", now, fx);
  }
  fx->messages.push_back({peer, std::move(welcome)});
}

void FarmState::OnResult(const std::string& peer, const std::string& peer_key,
                         const WorkerRecord* w_from, const pb::JobResult& result, SteadyTime now,
                         Effects* fx) {
  auto it = jobs_.find(result.job_id());
  JobRecord* current = it == jobs_.end() ? nullptr : &it->second;
  if (current != nullptr && IsCurrentAttempt(*current, result.token())) {
    // Neither acknowledged nor recorded unless it speaks for the attempt: a
    // forgery must not end (or cancel) the real one.
    if (!Authentic(current, result.token(), result.attempt_key(), w_from, "result", peer, peer_key,
                   fx)) {
      return;
    }
  } else if (w_from == nullptr) {
    return;  // stale or unknown, from a connection that has not said hello
  }
  pb::CoordinatorMessage ack;
  ack.mutable_result_ack()->set_job_id(result.job_id());
  ack.mutable_result_ack()->set_token(result.token());
  fx->messages.push_back({peer, std::move(ack)});

  if (it == jobs_.end() || it->second.state != JobState::kRunning ||
      it->second.token != result.token()) {
    bool duplicate =
        it != jobs_.end() && it->second.token == result.token() && IsTerminal(it->second.state);
    if (!duplicate) {
      ++fx->stale_results;
      if (it != jobs_.end()) Emit(FarmEvent::Kind::kStaleResult, it->second, "", fx);
    }
    return;
  }
  JobRecord& job = it->second;
  DetachFromWorker(job);
  // A cache entry that failed its check says nothing of the host: the
  // output is made instead.
  if (!result.ok() && Fallback(job, result, now, fx)) return;
  auto w = workers_.find(job.worker);
  if (!result.ok() && result.gpu_unavailable() && job.on_gpu &&
      !deliveries_[job.delivery_id].cancelled) {
    // The GPU's fault, not the job's or the host's: its GPU slots close
    // until it says hello again, and the job runs again at once (a CPU slot
    // where it may), the attempt not counted.
    if (w != workers_.end()) w->second.gpu_closed = true;
    job.attempts = std::max(0, job.attempts - 1);
    job.error = result.error();
    job.log_tail = result.log_tail();
    job.progress = 0;
    job.publishing_until = {};
    Emit(FarmEvent::Kind::kRetry, job, "gpu_unavailable", fx, {}, now - job.started_at);
    Enqueue(job, now, fx);
    return;
  }
  if (result.ok()) {
    if (w != workers_.end()) {
      ++w->second.jobs_done;
      w->second.failure_streak = 0;
      w->second.confirmed_failures = 0;
    }
    // The job works: where it failed before, the host was to blame.
    for (const auto& name : job.failed_on) {
      auto bad = workers_.find(name);
      if (name == job.worker || bad == workers_.end() || bad->second.failure_streak == 0) continue;
      if (++bad->second.confirmed_failures >= options_.quarantine_after &&
          !bad->second.quarantined) {
        Quarantine(name,
                   std::to_string(bad->second.confirmed_failures) +
                       " jobs in a row failed here and then succeeded on other workers",
                   fx);
      }
    }
    job.result = result;
    job.error.clear();
    job.log_tail.clear();
    job.progress = 1;
    Emit(FarmEvent::Kind::kSucceeded, job, "", fx, {}, now - job.started_at);
    Finish(job, JobState::kSucceeded, fx);
    ReleaseDependents(job, now, fx);
    CheckDelivery(job.delivery_id, fx);
    return;
  }
  if (w != workers_.end()) {
    ++w->second.jobs_failed;
    // Running out of memory says how big the job is, not that the host is
    // bad: it counts towards no quarantine, yet the job prefers another
    // worker for its retry.
    if (!result.out_of_memory()) ++w->second.failure_streak;
    job.failed_on.insert(job.worker);
  }
  if (result.out_of_memory() && result.threads() > 1) {
    // Fewer threads hold fewer frames in flight: halve the budget.
    job.max_threads = result.threads() / 2;
    fx->dirty_jobs.insert(job.job.id());
  }
  job.error = result.error();
  job.log_tail = result.log_tail();
  job.progress = 0;
  job.publishing_until = {};
  if (result.outputs_size() > 0) {
    // Some outputs reached their final names before it failed (a rename or
    // the folder's fsync failed part-way): they are kept and listed, never
    // renamed over by a rerun. A group runs its other outputs again on their
    // own; anything else fails with what it published recorded.
    if (SplitGroup(job, result, result.error(), now, fx)) return;
    job.result = result;
    FailJob(job, result.error(), "not_retryable", fx);
    return;
  }
  if (deliveries_[job.delivery_id].cancelled) {
    // A cancel left it to publish; it did not: nothing to run again.
    job.error = "cancelled (" + result.error() + ")";
    Emit(FarmEvent::Kind::kCancelled, job, "", fx);
    Finish(job, JobState::kCancelled, fx);
    CheckDelivery(job.delivery_id, fx);
    return;
  }
  if (result.retryable() && job.attempts < options_.max_attempts) {
    job.not_before = now + Backoff(job.attempts);
    Emit(FarmEvent::Kind::kRetry, job, "retryable", fx, {}, now - job.started_at);
    Enqueue(job, now, fx);
  } else {
    std::string why = result.error().empty() ? "the job failed" : result.error();
    if (result.retryable()) {
      why += " (gave up after " + std::to_string(job.attempts) + " attempts)";
    }
    if (SplitGroup(job, result, why, now, fx)) return;
    // Kept for the manifest: the QC report of what a gate refused.
    if (result.qc_rejected_size() > 0) job.result = result;
    FailJob(job, why,
            result.retryable()              ? "gave_up"
            : result.qc_rejected_size() > 0 ? "qc_failed"
                                            : "not_retryable",
            fx);
  }
}

bool FarmState::SplitGroup(JobRecord& job, const pb::JobResult& result, const std::string& why,
                           SteadyTime now, Effects* fx) {
  pb::Job whole = UnpackJob(job);
  if (whole.members_size() != whole.outputs_size() || whole.members_size() == 0) return false;
  std::set<std::string> published;
  for (const auto& r : result.outputs()) published.insert(r.deliverable());
  // Refused by a QC gate: the same input makes the same file, so it fails
  // on its own instead of running again.
  std::map<std::string, std::string> rejected;
  for (const auto& r : result.qc_rejected()) {
    rejected[r.deliverable()] = QcRefusal(r.deliverable(), r.qc());
  }
  DeliveryRecord& d = deliveries_[job.delivery_id];
  pb::Job kept = whole;
  kept.clear_outputs();
  kept.clear_members();
  int rerun = 0;
  for (int k = 0; k < whole.outputs_size(); ++k) {
    if (published.count(whole.outputs(k).deliverable())) {
      *kept.add_outputs() = whole.outputs(k);
      continue;
    }
    const pb::Job& member = whole.members(k);
    if (jobs_.count(member.id())) continue;  // already split (cannot happen twice)
    JobRecord rec;
    rec.job = member;
    rec.delivery_id = job.delivery_id;
    rec.priority = job.priority;
    rec.seq = job.seq;  // its group's place in the queue
    rec.state = JobState::kWaiting;
    JobRecord& added = AddJob(d, std::move(rec));
    fx->rewritten_jobs.insert(member.id());
    if (d.cancelled) {  // nothing more runs for a cancelled delivery
      added.error = "cancelled";
      Finish(added, JobState::kCancelled, fx);
      continue;
    }
    if (auto r = rejected.find(member.outputs(0).deliverable()); r != rejected.end()) {
      for (const auto& q : result.qc_rejected()) {
        if (q.deliverable() == r->first) *added.result.add_qc_rejected() = q;
      }
      FailJob(added, r->second, "qc_failed", fx);
      continue;
    }
    Emit(FarmEvent::Kind::kRetry, added, "split", fx);
    Enqueue(added, now, fx);
    ++rerun;
  }
  RepackJob(&job, std::move(kept));
  fx->rewritten_jobs.insert(job.job.id());
  job.result = result;
  job.error = why + "; " + std::to_string(rerun) + " of its outputs run again on their own";
  fx->dirty_deliveries.insert(d.id);
  Finish(job, JobState::kSucceeded, fx);
  CheckDelivery(job.delivery_id, fx);
  return true;
}

bool FarmState::Fallback(JobRecord& job, const pb::JobResult& result, SteadyTime now, Effects* fx) {
  if (job.job.kind() != "reuse") return false;
  DeliveryRecord& d = deliveries_[job.delivery_id];
  if (d.cancelled) return false;
  pb::Job whole = UnpackJob(job);
  if (whole.fallback_size() == 0) return false;
  std::vector<std::string> added;
  for (const auto& f : whole.fallback()) {
    if (jobs_.count(f.id())) continue;  // cannot happen twice
    JobRecord rec;
    rec.job = f;
    rec.delivery_id = job.delivery_id;
    rec.priority = job.priority;
    rec.seq = job.seq;
    rec.state = JobState::kWaiting;
    AddJob(d, std::move(rec));
    fx->rewritten_jobs.insert(f.id());
    added.push_back(f.id());
  }
  pb::Job kept = whole;
  // Its output is no longer its own to count or list (the fallback's is);
  // kept by name for the manifest, which says why it was not reused.
  for (auto& out : *kept.mutable_outputs()) out.set_intermediate(true);
  kept.clear_fallback();
  RepackJob(&job, std::move(kept));
  fx->rewritten_jobs.insert(job.job.id());
  job.result = result;
  job.error = result.error() + "; made again instead";
  fx->dirty_deliveries.insert(d.id);
  Emit(FarmEvent::Kind::kRetry, job, "reuse_failed", fx);
  Finish(job, JobState::kSucceeded, fx);
  for (const auto& id : added) {
    JobRecord& rec = jobs_[id];
    bool dead = false;  // waits on a job that failed for good
    for (const auto& dep : rec.job.depends_on()) {
      auto other = jobs_.find(dep);
      dead |= other == jobs_.end() ||
              (IsTerminal(other->second.state) && other->second.state != JobState::kSucceeded);
    }
    if (dead) {
      FailJob(rec, "a job it depends on failed", "dependency", fx);
    } else if (DependenciesSucceeded(rec)) {
      Enqueue(rec, now, fx);
    }
  }
  CheckDelivery(job.delivery_id, fx);
  return true;
}

void FarmState::StopAttempt(const JobRecord& job, Effects* fx) {
  if (job.state != JobState::kRunning) return;
  auto w = workers_.find(job.worker);
  if (w != workers_.end()) {
    fx->messages.push_back({w->second.peer, CancelMessage(job.job.id(), job.token)});
  }
  DetachFromWorker(job);
}

void FarmState::DetachFromWorker(const JobRecord& job) {
  auto w = workers_.find(job.worker);
  if (w != workers_.end()) {
    w->second.running.erase(job.job.id());
    w->second.running_gpu.erase(job.job.id());
  }
}

void FarmState::Enqueue(JobRecord& job, SteadyTime now, Effects* fx) {
  running_.erase(job.job.id());
  job.state = JobState::kQueued;
  job.queued_at = now;
  queue_.insert({-job.priority, job.seq, job.job.id()});
  fx->dirty_jobs.insert(job.job.id());
}

void FarmState::LoseAttempt(JobRecord& job, const std::string& reason, const std::string& code,
                            SteadyTime now, Effects* fx) {
  DetachFromWorker(job);
  job.progress = 0;
  job.error = reason;
  job.publishing_until = {};
  if (deliveries_[job.delivery_id].cancelled) {
    // Left running by a cancel while it published, then lost.
    job.error = "cancelled (" + reason + ")";
    Emit(FarmEvent::Kind::kCancelled, job, "", fx);
    Finish(job, JobState::kCancelled, fx);
    CheckDelivery(job.delivery_id, fx);
    return;
  }
  if (job.attempts < options_.max_attempts) {
    job.not_before = now;  // a host's failure, not the job's: no backoff
    Emit(FarmEvent::Kind::kRedispatch, job, code, fx, {}, now - job.started_at);
    Enqueue(job, now, fx);
  } else {
    std::string why = reason + " (gave up after " + std::to_string(job.attempts) + " attempts)";
    if (SplitGroup(job, pb::JobResult(), why, now, fx)) return;
    FailJob(job, why, "gave_up", fx);
  }
}

void FarmState::Finish(JobRecord& job, JobState state, Effects* fx) {
  queue_.erase({-job.priority, job.seq, job.job.id()});
  running_.erase(job.job.id());
  if (!IsTerminal(job.state)) {
    if (auto d = deliveries_.find(job.delivery_id); d != deliveries_.end()) {
      --d->second.unfinished_jobs;
    }
  }
  job.state = state;
  job.publishing_until = {};
  fx->dirty_jobs.insert(job.job.id());
}

void FarmState::FailJob(JobRecord& job, const std::string& error, const std::string& code,
                        Effects* fx) {
  job.error = error;
  Emit(FarmEvent::Kind::kFailed, job, code, fx);
  Finish(job, JobState::kFailed, fx);
  // Everything that needed it fails too.
  if (auto deps = dependents_.find(job.job.id()); deps != dependents_.end()) {
    for (const auto& jid : std::vector<std::string>(deps->second)) {
      auto it = jobs_.find(jid);
      if (it == jobs_.end() || IsTerminal(it->second.state)) continue;
      JobRecord& other = it->second;
      StopAttempt(other, fx);
      FailJob(other, "a job it depends on failed: " + job.job.id() + ": " + error, "dependency",
              fx);
    }
  }
  CheckDelivery(job.delivery_id, fx);
}

void FarmState::ReleaseDependents(const JobRecord& job, SteadyTime now, Effects* fx) {
  auto deps = dependents_.find(job.job.id());
  if (deps == dependents_.end()) return;
  for (const auto& jid : deps->second) {
    auto it = jobs_.find(jid);
    if (it != jobs_.end() && it->second.state == JobState::kWaiting &&
        DependenciesSucceeded(it->second)) {
      Enqueue(it->second, now, fx);
    }
  }
}

double FarmState::Progress(const JobRecord& j) const {
  if (IsTerminal(j.state)) return 1;
  if (j.state == JobState::kRunning) return j.progress;
  if (j.job.depends_on_size() == 0) return 0;
  // Waiting for its parts: their progress, the joining still to do. The
  // source's analysis is no part of it.
  double parts = 0;
  int counted = 0;
  for (const auto& dep : j.job.depends_on()) {
    auto it = jobs_.find(dep);
    if (it == jobs_.end() || it->second.job.kind() == "analyse") continue;
    parts += Progress(it->second);
    ++counted;
  }
  return counted == 0 ? 0 : 0.95 * parts / counted;
}

std::string FarmState::Unrunnable(const JobRecord& j) const {
  if (j.state != JobState::kQueued) return "";
  for (const auto& [name, w] : workers_) {
    if (SlotFor(w, j.job, /*free_now=*/false) != SlotKind::kNone) return "";
  }
  const std::string needs = fmt::format("{}", fmt::join(j.job.needs().encoders(), ", "));
  return "no connected worker can run it now: it needs " +
         (j.job.needs().gpu() ? "a GPU slot with " + needs : needs) +
         (j.job.needs().gpu() ? " (encoder: gpu waits for a GPU worker; see reelfarm workers)"
                              : "");
}

DeliveryCounts FarmState::Counts(const DeliveryRecord& d) const {
  DeliveryCounts c;
  double progress = 0;
  int parts_active = 0;  // chunk and audio parts queued or running
  for (const auto& jid : d.job_ids) {
    const JobRecord& j = jobs_.at(jid);
    int outputs = 0;
    for (const auto& o : j.job.outputs()) outputs += o.intermediate() ? 0 : 1;
    if (outputs == 0) {
      if (!IsTerminal(j.state)) ++parts_active;
      continue;
    }
    c.total += outputs;
    switch (j.state) {
      case JobState::kSucceeded:
        c.delivered += outputs;
        break;
      case JobState::kFailed:
        c.failed += outputs;
        break;
      case JobState::kCancelled:
        c.cancelled += outputs;
        break;
      case JobState::kRunning:
        c.running += outputs;
        break;
      default:
        c.queued += outputs;
    }
    progress += outputs * Progress(j);
  }
  c.total += d.plan.failures_size();
  c.failed += d.plan.failures_size();
  progress += d.plan.failures_size();
  c.progress = c.total > 0 ? progress / c.total : 1.0;
  if (d.cancelled) {
    c.state = "cancelled";
  } else if (c.running + c.queued > 0) {
    bool started =
        c.running > 0 || parts_active > 0 || c.delivered + c.failed > d.plan.failures_size();
    c.state = started ? "running" : "queued";
  } else {
    c.state = (c.failed + c.cancelled > 0) ? "failed" : "delivered";
  }
  return c;
}

void FarmState::CheckDelivery(const std::string& delivery_id, Effects* fx) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end() || it->second.finished || it->second.unfinished_jobs > 0) return;
  it->second.finished = true;
  FarmEvent e;
  e.kind = FarmEvent::Kind::kDeliveryFinished;
  e.delivery_id = delivery_id;
  e.reason = Counts(it->second).state;
  fx->events.push_back(std::move(e));
  fx->finished_deliveries.push_back(delivery_id);
  fx->dirty_deliveries.insert(delivery_id);
}

Status FarmState::Cancel(const std::string& delivery_id, SteadyTime now, Effects* fx) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end()) return Status::NotFound("no delivery " + delivery_id);
  DeliveryRecord& d = it->second;
  if (d.finished) return Status::OK();
  d.cancelled = true;
  fx->dirty_deliveries.insert(delivery_id);
  for (const auto& jid : d.job_ids) {
    JobRecord& job = jobs_[jid];
    if (IsTerminal(job.state)) continue;
    // Renaming its files into place: a cancel now could not stop it, only
    // leave published files unlisted. It finishes; OnResult records it.
    if (job.state == JobState::kRunning && now < job.publishing_until) continue;
    StopAttempt(job, fx);
    job.error = "cancelled";
    Emit(FarmEvent::Kind::kCancelled, job, "", fx);
    Finish(job, JobState::kCancelled, fx);
  }
  CheckDelivery(delivery_id, fx);
  return Status::OK();
}

namespace {

// Whether `job` makes (a part of) `deliverable`.
bool Makes(const pb::Job& job, const std::string& deliverable) {
  for (const auto& out : job.outputs()) {
    if (out.deliverable() == deliverable) return true;
  }
  return false;
}

}  // namespace

Status FarmState::Retry(const std::string& delivery_id, const std::string& deliverable,
                        SteadyTime now, Effects* fx) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end()) return Status::NotFound("no delivery " + delivery_id);
  DeliveryRecord& d = it->second;
  // The jobs to run again: the failed or cancelled ones (of the deliverable),
  // and the failed jobs they wait for (the source's analysis).
  std::set<std::string> chosen;
  bool known = deliverable.empty();
  for (const auto& jid : d.job_ids) {
    const JobRecord& j = jobs_.at(jid);
    if (!deliverable.empty() && !Makes(j.job, deliverable)) continue;
    known = true;
    if (j.state == JobState::kFailed || j.state == JobState::kCancelled) chosen.insert(jid);
  }
  if (!known) {
    for (const auto& f : d.plan.failures()) {
      if (f.deliverable() == deliverable) {
        return Status::FailedPrecondition(deliverable +
                                          " cannot be made from this source: " + f.reason());
      }
    }
    return Status::NotFound("delivery " + delivery_id + " has no deliverable " + deliverable);
  }
  if (chosen.empty()) {
    return Status::FailedPrecondition(
        (deliverable.empty() ? "delivery " + delivery_id : deliverable) +
        " has nothing failed or cancelled to run again");
  }
  std::vector<std::string> walk(chosen.begin(), chosen.end());
  while (!walk.empty()) {
    const JobRecord& j = jobs_.at(walk.back());
    walk.pop_back();
    for (const auto& dep : j.job.depends_on()) {
      auto other = jobs_.find(dep);
      if (other != jobs_.end() && IsTerminal(other->second.state) &&
          other->second.state != JobState::kSucceeded && chosen.insert(dep).second) {
        walk.push_back(dep);
      }
    }
  }
  d.cancelled = false;
  d.finished = false;
  fx->dirty_deliveries.insert(delivery_id);
  for (const auto& jid : chosen) {
    JobRecord& j = jobs_.at(jid);
    ++d.unfinished_jobs;
    j.attempts = 0;
    j.max_threads = 0;
    j.error.clear();
    j.log_tail.clear();
    j.result.Clear();
    j.failed_on.clear();
    j.progress = 0;
    j.not_before = {};
    j.state = JobState::kWaiting;
    fx->dirty_jobs.insert(jid);
  }
  for (const auto& jid : chosen) {
    JobRecord& j = jobs_.at(jid);
    if (DependenciesSucceeded(j)) Enqueue(j, now, fx);
  }
  return Status::OK();
}

Status FarmState::CancelDeliverable(const std::string& delivery_id, const std::string& deliverable,
                                    SteadyTime now, Effects* fx) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end()) return Status::NotFound("no delivery " + delivery_id);
  DeliveryRecord& d = it->second;
  bool known = false;
  std::vector<std::string> stop;
  for (const auto& jid : d.job_ids) {
    JobRecord& j = jobs_.at(jid);
    if (!Makes(j.job, deliverable)) continue;
    known = true;
    if (IsTerminal(j.state)) continue;
    bool others = false;  // a decode shared with other deliverables
    for (const auto& out : j.job.outputs()) others |= out.deliverable() != deliverable;
    if (others && j.state == JobState::kRunning) {
      return Status::FailedPrecondition(
          deliverable + " is being made in one decode with other deliverables (job " + jid +
          "); cancel it once that job ends, or cancel the whole delivery");
    }
    stop.push_back(jid);
  }
  if (!known) {
    return Status::NotFound("delivery " + delivery_id + " has no deliverable " + deliverable);
  }
  for (const auto& jid : stop) {
    JobRecord& j = jobs_.at(jid);
    if (IsTerminal(j.state)) continue;
    bool others = false;
    for (const auto& out : j.job.outputs()) others |= out.deliverable() != deliverable;
    if (others) {
      // A queued group runs as its members, the others without this one.
      SplitGroup(j, pb::JobResult(), "split to cancel " + deliverable, now, fx);
      continue;
    }
    if (j.state == JobState::kRunning && now < j.publishing_until) continue;  // as Cancel
    StopAttempt(j, fx);
    j.error = "cancelled";
    Emit(FarmEvent::Kind::kCancelled, j, "", fx);
    Finish(j, JobState::kCancelled, fx);
    // What waited for it (its joining, packaging) will not run either.
    if (auto deps = dependents_.find(jid); deps != dependents_.end()) {
      for (const auto& other_id : deps->second) {
        JobRecord& other = jobs_.at(other_id);
        if (IsTerminal(other.state) || !Makes(other.job, deliverable)) continue;
        other.error = "cancelled";
        Finish(other, JobState::kCancelled, fx);
      }
    }
  }
  // Members split out of a group: this deliverable's is cancelled too.
  for (const auto& jid : d.job_ids) {
    JobRecord& j = jobs_.at(jid);
    if (IsTerminal(j.state) || !Makes(j.job, deliverable) || j.job.outputs_size() != 1) continue;
    if (j.state == JobState::kRunning) continue;
    j.error = "cancelled";
    Emit(FarmEvent::Kind::kCancelled, j, "", fx);
    Finish(j, JobState::kCancelled, fx);
  }
  fx->dirty_deliveries.insert(delivery_id);
  CheckDelivery(delivery_id, fx);
  return Status::OK();
}

void FarmState::Quarantine(const std::string& worker, const std::string& reason, Effects* fx) {
  WorkerRecord& w = workers_[worker];
  w.name = worker;
  w.quarantined = true;
  w.quarantine_reason = reason;
  fx->quarantine_changes[worker] = reason;
  FarmEvent e;
  e.kind = FarmEvent::Kind::kQuarantined;
  e.worker = worker;
  e.reason = reason;
  fx->events.push_back(std::move(e));
}

Status FarmState::SetPriority(const std::string& delivery_id, int priority, Effects* fx) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end()) return Status::NotFound("no delivery " + delivery_id);
  if (priority < 0 || priority > 100) {
    return Status::InvalidArgument("priority " + std::to_string(priority) +
                                   " is out of range; use an integer from 0 to 100 (higher runs "
                                   "first)");
  }
  DeliveryRecord& d = it->second;
  if (d.finished) return Status::FailedPrecondition("delivery " + delivery_id + " has finished");
  d.priority = priority;
  d.plan.set_priority(priority);
  fx->dirty_deliveries.insert(delivery_id);
  for (const auto& jid : d.job_ids) {
    JobRecord& job = jobs_[jid];
    if (job.priority == priority) continue;
    const bool queued = queue_.erase({-job.priority, job.seq, jid}) > 0;
    job.priority = priority;
    if (queued) queue_.insert({-job.priority, job.seq, jid});
    fx->dirty_jobs.insert(jid);
  }
  return Status::OK();
}

Status FarmState::Drain(const std::string& worker, Effects* fx) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || it->second.lost) {
    return Status::NotFound("no connected worker " + worker);
  }
  it->second.draining = true;
  pb::CoordinatorMessage m;
  m.set_drain(true);
  fx->messages.push_back({it->second.peer, std::move(m)});
  return Status::OK();
}

Status FarmState::Release(const std::string& worker, Effects* fx) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || !it->second.quarantined) {
    return Status::NotFound("no quarantined worker " + worker);
  }
  it->second.quarantined = false;
  it->second.quarantine_reason.clear();
  it->second.failure_streak = 0;
  it->second.confirmed_failures = 0;
  fx->quarantine_changes[worker] = "";
  return Status::OK();
}

FarmState::SlotKind FarmState::SlotFor(const WorkerRecord& w, const pb::Job& job, bool free_now) {
  if (w.lost || w.quarantined || w.draining) return SlotKind::kNone;
  const bool gpu_open = free_now ? w.free_gpu_slots() > 0 : !w.gpu_closed && w.gpu_slots > 0;
  if (gpu_open) {
    if (job.has_gpu() && HasWhatItNeeds(w, job.gpu().needs())) return SlotKind::kGpu;
    if (job.needs().gpu() && HasWhatItNeeds(w, job.needs())) return SlotKind::kGpu;
  }
  const bool cpu_open = !free_now || w.cpu_running() < w.slots;
  if (!job.needs().gpu() && cpu_open && HasWhatItNeeds(w, job.needs())) return SlotKind::kCpu;
  return SlotKind::kNone;
}

bool FarmState::HasWhatItNeeds(const WorkerRecord& w, const pb::Requirements& needs) {
  // A GPU slot, whether or not CUDA decoding works there too.
  if (needs.gpu() && w.gpu_slots <= 0) return false;
  for (const auto& enc : needs.encoders()) {
    if (!w.encoders.count(enc)) return false;
  }
  return true;
}

bool FarmState::Suits(const WorkerRecord& w, const pb::Job& job) {
  return HasWhatItNeeds(w, job.needs()) || (job.has_gpu() && HasWhatItNeeds(w, job.gpu().needs()));
}

Duration FarmState::Backoff(int attempts) {
  Duration d = options_.retry_base;
  for (int i = 1; i < attempts && d < options_.retry_cap; ++i) d *= 2;
  d = std::min(d, options_.retry_cap);
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return std::chrono::duration_cast<Duration>(d * jitter(rng_));
}

void FarmState::Dispatch(SteadyTime now, Effects* fx) {
  int free_slots = 0;
  for (const auto& [name, w] : workers_) {
    if (!w.lost && !w.quarantined && !w.draining) {
      free_slots += std::max(0, w.slots - w.cpu_running()) + w.free_gpu_slots();
    }
  }
  for (auto it = queue_.begin(); it != queue_.end() && free_slots > 0;) {
    JobRecord& job = jobs_[std::get<2>(*it)];
    if (job.not_before > now) {
      ++it;
      continue;
    }
    // A job does not go back to a worker it failed on while another
    // connected worker could run it (busy or not): it waits for that one.
    bool elsewhere = false;
    if (!job.failed_on.empty()) {
      for (const auto& [name, w] : workers_) {
        if (!w.lost && !w.quarantined && !job.failed_on.count(name) && Suits(w, job.job)) {
          elsewhere = true;
        }
      }
    }
    // A GPU slot before a CPU one (auto: the GPU where one is free), then
    // the worker with the most free slots of that kind.
    WorkerRecord* best = nullptr;
    SlotKind best_kind = SlotKind::kNone;
    auto free_of = [](const WorkerRecord& w, SlotKind k) {
      return k == SlotKind::kGpu ? w.free_gpu_slots() : w.slots - w.cpu_running();
    };
    for (auto& [name, w] : workers_) {
      if (elsewhere && job.failed_on.count(name)) continue;
      const SlotKind kind = SlotFor(w, job.job, /*free_now=*/true);
      if (kind == SlotKind::kNone) continue;
      if (best == nullptr || (kind == SlotKind::kGpu && best_kind != SlotKind::kGpu) ||
          (kind == best_kind && free_of(w, kind) > free_of(*best, best_kind))) {
        best = &w;
        best_kind = kind;
      }
    }
    if (best == nullptr) {
      ++it;
      continue;
    }
    it = queue_.erase(it);
    --free_slots;
    job.state = JobState::kRunning;
    job.attempts += 1;
    job.token = ++last_token_;
    job.attempt_key = NewAttemptKey();
    job.worker = best->name;
    job.lease_until = now + options_.expiry();
    job.started_at = now;
    job.progress = job.fps = job.speed = 0;
    job.on_gpu = best_kind == SlotKind::kGpu;
    best->running.insert(job.job.id());
    if (job.on_gpu) best->running_gpu.insert(job.job.id());
    running_.insert(job.job.id());
    Emit(FarmEvent::Kind::kAssigned, job, "", fx, now - job.queued_at);
    fx->dirty_jobs.insert(job.job.id());

    Outgoing sending;
    sending.peer = best->peer;
    auto* a = sending.message.mutable_assign();
    std::string payload = job.Payload();
    if (!job.on_gpu && job.cpu_payload_size > 0 && job.cpu_payload_size <= payload.size()) {
      // The stored job as is, without its GPU variant (Outgoing::Wire).
      a->mutable_job()->set_id(job.job.id());
      payload.resize(job.cpu_payload_size);
      sending.job_bytes = std::move(payload);
    } else {
      a->mutable_job()->ParseFromString(payload);
    }
    if (job.on_gpu) {
      pb::Job* sent = a->mutable_job();
      if (sent->has_gpu()) {
        // Late binding: the GPU variant's argv and needs.
        sent->mutable_argv()->Swap(sent->mutable_gpu()->mutable_argv());
        *sent->mutable_needs() = sent->gpu().needs();
      }
      // The cache keys name the CPU encoder's settings: a GPU's output is
      // not kept under them.
      for (auto& out : *sent->mutable_outputs()) out.clear_cache();
      a->set_gpu(true);
    }
    a->mutable_job()->clear_gpu();
    // The delivery's measurement of its source, for a job that reads it.
    for (const auto& dep : job.job.depends_on()) {
      auto d = jobs_.find(dep);
      if (d != jobs_.end() && d->second.result.has_analysis()) {
        *a->mutable_source_analysis() = d->second.result.analysis();
      }
    }
    a->set_token(job.token);
    a->set_attempt(job.attempts);
    a->set_max_threads(job.max_threads);
    a->set_attempt_key(job.attempt_key);
    fx->messages.push_back(std::move(sending));
  }
}

void FarmState::Tick(SteadyTime now, Effects* fx) {
  // Workers that went quiet.
  for (auto& [name, w] : workers_) {
    if (!w.lost && w.last_seen + options_.expiry() < now) {
      w.lost = true;
      w.lost_at = now;
      for (const auto& jid : std::set<std::string>(w.running)) {
        auto it = jobs_.find(jid);
        if (it != jobs_.end() && it->second.state == JobState::kRunning) {
          LoseAttempt(it->second, "worker " + name + " stopped heartbeating", "worker_lost", now,
                      fx);
        }
      }
      w.running.clear();
    }
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.lost && !it->second.quarantined &&
        it->second.lost_at + options_.lost_retention < now) {
      peer_to_worker_.erase(it->second.peer);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  // Attempts whose lease lapsed (reloaded and never claimed, or an
  // assignment its worker never acknowledged in a heartbeat).
  std::vector<std::string> lapsed;
  for (const auto& jid : running_) {
    if (jobs_.at(jid).lease_until < now) lapsed.push_back(jid);
  }
  for (const auto& jid : lapsed) {
    JobRecord& job = jobs_.at(jid);
    LoseAttempt(job,
                "attempt " + std::to_string(job.token) + " on " + job.worker + " stopped reporting",
                "lease_expired", now, fx);
  }
  if (last_heartbeat_ + options_.heartbeat_interval <= now) {
    last_heartbeat_ = now;
    for (const auto& [name, w] : workers_) {
      if (w.lost) continue;
      pb::CoordinatorMessage m;
      m.set_heartbeat(true);
      fx->messages.push_back({w.peer, std::move(m)});
    }
  }
  if (!dispatch_paused_) Dispatch(now, fx);
}

void FarmState::PeerGone(const std::string& peer, SteadyTime now, Effects* fx) {
  WorkerRecord* w = WorkerForPeer(peer);
  if (w == nullptr || w->lost) return;
  w->lost = true;
  w->lost_at = now;
  for (const auto& jid : std::set<std::string>(w->running)) {
    auto it = jobs_.find(jid);
    if (it != jobs_.end() && it->second.state == JobState::kRunning) {
      LoseAttempt(it->second, "the connection of worker " + w->name + " closed", "worker_lost", now,
                  fx);
    }
  }
  w->running.clear();
}

void FarmState::Unassign(const std::string& job_id, uint64_t token, Effects* fx) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !IsCurrentAttempt(it->second, token)) return;
  JobRecord& job = it->second;
  DetachFromWorker(job);
  running_.erase(job_id);
  job.attempts = std::max(0, job.attempts - 1);
  job.attempt_key.clear();
  job.progress = job.fps = job.speed = 0;
  job.state = JobState::kQueued;  // queued_at kept: it has waited all along
  queue_.insert({-job.priority, job.seq, job_id});
  fx->dirty_jobs.insert(job_id);
}

}  // namespace reelfarm
