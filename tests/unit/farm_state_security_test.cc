// Issue 12: the state machine refuses messages that claim an attempt or a
// worker name their connection does not hold. Hand-made messages, injected
// time and an injected source of attempt keys; no sockets.
#include <gtest/gtest.h>

#include "coordinator/farm_state.h"

namespace reelfarm {
namespace {

using std::chrono::milliseconds;

class FarmSecurityTest : public ::testing::Test {
 protected:
  FarmSecurityTest() : farm_(Options()) {}

  FarmOptions Options() {
    FarmOptions o;
    o.heartbeat_interval = milliseconds(1000);
    o.liveness = 3;
    o.max_attempts = 3;
    // Keys as a test can tell them apart: "key-0001", "key-0002", ...
    o.random_bytes = [this](size_t n) {
      char buf[32];
      snprintf(buf, sizeof(buf), "key-%04d", ++keys_made_);
      std::string k(buf);
      k.resize(n, '.');
      return k;
    };
    return o;
  }

  void Submit(const std::string& id, int n) {
    DeliveryRecord d;
    d.id = d.name = id;
    d.seq = ++seq_;
    std::vector<JobRecord> jobs;
    for (int i = 0; i < n; ++i) {
      JobRecord j;
      j.job.set_id(id + ".j" + std::to_string(i));
      j.job.mutable_needs()->add_encoders("libx264");
      j.job.add_outputs()->set_deliverable("d" + std::to_string(i));
      j.delivery_id = id;
      j.seq = d.seq * 1000 + i;
      jobs.push_back(j);
    }
    Effects fx;
    farm_.AddDelivery(d, jobs, now_, &fx);
  }

  Effects Send(const std::string& peer, const pb::WorkerMessage& m,
               const std::string& peer_key = "") {
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx, peer_key);
    return fx;
  }

  static pb::WorkerMessage HelloMsg(const std::string& name, std::vector<pb::JobRef> running = {}) {
    pb::WorkerMessage m;
    m.mutable_hello()->set_name(name);
    m.mutable_hello()->set_slots(1);
    m.mutable_hello()->add_encoders("libx264");
    for (auto& r : running) *m.mutable_hello()->add_running() = r;
    return m;
  }

  static pb::JobRef Ref(const std::string& job, uint64_t token, const std::string& key) {
    pb::JobRef r;
    r.set_job_id(job);
    r.set_token(token);
    r.set_attempt_key(key);
    return r;
  }

  static pb::WorkerMessage ResultMsg(const std::string& job, uint64_t token,
                                     const std::string& key) {
    pb::WorkerMessage m;
    m.mutable_result()->set_job_id(job);
    m.mutable_result()->set_token(token);
    m.mutable_result()->set_attempt_key(key);
    m.mutable_result()->set_ok(true);
    m.mutable_result()->add_outputs()->set_path("/nowhere/forged.mp4");
    return m;
  }

  static pb::WorkerMessage HeartbeatMsg(std::vector<pb::JobRef> running) {
    pb::WorkerMessage m;
    m.mutable_heartbeat();
    for (auto& r : running) *m.mutable_heartbeat()->add_running() = r;
    return m;
  }

  std::vector<pb::Assign> Tick() {
    Effects fx;
    farm_.Tick(now_, &fx);
    std::vector<pb::Assign> out;
    for (const auto& m : fx.messages) {
      if (m.message.has_assign()) out.push_back(m.Whole().assign());
    }
    return out;
  }

  static int Count(const Effects& fx, bool (pb::CoordinatorMessage::*has)() const,
                   const std::string& peer = "") {
    int n = 0;
    for (const auto& m : fx.messages) {
      if ((m.message.*has)() && (peer.empty() || m.peer == peer)) ++n;
    }
    return n;
  }

  JobState StateOf(const std::string& id) { return farm_.FindJob(id)->state; }

  int keys_made_ = 0;
  FarmState farm_;
  SteadyTime now_ = SteadyTime(std::chrono::hours(1));
  uint64_t seq_ = 0;
};

TEST_F(FarmSecurityTest, AttemptKeysComeFromTheInjectedSourceOnePerAttempt) {
  Submit("a", 2);
  Send("p1", HelloMsg("w1"));
  Send("p2", HelloMsg("w2"));
  auto assigns = Tick();
  ASSERT_EQ(assigns.size(), 2u);
  EXPECT_EQ(assigns[0].attempt_key(), "key-0001........");
  EXPECT_EQ(assigns[1].attempt_key(), "key-0002........");
  EXPECT_EQ(farm_.FindJob(assigns[0].job().id())->attempt_key, assigns[0].attempt_key())
      << "the record (persisted) holds the key the worker was sent";
}

TEST_F(FarmSecurityTest, ResultsFromAConnectionThatNeverSaidHelloAreRefusedTheAttemptRunsOn) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  // The attack: a raw DEALER tries tokens 1..300, no key.
  int forged = 0, acks = 0;
  for (uint64_t token = 1; token <= 300; ++token) {
    Effects fx = Send("attacker", ResultMsg("a.j0", token, ""));
    forged += static_cast<int>(fx.forged.size());
    acks += Count(fx, &pb::CoordinatorMessage::has_result_ack);
    EXPECT_EQ(Count(fx, &pb::CoordinatorMessage::has_cancel, "p1"), 0)
        << "a forgery never cancels the real attempt";
  }
  EXPECT_EQ(forged, 1) << "the one naming the current attempt is counted as forged";
  EXPECT_EQ(acks, 0);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  EXPECT_EQ(farm_.FindJob("a.j0")->attempts, 1);
  EXPECT_EQ(farm_.FindJob("a.j0")->worker, "w1");

  // Even with the key, a connection that has not said hello is not heard
  // (the real worker on a new connection resends after its Hello).
  Effects keyed = Send("attacker", ResultMsg("a.j0", a[0].token(), a[0].attempt_key()));
  EXPECT_EQ(Count(keyed, &pb::CoordinatorMessage::has_result_ack), 0);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);

  Effects real = Send("p1", ResultMsg("a.j0", a[0].token(), a[0].attempt_key()));
  EXPECT_EQ(Count(real, &pb::CoordinatorMessage::has_result_ack, "p1"), 1);
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
}

TEST_F(FarmSecurityTest, AnotherWorkerCannotReportProgressPublishOrCompleteAnAttempt) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  Send("p2", HelloMsg("w2"));
  const uint64_t token = a[0].token();
  const std::string key = a[0].attempt_key();

  // w2 (an admitted worker) with the right token and a wrong key ...
  Effects wrong_key = Send("p2", ResultMsg("a.j0", token, std::string(16, 'x')));
  ASSERT_EQ(wrong_key.forged.size(), 1u);
  EXPECT_EQ(wrong_key.forged[0].kind, "result");
  EXPECT_EQ(wrong_key.forged[0].peer, "p2");
  // ... or even with the key (leaked): the attempt is w1's.
  Effects other_worker = Send("p2", ResultMsg("a.j0", token, key));
  ASSERT_EQ(other_worker.forged.size(), 1u);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);

  pb::WorkerMessage progress;
  progress.mutable_progress()->set_job_id("a.j0");
  progress.mutable_progress()->set_token(token);
  progress.mutable_progress()->set_fraction(0.9);
  EXPECT_EQ(Send("p2", progress).forged.size(), 1u);
  EXPECT_EQ(farm_.FindJob("a.j0")->progress, 0);

  pb::WorkerMessage publish;
  *publish.mutable_publish_request() = Ref("a.j0", token, "");
  Effects no_grant = Send("p2", publish);
  EXPECT_EQ(Count(no_grant, &pb::CoordinatorMessage::has_publish_grant), 0);
  EXPECT_EQ(no_grant.forged.size(), 1u);
  // w1 itself without its key gets no grant either.
  EXPECT_EQ(Count(Send("p1", publish), &pb::CoordinatorMessage::has_publish_grant), 0);

  // A heartbeat naming the attempt renews nobody's lease but its worker's,
  // and the sender is told to cancel what it claims (w1 is told nothing).
  const SteadyTime lease = farm_.FindJob("a.j0")->lease_until;
  now_ += milliseconds(1000);
  Effects hb = Send("p2", HeartbeatMsg({Ref("a.j0", token, key)}));
  EXPECT_EQ(farm_.FindJob("a.j0")->lease_until, lease);
  EXPECT_EQ(Count(hb, &pb::CoordinatorMessage::has_cancel, "p2"), 1);
  EXPECT_EQ(Count(hb, &pb::CoordinatorMessage::has_cancel, "p1"), 0);
  Send("p1", HeartbeatMsg({Ref("a.j0", token, key)}));
  EXPECT_EQ(farm_.FindJob("a.j0")->lease_until, now_ + milliseconds(3000));
}

TEST_F(FarmSecurityTest, TheRealWorkerWithItsKeyPublishesAndCompletes) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  pb::WorkerMessage publish;
  *publish.mutable_publish_request() = Ref("a.j0", a[0].token(), a[0].attempt_key());
  EXPECT_EQ(Count(Send("p1", publish), &pb::CoordinatorMessage::has_publish_grant, "p1"), 1);
  Effects done = Send("p1", ResultMsg("a.j0", a[0].token(), a[0].attempt_key()));
  EXPECT_TRUE(done.forged.empty());
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
}

TEST_F(FarmSecurityTest, HelloForALiveWorkersNameFromAnotherConnectionIsRefused) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  // The attack: six Hellos with the name, during the job, between
  // the real worker's heartbeats.
  for (int i = 0; i < 6; ++i) {
    now_ += milliseconds(500);
    Effects fx = Send("attacker", HelloMsg("w1"));
    ASSERT_EQ(fx.messages.size(), 1u);
    EXPECT_TRUE(fx.messages[0].message.has_hello_refused());
    ASSERT_EQ(fx.forged.size(), 1u);
    EXPECT_EQ(fx.forged[0].kind, "hello");
    EXPECT_TRUE(Tick().empty()) << "nothing is assigned to the attacker";
    Send("p1", HeartbeatMsg({Ref("a.j0", a[0].token(), a[0].attempt_key())}));
  }
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  EXPECT_EQ(farm_.FindJob("a.j0")->attempts, 1) << "the real attempt was not dropped";
  EXPECT_EQ(farm_.workers().at("w1").peer, "p1");
  // The attacker's heartbeats are not the worker's.
  Effects hb = Send("attacker", HeartbeatMsg({}));
  EXPECT_EQ(Count(hb, &pb::CoordinatorMessage::has_reconnect), 1);
  // A claim with a guessed key is no proof either.
  Effects guess = Send("attacker", HelloMsg("w1", {Ref("a.j0", a[0].token(), "guess")}));
  EXPECT_EQ(Count(guess, &pb::CoordinatorMessage::has_hello_refused), 1);
}

TEST_F(FarmSecurityTest, WorkerReconnectingWithItsAttemptKeysIsAdmittedAtOnce) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  // Its socket was replaced (the coordinator went quiet, say): a new routing
  // id, but it names its running attempt with the key.
  Effects fx = Send("p2", HelloMsg("w1", {Ref("a.j0", a[0].token(), a[0].attempt_key())}));
  ASSERT_EQ(Count(fx, &pb::CoordinatorMessage::has_welcome, "p2"), 1);
  EXPECT_EQ(fx.messages[0].message.welcome().cancel_size(), 0);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  EXPECT_EQ(farm_.workers().at("w1").peer, "p2");
  Send("p2", ResultMsg("a.j0", a[0].token(), a[0].attempt_key()));
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
}

TEST_F(FarmSecurityTest, WithCurveANameIsBoundToItsKey) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"), "KEY-ONE");
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  Send("p2", HelloMsg("w2"), "KEY-TWO");
  // An admitted worker (KEY-TWO) cannot take w1's name, even once w1 is
  // quiet ...
  Effects taken = Send("p3", HelloMsg("w1"), "KEY-TWO");
  EXPECT_EQ(Count(taken, &pb::CoordinatorMessage::has_hello_refused), 1);
  now_ += milliseconds(3500);
  Send("p2", HeartbeatMsg({}), "KEY-TWO");
  Tick();  // w1 lost, its attempt handed on (to w2)
  EXPECT_EQ(
      Count(Send("p3", HelloMsg("w1"), "KEY-TWO"), &pb::CoordinatorMessage::has_hello_refused), 1);
  // ... nor complete w1's job with w1's token.
  const JobRecord* j = farm_.FindJob("a.j0");
  ASSERT_EQ(j->worker, "w2");
  // w1 restarted (same key, new connection) is itself again at once.
  Effects back = Send("p4", HelloMsg("w1"), "KEY-ONE");
  EXPECT_EQ(Count(back, &pb::CoordinatorMessage::has_welcome, "p4"), 1);
  Send("p5", HelloMsg("w3"), "KEY-THREE");
  Effects restarted = Send("p6", HelloMsg("w3"), "KEY-THREE");
  EXPECT_EQ(Count(restarted, &pb::CoordinatorMessage::has_welcome, "p6"), 1)
      << "with CURVE the key is the proof: no wait for the old connection";
}

TEST_F(FarmSecurityTest, AForgedClaimInAHelloIsCancelledForTheSenderOnly) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  Effects fx = Send("p2", HelloMsg("w2", {Ref("a.j0", a[0].token(), "guess")}));
  ASSERT_EQ(Count(fx, &pb::CoordinatorMessage::has_welcome, "p2"), 1);
  EXPECT_EQ(fx.messages[0].message.welcome().cancel_size(), 1);
  EXPECT_EQ(fx.forged.size(), 1u);
  EXPECT_EQ(Count(fx, &pb::CoordinatorMessage::has_cancel, "p1"), 0);
  EXPECT_EQ(farm_.FindJob("a.j0")->worker, "w1");
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
}

// Issue 12 item 6: an assignment the daemon could not persist (Redis refused
// writes) is never sent; it must not use up an attempt.
TEST_F(FarmSecurityTest, AnAssignmentNeverSentIsTakenBackAndTheOutageUsesNoAttempts) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(farm_.FindJob("a.j0")->attempts, 1);
  // Persisting failed: the daemon takes the assignment back and pauses.
  Effects undo;
  farm_.Unassign("a.j0", a[0].token(), &undo);
  farm_.set_dispatch_paused(true);
  EXPECT_TRUE(undo.dirty_jobs.count("a.j0"));
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued);
  EXPECT_EQ(farm_.FindJob("a.j0")->attempts, 0);
  EXPECT_TRUE(farm_.workers().at("w1").running.empty()) << "its slot is free again";
  // A 40 s outage: the worker heartbeats, nothing is assigned, no lease
  // lapses, no attempt is used.
  for (int i = 0; i < 40; ++i) {
    now_ += milliseconds(1000);
    Send("p1", HeartbeatMsg({}));
    EXPECT_TRUE(Tick().empty());
  }
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued);
  EXPECT_EQ(farm_.FindJob("a.j0")->attempts, 0);
  // Redis is back.
  farm_.set_dispatch_paused(false);
  auto again = Tick();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt(), 1);
  EXPECT_NE(again[0].attempt_key(), a[0].attempt_key());
  // A late Unassign of the old attempt changes nothing.
  Effects late;
  farm_.Unassign("a.j0", a[0].token(), &late);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
}

TEST_F(FarmSecurityTest, AConnectionFoundGoneFreesTheNameAndHandsItsAttemptsOnAtOnce) {
  Submit("a", 1);
  Send("p1", HelloMsg("w1"));
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  // The worker process died; its restarted self is refused while the old
  // connection counts as live ...
  EXPECT_EQ(Count(Send("p2", HelloMsg("w1")), &pb::CoordinatorMessage::has_hello_refused), 1);
  // ... until sending to it fails (a heartbeat, ROUTER_MANDATORY).
  Effects gone;
  farm_.PeerGone("p1", now_, &gone);
  EXPECT_TRUE(farm_.workers().at("w1").lost);
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued) << "its running attempt is handed on at once";
  EXPECT_EQ(Count(Send("p2", HelloMsg("w1")), &pb::CoordinatorMessage::has_welcome, "p2"), 1)
      << "the restarted worker takes its name without waiting for an expiry";
}

}  // namespace
}  // namespace reelfarm
