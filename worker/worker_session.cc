#include "worker/worker_session.h"

#include <algorithm>

namespace reelfarm {

WorkerSession::WorkerSession(WorkerSessionOptions options) : options_(std::move(options)) {
  if (options_.liveness < 2) options_.liveness = 2;
  if (options_.heartbeat_interval <= Duration::zero()) {
    options_.heartbeat_interval = std::chrono::milliseconds(1000);
  }
  if (options_.reconnect_min <= Duration::zero()) {
    options_.reconnect_min = std::chrono::milliseconds(250);
  }
  if (options_.reconnect_max < options_.reconnect_min) {
    options_.reconnect_max = options_.reconnect_min;
  }
}

std::vector<pb::JobRef> WorkerSession::RunningRefs() const {
  std::vector<pb::JobRef> refs;
  for (const auto& [key, a] : attempts_) {
    if (a.cancelled || a.superseded) continue;
    pb::JobRef r;
    r.set_job_id(key.first);
    r.set_token(key.second);
    r.set_attempt_key(a.key);
    refs.push_back(std::move(r));
  }
  // Finished attempts whose result is not acknowledged yet are still ours:
  // a coordinator that restarted meanwhile keeps them for us (instead of
  // handing them on) until the result, resent after its Welcome, lands.
  for (const auto& [key, result] : unacked_) {
    bool listed = false;
    for (const auto& r : refs) listed |= r.job_id() == key.first && r.token() == key.second;
    if (listed) continue;
    pb::JobRef r;
    r.set_job_id(key.first);
    r.set_token(key.second);
    r.set_attempt_key(result.attempt_key());
    refs.push_back(std::move(r));
  }
  return refs;
}

pb::WorkerMessage WorkerSession::Hello() const {
  pb::WorkerMessage m;
  auto* h = m.mutable_hello();
  h->set_name(options_.name);
  h->set_host(options_.host);
  h->set_slots(options_.slots);
  h->set_cores(options_.cores);
  h->set_threads_per_slot(options_.threads_per_slot);
  for (const auto& e : options_.encoders) h->add_encoders(e);
  h->set_gpu(options_.gpu);
  for (const auto& g : options_.gpu_names) h->add_gpu_names(g);
  h->set_gpu_slots(options_.gpu_slots);
  for (const auto& d : options_.gpu_decoders) h->add_gpu_decoders(d);
  h->set_version(options_.version);
  for (auto& r : RunningRefs()) *h->add_running() = std::move(r);
  h->set_draining(draining_);
  return m;
}

pb::WorkerMessage WorkerSession::Heartbeat() const {
  pb::WorkerMessage hb;
  hb.mutable_heartbeat()->set_draining(draining_);
  for (auto& r : RunningRefs()) *hb.mutable_heartbeat()->add_running() = std::move(r);
  return hb;
}

void WorkerSession::Connect(SteadyTime now, SessionEffects* fx) {
  fx->reconnect = true;
  welcomed_ = false;
  last_recv_ = now;
  reconnect_at_ = SteadyTime{};
  fx->send.push_back(Hello());
}

SessionEffects WorkerSession::Start(SteadyTime now) {
  SessionEffects fx;
  started_ = true;
  Connect(now, &fx);
  return fx;
}

void WorkerSession::ResendResults(SessionEffects* fx) const {
  for (const auto& [key, r] : unacked_) {
    pb::WorkerMessage out;
    *out.mutable_result() = r;
    fx->send.push_back(std::move(out));
  }
}

void WorkerSession::CancelAttempt(const std::string& job_id, uint64_t token, SessionEffects* fx) {
  Key k{job_id, token};
  if (publish_waits_.erase(k) > 0) fx->publish_answers.push_back({job_id, token, false, 0});
  auto it = attempts_.find(k);
  if (it == attempts_.end() || it->second.cancelled || it->second.superseded) return;
  it->second.cancelled = true;
  fx->cancel.push_back({job_id, token});
}

void WorkerSession::StartAttempt(const pb::Assign& assign, SessionEffects* fx) {
  const std::string& id = assign.job().id();
  Key k{id, assign.token()};
  if (attempts_.count(k) > 0 || unacked_.count(k) > 0) return;  // duplicate
  // A newer attempt of a job we still run: the old one is superseded.
  for (auto& [key, a] : attempts_) {
    if (key.first != id || a.cancelled || a.superseded) continue;
    a.superseded = true;
    if (publish_waits_.erase(key) > 0) {
      fx->publish_answers.push_back({key.first, key.second, false, 0});
    }
    fx->cancel.push_back({key.first, key.second});
  }
  attempts_[k] = Attempt{assign.attempt_key()};
  fx->start.push_back(assign);
}

SessionEffects WorkerSession::OnMessage(const pb::CoordinatorMessage& m, SteadyTime now) {
  SessionEffects fx;
  last_recv_ = now;
  reconnect_at_ = SteadyTime{};  // it is not silent: no reconnect pending
  if (stopped_) return fx;
  if (m.has_welcome()) {
    welcomed_ = true;
    fx.welcomed = true;
    hello_refused_reported_ = false;
    backoff_ = Duration::zero();
    const auto& w = m.welcome();
    if (w.heartbeat_interval_ms() > 0) {
      options_.heartbeat_interval = std::chrono::milliseconds(w.heartbeat_interval_ms());
    }
    if (w.liveness() >= 2) options_.liveness = w.liveness();
    for (const auto& ref : w.cancel()) CancelAttempt(ref.job_id(), ref.token(), &fx);
    // Results the coordinator may not have recorded yet.
    ResendResults(&fx);
  } else if (m.has_assign()) {
    StartAttempt(m.assign(), &fx);
  } else if (m.has_publish_grant()) {
    const auto& g = m.publish_grant();
    if (publish_waits_.erase({g.job_id(), g.token()}) > 0) {
      fx.publish_answers.push_back({g.job_id(), g.token(), true, g.valid_ms()});
    }
  } else if (m.has_cancel()) {
    CancelAttempt(m.cancel().job_id(), m.cancel().token(), &fx);
  } else if (m.has_result_ack()) {
    unacked_.erase({m.result_ack().job_id(), m.result_ack().token()});
  } else if (m.has_reconnect()) {
    fx.send.push_back(Hello());
  } else if (m.has_drain()) {
    SessionEffects drained = Drain(now);
    for (auto& s : drained.send) fx.send.push_back(std::move(s));
  } else if (m.has_hello_refused()) {
    // Another live connection holds this name (or, with CURVE, another key
    // does). The coordinator's `reconnect` answers to our heartbeats bring
    // the Hello again; once the other connection has gone quiet it is taken.
    if (!hello_refused_reported_) {
      hello_refused_reported_ = true;
      fx.hello_refused = m.hello_refused().empty() ? "no reason given" : m.hello_refused();
    }
  }
  return fx;
}

SessionEffects WorkerSession::Tick(SteadyTime now) {
  SessionEffects fx;
  if (!started_ || stopped_) return fx;
  // The coordinator went quiet: reconnect with backoff (Paranoid Pirate).
  if (now - last_recv_ > options_.heartbeat_interval * options_.liveness) {
    if (reconnect_at_ == SteadyTime{}) {
      backoff_ = backoff_ == Duration::zero() ? options_.reconnect_min
                                              : std::min(backoff_ * 2, options_.reconnect_max);
      reconnect_at_ = now + backoff_;
      fx.reconnect_in = backoff_;
    } else if (now >= reconnect_at_) {
      Connect(now, &fx);
    }
  }
  if (now - last_heartbeat_ >= options_.heartbeat_interval) {
    last_heartbeat_ = now;
    fx.send.push_back(Heartbeat());
  }
  if (now - last_resend_ >= options_.result_resend) {
    last_resend_ = now;
    ResendResults(&fx);
  }
  return fx;
}

SessionEffects WorkerSession::OnProgress(const pb::Progress& p) {
  SessionEffects fx;
  if (stopped_) return fx;
  pb::WorkerMessage m;
  *m.mutable_progress() = p;
  fx.send.push_back(std::move(m));
  return fx;
}

SessionEffects WorkerSession::OnAttemptFinished(const pb::JobResult& result) {
  SessionEffects fx;
  Key k{result.job_id(), result.token()};
  publish_waits_.erase(k);
  auto it = attempts_.find(k);
  if (it != attempts_.end()) {
    bool drop = it->second.cancelled;
    attempts_.erase(it);
    if (drop) return fx;  // cancelled attempts report nothing
  }
  if (stopped_) return fx;
  unacked_[k] = result;
  pb::WorkerMessage m;
  *m.mutable_result() = result;
  fx.send.push_back(std::move(m));
  return fx;
}

SessionEffects WorkerSession::OnPublishRequested(const std::string& job_id, uint64_t token,
                                                 const std::string& attempt_key) {
  SessionEffects fx;
  Key k{job_id, token};
  auto it = attempts_.find(k);
  if (stopped_ || it == attempts_.end() || it->second.cancelled || it->second.superseded) {
    fx.publish_answers.push_back({job_id, token, false, 0});
    return fx;
  }
  publish_waits_.insert(k);
  pb::WorkerMessage ask;
  ask.mutable_publish_request()->set_job_id(job_id);
  ask.mutable_publish_request()->set_token(token);
  ask.mutable_publish_request()->set_attempt_key(attempt_key);
  fx.send.push_back(std::move(ask));
  return fx;
}

SessionEffects WorkerSession::Drain(SteadyTime now) {
  SessionEffects fx;
  if (draining_ || stopped_) return fx;
  draining_ = true;
  last_heartbeat_ = now;
  fx.send.push_back(Heartbeat());
  return fx;
}

bool WorkerSession::Idle() const {
  for (const auto& [key, a] : attempts_) {
    if (!a.cancelled && !a.superseded) return false;
  }
  return unacked_.empty();
}

SessionEffects WorkerSession::Stop() {
  SessionEffects fx;
  stopped_ = true;
  for (const auto& k : publish_waits_) fx.publish_answers.push_back({k.first, k.second, false, 0});
  publish_waits_.clear();
  for (auto& [key, a] : attempts_) {
    bool was_stopped = a.cancelled || a.superseded;
    a.cancelled = true;
    if (!was_stopped) fx.cancel.push_back({key.first, key.second});
  }
  pb::WorkerMessage bye;
  bye.set_goodbye(true);
  fx.send.push_back(std::move(bye));
  return fx;
}

}  // namespace reelfarm
