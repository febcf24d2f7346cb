// The coordinator's state machine, driven by hand-made messages and an
// injected time; no sockets, no Redis, no sleeping.
#include "coordinator/farm_state.h"

#include <gtest/gtest.h>

namespace reelfarm {
namespace {

using std::chrono::milliseconds;

class FarmStateTest : public ::testing::Test {
 protected:
  FarmStateTest() : farm_(Options()) {}

  static FarmOptions Options() {
    FarmOptions o;
    o.heartbeat_interval = milliseconds(1000);
    o.liveness = 3;
    o.max_attempts = 3;
    o.retry_base = milliseconds(1000);
    o.retry_cap = milliseconds(8000);
    return o;
  }

  // A delivery of `n` jobs; job i needs `encoder`.
  void Submit(const std::string& id, int n, int priority = 50,
              const std::string& encoder = "libx264", uint64_t seq = 0) {
    DeliveryRecord d;
    d.id = id;
    d.name = id;
    d.priority = priority;
    d.seq = seq ? seq : ++seq_;
    std::vector<JobRecord> jobs;
    for (int i = 0; i < n; ++i) {
      JobRecord j;
      j.job.set_id(id + ".j" + std::to_string(i));
      j.job.mutable_needs()->add_encoders(encoder);
      auto* out = j.job.add_outputs();
      out->set_deliverable("d" + std::to_string(i));
      j.delivery_id = id;
      j.priority = priority;
      j.seq = d.seq * 1000 + i;
      jobs.push_back(j);
    }
    Effects fx;
    farm_.AddDelivery(d, jobs, now_, &fx);
  }

  // The attempt key a worker running (job, token) holds: the job's current
  // key when `token` is its current attempt (what the real worker echoes).
  std::string KeyOf(const std::string& job, uint64_t token) {
    const JobRecord* j = farm_.FindJob(job);
    return j != nullptr && j->token == token ? j->attempt_key : std::string();
  }

  Effects Hello(const std::string& peer, const std::string& name, int slots,
                std::vector<std::string> encoders = {"libx264", "aac"},
                std::vector<std::pair<std::string, uint64_t>> running = {},
                const std::string& peer_key = "", bool draining = false) {
    pb::WorkerMessage m;
    auto* h = m.mutable_hello();
    h->set_name(name);
    h->set_slots(slots);
    h->set_draining(draining);
    for (auto& e : encoders) h->add_encoders(e);
    for (auto& [id, token] : running) {
      auto* r = h->add_running();
      r->set_job_id(id);
      r->set_token(token);
      r->set_attempt_key(KeyOf(id, token));
    }
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx, peer_key);
    return fx;
  }

  Effects Heartbeat(const std::string& peer, std::vector<std::pair<std::string, uint64_t>> running,
                    bool draining = false) {
    pb::WorkerMessage m;
    m.mutable_heartbeat()->set_draining(draining);
    for (auto& [id, token] : running) {
      auto* r = m.mutable_heartbeat()->add_running();
      r->set_job_id(id);
      r->set_token(token);
      r->set_attempt_key(KeyOf(id, token));
    }
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx);
    return fx;
  }

  // The result message of attempt (job, token, key), for a test to add to.
  static pb::WorkerMessage ResultMessage(const std::string& job, uint64_t token,
                                         const std::string& key, bool ok, bool retryable,
                                         const std::string& error) {
    pb::WorkerMessage m;
    auto* r = m.mutable_result();
    r->set_job_id(job);
    r->set_token(token);
    r->set_attempt_key(key);
    r->set_ok(ok);
    r->set_retryable(retryable);
    r->set_error(error);
    return m;
  }
  // Of the attempt `a` assigned.
  static pb::WorkerMessage ResultOf(const pb::Assign& a, bool ok, bool retryable = true,
                                    const std::string& error = "") {
    return ResultMessage(a.job().id(), a.token(), a.attempt_key(), ok, retryable, error);
  }

  Effects Result(const std::string& peer, const std::string& job, uint64_t token, bool ok,
                 bool retryable = true, const std::string& error = "") {
    Effects fx;
    farm_.OnMessage(peer, ResultMessage(job, token, KeyOf(job, token), ok, retryable, error), now_,
                    &fx);
    return fx;
  }

  Effects Tick() {
    Effects fx;
    farm_.Tick(now_, &fx);
    return fx;
  }

  static std::vector<pb::Assign> Assigns(const Effects& fx, const std::string& peer = "") {
    std::vector<pb::Assign> out;
    for (const auto& m : fx.messages) {
      if (m.message.has_assign() && (peer.empty() || m.peer == peer)) {
        out.push_back(m.Whole().assign());
      }
    }
    return out;
  }

  JobState StateOf(const std::string& id) { return farm_.FindJob(id)->state; }

  FarmState farm_;
  SteadyTime now_ = SteadyTime(std::chrono::hours(1));
  uint64_t seq_ = 0;
};

TEST_F(FarmStateTest, KeepsASummaryInMemoryAndSendsTheWholeJob) {
  DeliveryRecord d;
  d.id = d.name = "w";
  d.seq = 1;
  JobRecord j;
  j.job.set_id("w.j0");
  for (const char* a :
       {"ffmpeg",    "-hide_banner", "-nostdin",  "-y",     "-loglevel",  "warning", "-progress",
        "pipe:1",    "-f",           "mov",       "-i",     "/m/src.mov", "-map",    "0:v:0",
        "-c:v",      "libx264",      "-preset",   "medium", "-crf",       "23",      "-pix_fmt",
        "yuv420p",   "-map",         "0:a:0?",    "-c:a",   "aac",        "-b:a",    "160k",
        "-movflags", "+faststart",   "/o/web.mp4"}) {
    j.job.add_argv(a);
  }
  j.job.add_inputs("/m/src.mov");
  auto* out = j.job.add_outputs();
  out->set_deliverable("web");
  out->set_relative_path("web.mp4");
  out->mutable_expect()->set_width(1280);
  out->mutable_cache()->set_key(std::string(64, 'a'));
  out->mutable_qc()->set_ssim_min(0.97);
  j.job.mutable_needs()->add_encoders("libx264");
  j.delivery_id = "w";
  Effects added;
  farm_.AddDelivery(d, {j}, now_, &added);

  const JobRecord* rec = farm_.FindJob("w.j0");
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->job.argv_size(), 0) << "the argv lives only in the payload";
  EXPECT_EQ(rec->job.inputs_size(), 0);
  EXPECT_FALSE(rec->job.outputs(0).has_expect());
  EXPECT_FALSE(rec->job.outputs(0).has_cache());
  EXPECT_FALSE(rec->job.outputs(0).has_qc());
  EXPECT_EQ(rec->job.outputs(0).relative_path(), "web.mp4");
  // Held deflated, given back exactly.
  EXPECT_TRUE(rec->payload_deflated());
  EXPECT_LT(rec->payload.size(), rec->payload_size);
  EXPECT_EQ(rec->Payload(), j.job.SerializeAsString());
  EXPECT_EQ(UnpackJob(*rec).SerializeAsString(), j.job.SerializeAsString());

  Hello("p1", "w1", 1);
  auto assigns = Assigns(Tick(), "p1");
  ASSERT_EQ(assigns.size(), 1u);
  EXPECT_EQ(assigns[0].job().SerializeAsString(), j.job.SerializeAsString())
      << "the worker gets the job as planned";
}

TEST_F(FarmStateTest, AssignsQueuedJobsToFreeSlotsWithIncreasingTokens) {
  Submit("a", 3);
  Hello("p1", "w1", 2);
  Effects fx = Tick();
  auto assigns = Assigns(fx, "p1");
  ASSERT_EQ(assigns.size(), 2u);
  EXPECT_EQ(assigns[0].job().id(), "a.j0");
  EXPECT_EQ(assigns[1].job().id(), "a.j1");
  EXPECT_LT(assigns[0].token(), assigns[1].token());
  EXPECT_EQ(assigns[0].attempt(), 1);
  EXPECT_TRUE(fx.dirty_jobs.count("a.j0"));
  EXPECT_EQ(StateOf("a.j2"), JobState::kQueued);
  // No free slot: nothing more.
  EXPECT_TRUE(Assigns(Tick()).empty());
  // A slot frees up: the third goes.
  Result("p1", "a.j0", assigns[0].token(), true);
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
  auto next = Assigns(Tick(), "p1");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].job().id(), "a.j2");
}

TEST_F(FarmStateTest, ANewPriorityReordersTheQueueAtOnce) {
  Submit("a", 2);
  Submit("b", 2);
  Effects fx;
  ASSERT_TRUE(farm_.SetPriority("b", 90, &fx).ok());
  EXPECT_TRUE(fx.dirty_deliveries.count("b"));
  EXPECT_TRUE(fx.dirty_jobs.count("b.j0") && fx.dirty_jobs.count("b.j1"));
  EXPECT_EQ(farm_.FindDelivery("b")->priority, 90);
  Hello("p1", "w1", 1);
  auto first = Assigns(Tick(), "p1");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].job().id(), "b.j0") << "b was submitted later, but now runs first";
  EXPECT_EQ(farm_.SetPriority("a", 101, &fx).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(farm_.SetPriority("zz", 10, &fx).code(), Status::Code::kNotFound);
  ASSERT_TRUE(farm_.Cancel("a", now_, &fx).ok());
  EXPECT_EQ(farm_.SetPriority("a", 10, &fx).code(), Status::Code::kFailedPrecondition);
}

TEST_F(FarmStateTest, ADrainingWorkerGetsNoNewWorkAndKeepsWhatItRuns) {
  Submit("a", 3);
  Hello("p1", "w1", 2);
  auto assigns = Assigns(Tick(), "p1");
  ASSERT_EQ(assigns.size(), 2u);
  // It drains: the heartbeat says so; its running attempts keep their lease.
  Heartbeat("p1", {{"a.j0", assigns[0].token()}, {"a.j1", assigns[1].token()}},
            /*draining=*/true);
  EXPECT_TRUE(farm_.workers().at("w1").draining);
  Result("p1", "a.j0", assigns[0].token(), true);
  EXPECT_TRUE(Assigns(Tick()).empty()) << "a free slot, but draining";
  EXPECT_EQ(StateOf("a.j1"), JobState::kRunning);
  // Another worker takes the queued job.
  Hello("p2", "w2", 1);
  auto next = Assigns(Tick(), "p2");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].job().id(), "a.j2");
  // A Hello that says draining (a coordinator restart) keeps it out too.
  Hello("p3", "w3", 4, {"libx264", "aac"}, {}, "", /*draining=*/true);
  EXPECT_TRUE(farm_.workers().at("w3").draining);
}

TEST_F(FarmStateTest, HigherPriorityFirstAndFifoWithinAPriority) {
  Submit("low", 1, 10);
  Submit("first", 1, 90);
  Submit("second", 1, 90);
  Hello("p1", "w1", 1);
  auto a1 = Assigns(Tick());
  ASSERT_EQ(a1.size(), 1u);
  EXPECT_EQ(a1[0].job().id(), "first.j0");
  Result("p1", "first.j0", a1[0].token(), true);
  auto a2 = Assigns(Tick());
  ASSERT_EQ(a2.size(), 1u);
  EXPECT_EQ(a2[0].job().id(), "second.j0");
  Result("p1", "second.j0", a2[0].token(), true);
  auto a3 = Assigns(Tick());
  ASSERT_EQ(a3.size(), 1u);
  EXPECT_EQ(a3[0].job().id(), "low.j0");
}

TEST_F(FarmStateTest, JobsGoOnlyToWorkersWithTheEncoders) {
  Submit("hevc", 1, 50, "libx265");
  Hello("p1", "w1", 4, {"libx264"});
  EXPECT_TRUE(Assigns(Tick()).empty());
  Hello("p2", "w2", 1, {"libx264", "libx265"});
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(farm_.FindJob("hevc.j0")->worker, "w2");
}

TEST_F(FarmStateTest, SilentWorkerIsLostAndItsJobRunsElsewhereStaleResultRefused) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto first = Assigns(Tick());
  ASSERT_EQ(first.size(), 1u);
  Hello("p2", "w2", 1);
  // w2 heartbeats, w1 does not. Just inside the expiry nothing moves.
  now_ += milliseconds(2900);
  Heartbeat("p2", {});
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  EXPECT_TRUE(Assigns(Tick()).empty());
  now_ += milliseconds(200);  // 3.1 s: past 1 s x 3
  Heartbeat("p2", {});
  auto second = Assigns(Tick(), "p2");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].token(), first[0].token());
  EXPECT_EQ(second[0].attempt(), 2);
  EXPECT_TRUE(farm_.workers().at("w1").lost);

  // The stale attempt's result is refused (acknowledged, not recorded).
  Effects stale = Result("p1", "a.j0", first[0].token(), true);
  EXPECT_EQ(stale.stale_results, 1);
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  ASSERT_FALSE(stale.messages.empty());
  EXPECT_TRUE(stale.messages[0].message.has_result_ack());

  Effects good = Result("p2", "a.j0", second[0].token(), true);
  EXPECT_EQ(good.stale_results, 0);
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
  ASSERT_EQ(good.finished_deliveries.size(), 1u);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "delivered");
}

TEST_F(FarmStateTest, HeartbeatsKeepAWorkerAndItsLeaseAlive) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  for (int i = 0; i < 10; ++i) {
    now_ += milliseconds(1000);
    Heartbeat("p1", {{"a.j0", a[0].token()}});
    Tick();
  }
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  EXPECT_EQ(farm_.FindJob("a.j0")->attempts, 1);
  EXPECT_FALSE(farm_.workers().at("w1").lost);
}

TEST_F(FarmStateTest, HeartbeatNamingASupersededAttemptGetsItCancelled) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  Effects fx = Heartbeat("p1", {{"a.j0", a[0].token() + 100}});
  bool cancelled = false;
  for (const auto& m : fx.messages) {
    if (m.message.has_cancel() && m.message.cancel().token() == a[0].token() + 100) {
      cancelled = true;
    }
  }
  EXPECT_TRUE(cancelled);
}

TEST_F(FarmStateTest, RetryableFailureBacksOffThenRetriesThenGivesUp) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a1 = Assigns(Tick());
  Result("p1", "a.j0", a1[0].token(), false, true, "ffmpeg exited with code 1");
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued);
  // Backoff: base 1 s +-25%, so nothing before 0.75 s ...
  now_ += milliseconds(700);
  Heartbeat("p1", {});
  EXPECT_TRUE(Assigns(Tick()).empty());
  // ... and it goes by 1.25 s.
  now_ += milliseconds(600);
  Heartbeat("p1", {});
  auto a2 = Assigns(Tick());
  ASSERT_EQ(a2.size(), 1u);
  Result("p1", "a.j0", a2[0].token(), false, true, "ffmpeg exited with code 1");
  now_ += milliseconds(2600);  // second backoff: 2 s +-25%
  Heartbeat("p1", {});
  auto a3 = Assigns(Tick());
  ASSERT_EQ(a3.size(), 1u);
  EXPECT_EQ(a3[0].attempt(), 3);
  Effects last = Result("p1", "a.j0", a3[0].token(), false, true, "ffmpeg exited with code 1");
  EXPECT_EQ(StateOf("a.j0"), JobState::kFailed);
  EXPECT_NE(farm_.FindJob("a.j0")->error.find("gave up after 3 attempts"), std::string::npos);
  EXPECT_EQ(last.finished_deliveries.size(), 1u);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "failed");
}

TEST_F(FarmStateTest, NonRetryableFailureFailsAtOnceOthersCarryOn) {
  Submit("a", 2);
  Hello("p1", "w1", 2);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 2u);
  Result("p1", "a.j0", a[0].token(), false, false, "verification failed");
  EXPECT_EQ(StateOf("a.j0"), JobState::kFailed);
  EXPECT_EQ(farm_.FindJob("a.j0")->error, "verification failed");
  EXPECT_EQ(StateOf("a.j1"), JobState::kRunning);
  Effects fx = Result("p1", "a.j1", a[1].token(), true);
  ASSERT_EQ(fx.finished_deliveries.size(), 1u);
  DeliveryCounts c = farm_.Counts(*farm_.FindDelivery("a"));
  EXPECT_EQ(c.delivered, 1);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.state, "failed");
}

TEST_F(FarmStateTest, ReloadedRunningJobIsAdoptedByItsWorkersHello) {
  // As after a coordinator restart: Redis says a.j0 runs on w1 with token 7.
  DeliveryRecord d;
  d.id = "a";
  JobRecord j;
  j.job.set_id("a.j0");
  j.job.add_outputs()->set_deliverable("x");
  j.delivery_id = "a";
  j.state = JobState::kRunning;
  j.worker = "w1";
  j.token = 7;
  j.attempt_key = "0123456789abcdef";
  j.attempts = 1;
  Effects fx;
  farm_.AddDelivery(d, {j}, now_, &fx);
  EXPECT_EQ(farm_.last_token(), 7u);

  Effects hello = Hello("p9", "w1", 1, {"libx264"}, {{"a.j0", 7}});
  ASSERT_FALSE(hello.messages.empty());
  ASSERT_TRUE(hello.messages[0].message.has_welcome());
  EXPECT_EQ(hello.messages[0].message.welcome().cancel_size(), 0);
  now_ += milliseconds(2500);
  Heartbeat("p9", {{"a.j0", 7}});
  now_ += milliseconds(2500);
  Heartbeat("p9", {{"a.j0", 7}});
  Tick();
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  Result("p9", "a.j0", 7, true);
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded);
}

TEST_F(FarmStateTest, ReloadedRunningJobNobodyClaimsIsRequeuedAfterOneExpiry) {
  DeliveryRecord d;
  d.id = "a";
  JobRecord j;
  j.job.set_id("a.j0");
  j.job.add_outputs()->set_deliverable("x");
  j.delivery_id = "a";
  j.state = JobState::kRunning;
  j.worker = "gone";
  j.token = 3;
  j.attempts = 1;
  Effects fx;
  farm_.AddDelivery(d, {j}, now_, &fx);
  Hello("p1", "w1", 1);
  now_ += milliseconds(2000);
  Heartbeat("p1", {});
  EXPECT_TRUE(Assigns(Tick()).empty());
  now_ += milliseconds(1500);
  Heartbeat("p1", {});
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].token(), 4u);
  EXPECT_EQ(a[0].attempt(), 2);
}

TEST_F(FarmStateTest, RestartedWorkerLosesItsOldAttemptsAtOnceWhenItsOldConnectionIsQuiet) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  // Same name, new connection, running nothing: while the old connection
  // still speaks this is no proof of anything (issue 12: a forged hello).
  now_ += milliseconds(1000);
  Heartbeat("p1", {{"a.j0", a[0].token()}});
  Effects early = Hello("p2", "w1", 1);
  ASSERT_EQ(early.messages.size(), 1u);
  EXPECT_TRUE(early.messages[0].message.has_hello_refused());
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  // The old connection has been quiet for an expiry (the process died): the
  // restarted worker is admitted and its old attempts are lost at once,
  // before the reaper's tick.
  now_ += milliseconds(3100);
  Hello("p2", "w1", 1);
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued);
  auto again = Assigns(Tick(), "p2");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GT(again[0].token(), a[0].token());
}

TEST_F(FarmStateTest, HelloNamingASupersededAttemptIsToldToCancelIt) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  Effects fx = Hello("p3", "w3", 1, {"libx264"}, {{"a.j0", a[0].token() + 5}});
  ASSERT_TRUE(fx.messages[0].message.has_welcome());
  ASSERT_EQ(fx.messages[0].message.welcome().cancel_size(), 1);
  EXPECT_EQ(fx.messages[0].message.welcome().cancel(0).token(), a[0].token() + 5);
}

TEST_F(FarmStateTest, UnknownPeerIsAskedToReconnect) {
  Effects fx = Heartbeat("stranger", {});
  ASSERT_EQ(fx.messages.size(), 1u);
  EXPECT_TRUE(fx.messages[0].message.reconnect());
}

TEST_F(FarmStateTest, CancelStopsRunningAttemptsAndFinishesTheDelivery) {
  Submit("a", 2);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  Effects fx;
  ASSERT_TRUE(farm_.Cancel("a", now_, &fx).ok());
  bool cancel_sent = false;
  for (const auto& m : fx.messages) {
    if (m.peer == "p1" && m.message.has_cancel() && m.message.cancel().token() == a[0].token()) {
      cancel_sent = true;
    }
  }
  EXPECT_TRUE(cancel_sent);
  EXPECT_EQ(StateOf("a.j0"), JobState::kCancelled);
  EXPECT_EQ(StateOf("a.j1"), JobState::kCancelled);
  EXPECT_EQ(fx.finished_deliveries.size(), 1u);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "cancelled");
  EXPECT_TRUE(Assigns(Tick()).empty());
  EXPECT_FALSE(farm_.Cancel("nope", now_, &fx).ok());
}

TEST_F(FarmStateTest, DependentJobWaitsForItsDependency) {
  DeliveryRecord d;
  d.id = "a";
  JobRecord first, second;
  first.job.set_id("a.j0");
  first.job.add_outputs()->set_deliverable("x");
  first.delivery_id = "a";
  second.job.set_id("a.j1");
  second.job.add_outputs()->set_deliverable("y");
  second.job.add_depends_on("a.j0");
  second.delivery_id = "a";
  second.state = JobState::kWaiting;
  second.seq = 1;
  Effects fx;
  farm_.AddDelivery(d, {first, second}, now_, &fx);
  Hello("p1", "w1", 2);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job().id(), "a.j0");
  Result("p1", "a.j0", a[0].token(), true);
  auto b = Assigns(Tick());
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].job().id(), "a.j1");
}

// Issue 13: the analyse job's measurement of the source reaches every job
// that depends on it, and only those, in their Assign.
TEST_F(FarmStateTest, TheSourcesAnalysisReachesTheJobsThatDependOnIt) {
  DeliveryRecord d;
  d.id = "a";
  JobRecord analyse, web, other;
  analyse.job.set_id("a.analyse");
  analyse.job.set_kind("analyse");
  analyse.delivery_id = "a";
  web.job.set_id("a.j0");
  web.job.add_outputs()->set_deliverable("web");
  web.job.add_depends_on("a.analyse");
  web.delivery_id = "a";
  web.state = JobState::kWaiting;
  web.seq = 1;
  other.job.set_id("a.j1");
  other.job.add_outputs()->set_deliverable("chunk");
  other.delivery_id = "a";
  other.seq = 2;
  Effects fx;
  farm_.AddDelivery(d, {analyse, web, other}, now_, &fx);
  Hello("p1", "w1", 2);
  auto first = Assigns(Tick());
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].job().id(), "a.analyse");
  EXPECT_FALSE(first[1].has_source_analysis());
  // The waiting job shows no progress of its own while the source is measured.
  EXPECT_EQ(farm_.Progress(*farm_.FindJob("a.j0")), 0);

  pb::WorkerMessage m = ResultOf(first[0], true);
  auto* r = m.mutable_result();
  r->mutable_analysis()->set_loudness_measured(true);
  r->mutable_analysis()->set_integrated_lufs(-29.5);
  Effects done;
  farm_.OnMessage("p1", m, now_, &done);
  auto next = Assigns(Tick());
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].job().id(), "a.j0");
  ASSERT_TRUE(next[0].has_source_analysis());
  EXPECT_EQ(next[0].source_analysis().integrated_lufs(), -29.5);
  // Kept with the job (stored in Redis with its result) for later attempts.
  EXPECT_TRUE(farm_.FindJob("a.analyse")->result.has_analysis());
}

TEST_F(FarmStateTest, DeliveryWithOnlyPlanFailuresFinishesFailedAtOnce) {
  DeliveryRecord d;
  d.id = "a";
  auto* f = d.plan.add_failures();
  f->set_deliverable("audio");
  f->set_reason("the source has no audio");
  Effects fx;
  farm_.AddDelivery(d, {}, now_, &fx);
  ASSERT_EQ(fx.finished_deliveries.size(), 1u);
  DeliveryCounts c = farm_.Counts(*farm_.FindDelivery("a"));
  EXPECT_EQ(c.total, 1);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.state, "failed");
}

TEST_F(FarmStateTest, GoodbyeHandsTheJobOnImmediately) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  Hello("p2", "w2", 1);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  std::string first_peer = farm_.FindJob("a.j0")->worker == "w1" ? "p1" : "p2";
  pb::WorkerMessage bye;
  bye.set_goodbye(true);
  Effects fx;
  farm_.OnMessage(first_peer, bye, now_, &fx);
  auto b = Assigns(Tick());
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE(farm_.FindJob("a.j0")->worker, first_peer == "p1" ? "w1" : "w2");
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST_F(FarmStateTest, EmitsEventsWithQueueWaitRunTimeAndRedispatchReason) {
  Submit("a", 1);
  now_ += milliseconds(400);
  Hello("p1", "w1", 1);
  Effects assigned = Tick();
  ASSERT_EQ(assigned.events.size(), 1u);
  EXPECT_EQ(assigned.events[0].kind, FarmEvent::Kind::kAssigned);
  EXPECT_EQ(assigned.events[0].queue_wait, milliseconds(400));
  EXPECT_EQ(assigned.events[0].worker, "w1");

  now_ += milliseconds(3100);  // w1 silent past the expiry
  Effects lost = Tick();
  bool redispatched = false;
  for (const auto& e : lost.events) {
    if (e.kind == FarmEvent::Kind::kRedispatch) {
      redispatched = true;
      EXPECT_EQ(e.reason, "worker_lost");
      EXPECT_EQ(e.job_id, "a.j0");
    }
  }
  EXPECT_TRUE(redispatched);

  Hello("p2", "w2", 1);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  now_ += milliseconds(1500);
  Effects done = Result("p2", "a.j0", a[0].token(), true);
  bool succeeded = false, finished = false;
  for (const auto& e : done.events) {
    if (e.kind == FarmEvent::Kind::kSucceeded) {
      succeeded = true;
      EXPECT_EQ(e.run_time, milliseconds(1500));
    }
    if (e.kind == FarmEvent::Kind::kDeliveryFinished) {
      finished = true;
      EXPECT_EQ(e.reason, "delivered");
    }
  }
  EXPECT_TRUE(succeeded);
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST_F(FarmStateTest, PublishIsGrantedToTheCurrentAttemptOnlyAndInsideItsLease) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto first = Assigns(Tick());
  ASSERT_EQ(first.size(), 1u);
  Hello("p2", "w2", 1);

  pb::WorkerMessage ask;
  ask.mutable_publish_request()->set_job_id("a.j0");
  ask.mutable_publish_request()->set_token(first[0].token());
  ask.mutable_publish_request()->set_attempt_key(first[0].attempt_key());
  now_ += milliseconds(2500);  // within the lease
  Effects granted;
  farm_.OnMessage("p1", ask, now_, &granted);
  ASSERT_EQ(granted.messages.size(), 1u);
  ASSERT_TRUE(granted.messages[0].message.has_publish_grant());
  const int valid_ms = granted.messages[0].message.publish_grant().valid_ms();
  EXPECT_EQ(valid_ms, 1500);  // half of 1 s x 3
  // The grant renewed the lease: the job is not handed on before the
  // window (1.5 s) has long closed on the worker.
  now_ += milliseconds(2900);
  Heartbeat("p2", {});
  EXPECT_TRUE(Assigns(Tick()).empty());
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);

  // w1 stalls: the job moves to w2, and w1's late request is refused.
  now_ += milliseconds(200);
  Heartbeat("p2", {});
  auto second = Assigns(Tick(), "p2");
  ASSERT_EQ(second.size(), 1u);
  Hello("p1", "w1", 1, {"libx264"}, {{"a.j0", first[0].token()}});
  Effects refused;
  farm_.OnMessage("p1", ask, now_, &refused);
  ASSERT_EQ(refused.messages.size(), 1u);
  EXPECT_TRUE(refused.messages[0].message.has_cancel());
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST_F(FarmStateTest, WorkerWhoseFailuresSucceedElsewhereIsQuarantinedAndReleased) {
  Submit("a", 3);
  Hello("bad", "broken", 1);
  // The broken worker fails all three jobs ...
  for (int i = 0; i < 3; ++i) {
    auto a = Assigns(Tick(), "bad");
    ASSERT_EQ(a.size(), 1u) << i;
    Result("bad", a[0].job().id(), a[0].token(), false, true, "ffmpeg exited with code 1");
  }
  EXPECT_EQ(farm_.workers().at("broken").failure_streak, 3);
  // ... which then succeed, one by one, on a healthy worker, while the
  // broken one gets none of them back.
  Hello("good", "healthy", 1);
  for (int i = 0; i < 3; ++i) {
    now_ += milliseconds(10000);
    Heartbeat("bad", {});
    Heartbeat("good", {});
    Effects fx = Tick();
    EXPECT_TRUE(Assigns(fx, "bad").empty()) << i;
    auto a = Assigns(fx, "good");
    ASSERT_EQ(a.size(), 1u) << i;
    Effects done = Result("good", a[0].job().id(), a[0].token(), true);
    EXPECT_EQ(farm_.workers().at("broken").confirmed_failures, i + 1);
    EXPECT_EQ(done.quarantine_changes.count("broken"), i == 2 ? 1u : 0u) << i;
  }
  EXPECT_TRUE(farm_.workers().at("broken").quarantined);
  EXPECT_FALSE(farm_.workers().at("healthy").quarantined);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "delivered");

  // Quarantined: new work skips it.
  Submit("b", 1);
  EXPECT_TRUE(Assigns(Tick(), "bad").empty());

  Effects fx;
  ASSERT_TRUE(farm_.Release("broken", &fx).ok());
  EXPECT_EQ(fx.quarantine_changes.at("broken"), "");
  EXPECT_FALSE(farm_.workers().at("broken").quarantined);
  EXPECT_FALSE(farm_.Release("healthy", &fx).ok());
}

TEST_F(FarmStateTest, JobFailingOnSeveralWorkersIsBlamedOnTheJobNotTheHosts) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  Hello("p2", "w2", 1);
  Hello("p3", "w3", 1);
  std::set<std::string> tried;
  for (int attempt = 0; attempt < 3; ++attempt) {
    now_ += milliseconds(9000);
    for (auto p : {"p1", "p2", "p3"}) Heartbeat(p, {});
    auto a = Assigns(Tick());
    ASSERT_EQ(a.size(), 1u);
    tried.insert(farm_.FindJob("a.j0")->worker);
    std::string peer = "p" + farm_.FindJob("a.j0")->worker.substr(1);
    Result(peer, "a.j0", a[0].token(), false, true, "decoder error");
  }
  EXPECT_EQ(tried.size(), 3u) << "each retry went to a worker it had not failed on";
  EXPECT_EQ(StateOf("a.j0"), JobState::kFailed);
  for (const auto& [name, w] : farm_.workers()) EXPECT_FALSE(w.quarantined) << name;
}

// A delivery of one decode-once group of three outputs (members m0..m2).
void SubmitGroup(FarmState& farm, SteadyTime now) {
  DeliveryRecord d;
  d.id = "g";
  d.seq = 1;
  JobRecord j;
  j.job.set_id("g.j0");
  j.job.set_kind("group");
  j.job.mutable_needs()->add_encoders("libx264");
  for (int k = 0; k < 3; ++k) {
    auto* out = j.job.add_outputs();
    out->set_deliverable("d" + std::to_string(k));
    out->set_preset("web-h264");
    pb::Job* member = j.job.add_members();
    member->set_id("g.j0m" + std::to_string(k));
    member->mutable_needs()->add_encoders("libx264");
    *member->add_outputs() = *out;
  }
  *d.plan.add_jobs() = j.job;
  j.delivery_id = "g";
  j.seq = 1000;
  Effects fx;
  farm.AddDelivery(d, {j}, now, &fx);
}

TEST_F(FarmStateTest, AGroupThatPublishedSomeOutputsRunsOnlyTheOthersOnTheirOwn) {
  SubmitGroup(farm_, now_);
  Hello("p1", "w1", 1);
  Effects fx = Tick();
  ASSERT_EQ(Assigns(fx).size(), 1u);
  // d1 published, d0 and d2 failed verification: not retryable.
  pb::WorkerMessage m =
      ResultOf(Assigns(fx)[0], false, false, "verification failed for d0: width 10, expected 20");
  auto* r = m.mutable_result();
  r->add_outputs()->set_deliverable("d1");
  Effects done;
  farm_.OnMessage("p1", m, now_, &done);

  const JobRecord* group = farm_.FindJob("g.j0");
  EXPECT_EQ(group->state, JobState::kSucceeded);
  ASSERT_EQ(group->job.outputs_size(), 1);
  EXPECT_EQ(group->job.outputs(0).deliverable(), "d1");
  EXPECT_EQ(StateOf("g.j0m0"), JobState::kQueued);
  EXPECT_EQ(StateOf("g.j0m2"), JobState::kQueued);
  EXPECT_EQ(farm_.FindJob("g.j0m1"), nullptr) << "the published output is not made again";
  const DeliveryRecord* d = farm_.FindDelivery("g");
  EXPECT_EQ(d->job_ids.size(), 3u) << "the new jobs are listed with the delivery";
  EXPECT_TRUE(done.dirty_deliveries.count("g"));
  EXPECT_TRUE(done.dirty_jobs.count("g.j0m0") && done.dirty_jobs.count("g.j0m2"));
  DeliveryCounts c = farm_.Counts(*d);
  EXPECT_EQ(c.total, 3);
  EXPECT_EQ(c.delivered, 1);
  EXPECT_EQ(c.queued, 2);
  EXPECT_EQ(c.state, "running");

  // The members run on their own; one fails for good, the other delivers.
  Effects next = Tick();
  ASSERT_EQ(Assigns(next).size(), 1u);
  pb::Assign a = Assigns(next)[0];
  Result("p1", a.job().id(), a.token(), true);
  next = Tick();
  ASSERT_EQ(Assigns(next).size(), 1u);
  a = Assigns(next)[0];
  Result("p1", a.job().id(), a.token(), false, false, "bad");
  c = farm_.Counts(*d);
  EXPECT_EQ(c.delivered, 2);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.state, "failed");
}

// Issue 13: an output a QC gate refused fails on its own at once (the same
// input makes the same file); the group's other refused outputs run again.
TEST_F(FarmStateTest, AGroupOutputRefusedByQcFailsWithoutRunningAgain) {
  SubmitGroup(farm_, now_);
  Hello("p1", "w1", 1);
  Effects fx = Tick();
  ASSERT_EQ(Assigns(fx).size(), 1u);
  pb::WorkerMessage m = ResultOf(Assigns(fx)[0], false, false, "QC failed for d0: ...");
  auto* r = m.mutable_result();
  r->add_outputs()->set_deliverable("d1");
  pb::OutputResult* rejected = r->add_qc_rejected();
  rejected->set_deliverable("d0");
  pb::QcGateResult* gate = rejected->mutable_qc()->add_gates();
  gate->set_gate("black");
  gate->set_measured("3.00 s of black from 3.00 s");
  gate->set_limit("at most 2.00 s");
  Effects done;
  farm_.OnMessage("p1", m, now_, &done);

  EXPECT_EQ(StateOf("g.j0m0"), JobState::kFailed);
  EXPECT_EQ(farm_.FindJob("g.j0m0")->error,
            "QC failed for d0: QC gate black failed: 3.00 s of black from 3.00 s (at most 2.00 s)");
  ASSERT_EQ(farm_.FindJob("g.j0m0")->result.qc_rejected_size(), 1);
  EXPECT_EQ(StateOf("g.j0m2"), JobState::kQueued) << "refused by verification: runs again";
  int qc_failures = 0;
  for (const auto& e : done.events) {
    qc_failures += e.kind == FarmEvent::Kind::kFailed && e.reason == "qc_failed";
  }
  EXPECT_EQ(qc_failures, 1) << "counted apart from other failures of the job's own";
  EXPECT_EQ(farm_.FindJob("g.j0m1"), nullptr);
}

TEST_F(FarmStateTest, AGroupThatKeepsFailingIsSplitInsteadOfFailed) {
  SubmitGroup(farm_, now_);
  Hello("p1", "w1", 1);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Effects fx = Tick();
    if (Assigns(fx).empty()) {
      now_ += std::chrono::seconds(10);  // past the retry backoff
      Heartbeat("p1", {});
      fx = Tick();
    }
    ASSERT_EQ(Assigns(fx).size(), 1u) << "attempt " << attempt;
    Result("p1", "g.j0", Assigns(fx)[0].token(), false, true, "killed by signal 9");
  }
  EXPECT_EQ(StateOf("g.j0"), JobState::kSucceeded);
  EXPECT_EQ(farm_.FindJob("g.j0")->job.outputs_size(), 0);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(StateOf("g.j0m" + std::to_string(k)), JobState::kQueued);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("g")).total, 3);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST_F(FarmStateTest, OutOfMemoryIsRetriedWithHalfTheThreadsElsewhereAndBlamesNoHost) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a1 = Assigns(Tick());
  ASSERT_EQ(a1.size(), 1u);
  EXPECT_EQ(a1[0].max_threads(), 0);  // the worker's own budget
  Hello("p2", "w2", 1);
  pb::WorkerMessage m = ResultOf(
      a1[0], false, true, "ffmpeg ran out of memory under its limit of 2229 MiB with 8 threads");
  auto* r = m.mutable_result();
  r->set_out_of_memory(true);
  r->set_threads(8);
  Effects fx;
  farm_.OnMessage("p1", m, now_, &fx);
  EXPECT_EQ(StateOf("a.j0"), JobState::kQueued);
  EXPECT_EQ(farm_.FindJob("a.j0")->max_threads, 4);
  EXPECT_EQ(farm_.workers().at("w1").failure_streak, 0);
  now_ += milliseconds(1300);  // past the backoff
  Heartbeat("p1", {});
  Heartbeat("p2", {});
  auto a2 = Assigns(Tick());
  ASSERT_EQ(a2.size(), 1u);
  EXPECT_EQ(a2[0].max_threads(), 4);
  EXPECT_EQ(a2[0].attempt(), 2);
  EXPECT_EQ(farm_.FindJob("a.j0")->worker, "w2");  // not where it ran out
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// Issue 12, item 14: a cancel cannot take back a publish it granted.
TEST_F(FarmStateTest, ACancelAfterThePublishGrantLetsTheAttemptFinishAndListsWhatItPublished) {
  Submit("a", 2);
  Hello("p1", "w1", 2);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 2u);
  // a.j0 is granted leave to publish; a.j1 is still encoding.
  pb::WorkerMessage ask;
  ask.mutable_publish_request()->set_job_id(a[0].job().id());
  ask.mutable_publish_request()->set_token(a[0].token());
  ask.mutable_publish_request()->set_attempt_key(a[0].attempt_key());
  Effects granted;
  farm_.OnMessage("p1", ask, now_, &granted);
  ASSERT_TRUE(granted.messages.at(0).message.has_publish_grant());

  now_ += milliseconds(100);
  Effects fx;
  ASSERT_TRUE(farm_.Cancel("a", now_, &fx).ok());
  int cancels = 0;
  for (const auto& m : fx.messages) {
    if (m.message.has_cancel()) {
      ++cancels;
      EXPECT_EQ(m.message.cancel().job_id(), a[1].job().id()) << "only the one still encoding";
    }
  }
  EXPECT_EQ(cancels, 1);
  EXPECT_EQ(StateOf(a[0].job().id()), JobState::kRunning);
  EXPECT_EQ(StateOf(a[1].job().id()), JobState::kCancelled);
  EXPECT_TRUE(fx.finished_deliveries.empty()) << "not finished while a file may be renamed";

  // Its result arrives: recorded, listed, and then the delivery finishes.
  Effects done = Result("p1", a[0].job().id(), a[0].token(), true);
  EXPECT_EQ(StateOf(a[0].job().id()), JobState::kSucceeded);
  ASSERT_EQ(done.finished_deliveries.size(), 1u);
  DeliveryCounts c = farm_.Counts(*farm_.FindDelivery("a"));
  EXPECT_EQ(c.delivered, 1);
  EXPECT_EQ(c.cancelled, 1);
}

TEST_F(FarmStateTest, AnAttemptLeftToPublishByACancelIsNotRunAgainWhenItFails) {
  Submit("a", 1);
  Hello("p1", "w1", 1);
  auto a = Assigns(Tick());
  ASSERT_EQ(a.size(), 1u);
  pb::WorkerMessage ask;
  ask.mutable_publish_request()->set_job_id("a.j0");
  ask.mutable_publish_request()->set_token(a[0].token());
  ask.mutable_publish_request()->set_attempt_key(a[0].attempt_key());
  Effects granted;
  farm_.OnMessage("p1", ask, now_, &granted);
  Effects fx;
  ASSERT_TRUE(farm_.Cancel("a", now_, &fx).ok());
  EXPECT_EQ(StateOf("a.j0"), JobState::kRunning);
  // The rename failed before anything reached its final name: retryable,
  // but the delivery is cancelled.
  Effects done = Result("p1", "a.j0", a[0].token(), false, true, "cannot publish d0: EIO");
  EXPECT_EQ(StateOf("a.j0"), JobState::kCancelled);
  EXPECT_EQ(done.finished_deliveries.size(), 1u);
  EXPECT_TRUE(Assigns(Tick()).empty());

  // A cancel after the grant's window has passed cancels as before.
  Submit("b", 1);
  auto b = Assigns(Tick());
  ASSERT_EQ(b.size(), 1u);
  ask.mutable_publish_request()->set_job_id("b.j0");
  ask.mutable_publish_request()->set_token(b[0].token());
  ask.mutable_publish_request()->set_attempt_key(b[0].attempt_key());
  farm_.OnMessage("p1", ask, now_, &granted);
  now_ += milliseconds(3100);  // past the lease the grant renewed (1 s x 3)
  ASSERT_TRUE(farm_.Cancel("b", now_, &fx).ok());
  EXPECT_EQ(StateOf("b.j0"), JobState::kCancelled);
}

TEST_F(FarmStateTest, AGroupWhoseRenamesFailedPartWayKeepsWhatItPublishedAndRerunsOnlyTheRest) {
  SubmitGroup(farm_, now_);
  Hello("p1", "w1", 1);
  Effects fx = Tick();
  ASSERT_EQ(Assigns(fx).size(), 1u);
  // d0 reached its final name, then d1's rename failed: retryable by
  // nature, but rerunning the group would rename over d0.
  pb::WorkerMessage m = ResultOf(Assigns(fx)[0], false, true,
                                 "cannot publish d1: rename: Input/output error (published: d0)");
  auto* out = m.mutable_result()->add_outputs();
  out->set_deliverable("d0");
  out->set_sha256("abc");
  Effects done;
  farm_.OnMessage("p1", m, now_, &done);
  const JobRecord* group = farm_.FindJob("g.j0");
  EXPECT_EQ(group->state, JobState::kSucceeded);
  ASSERT_EQ(group->job.outputs_size(), 1);
  EXPECT_EQ(group->job.outputs(0).deliverable(), "d0");
  EXPECT_EQ(group->result.outputs(0).sha256(), "abc") << "what it published is recorded";
  EXPECT_EQ(farm_.FindJob("g.j0m0"), nullptr);
  EXPECT_EQ(StateOf("g.j0m1"), JobState::kQueued);
  EXPECT_EQ(StateOf("g.j0m2"), JobState::kQueued);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// A delivery whose one deliverable is published from the output cache: a
// reuse job whose fallback (an encode waiting on the source's analysis,
// already done) makes it instead should the entry fail.
void SubmitReuse(FarmState& farm, SteadyTime now) {
  DeliveryRecord d;
  d.id = "v";
  d.name = "v";
  d.seq = 1;
  JobRecord analyse;
  analyse.job.set_id("v.analyse");
  analyse.job.set_kind("analyse");
  analyse.delivery_id = "v";
  analyse.state = JobState::kSucceeded;
  JobRecord reuse;
  reuse.job.set_id("v.r0");
  reuse.job.set_kind("reuse");
  reuse.job.add_outputs()->set_deliverable("web");
  pb::Job* encode = reuse.job.add_fallback();
  encode->set_id("v.r0.j1");
  encode->add_argv("ffmpeg");
  encode->add_depends_on("v.analyse");
  encode->add_outputs()->set_deliverable("web");
  encode->mutable_needs()->add_encoders("libx264");
  reuse.delivery_id = "v";
  reuse.seq = 1000;
  Effects fx;
  farm.AddDelivery(d, {analyse, reuse}, now, &fx);
}

TEST_F(FarmStateTest, AReuseWhoseEntryFailsIsMadeByItsFallbackNotFailed) {
  SubmitReuse(farm_, now_);
  Hello("p1", "w1", 1);
  Effects hello = Tick();
  ASSERT_EQ(Assigns(hello).size(), 1u);
  EXPECT_EQ(Assigns(hello)[0].job().kind(), "reuse");
  EXPECT_EQ(Assigns(hello)[0].job().fallback_size(), 1) << "the worker gets the whole job";
  Effects fx;
  farm_.OnMessage("p1",
                  ResultOf(Assigns(hello)[0], false, false, "not reused: cache entry is corrupt"),
                  now_, &fx);
  // The reuse ends without an output; its fallback is queued and assigned.
  const JobRecord* reuse = farm_.FindJob("v.r0");
  EXPECT_EQ(reuse->state, JobState::kSucceeded);
  ASSERT_NE(farm_.FindJob("v.r0.j1"), nullptr);
  EXPECT_TRUE(fx.rewritten_jobs.count("v.r0.j1"));
  EXPECT_TRUE(fx.rewritten_jobs.count("v.r0"));
  auto assigned = Assigns(Tick());
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].job().id(), "v.r0.j1");
  DeliveryCounts c = farm_.Counts(*farm_.FindDelivery("v"));
  EXPECT_EQ(c.total, 1) << "one deliverable, counted once";
  EXPECT_EQ(c.running, 1);
  // The failed check is no mark against the host.
  EXPECT_EQ(farm_.workers().at("w1").failure_streak, 0);
  farm_.OnMessage("p1", ResultOf(assigned[0], true), now_, &fx);
  c = farm_.Counts(*farm_.FindDelivery("v"));
  EXPECT_EQ(c.delivered, 1);
  EXPECT_EQ(c.state, "delivered");
}

TEST_F(FarmStateTest, ACancelledDeliveryDoesNotFallBack) {
  SubmitReuse(farm_, now_);
  Hello("p1", "w1", 1);
  Effects hello = Tick();
  ASSERT_EQ(Assigns(hello).size(), 1u);
  Effects fx;
  ASSERT_TRUE(farm_.Cancel("v", now_, &fx).ok());
  farm_.OnMessage("p1", ResultOf(Assigns(hello)[0], false, false, "cancelled"), now_, &fx);
  EXPECT_EQ(farm_.FindJob("v.r0.j1"), nullptr);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("v")).state, "cancelled");
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST_F(FarmStateTest, ARetryRunsAgainOnlyWhatFailedFromAttemptOne) {
  Submit("a", 2);
  Hello("p1", "w1", 2);
  auto assigned = Assigns(Tick());
  ASSERT_EQ(assigned.size(), 2u);
  Effects fx;
  farm_.OnMessage("p1", ResultOf(assigned[0], true), now_, &fx);
  farm_.OnMessage("p1", ResultOf(assigned[1], false, false, "bad"), now_, &fx);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "failed");
  EXPECT_TRUE(farm_.FindDelivery("a")->finished);

  EXPECT_EQ(farm_.Retry("a", "d0", now_, &fx).code(), Status::Code::kFailedPrecondition)
      << "d0 was delivered";
  EXPECT_EQ(farm_.Retry("a", "nope", now_, &fx).code(), Status::Code::kNotFound);
  EXPECT_EQ(farm_.Retry("b", "", now_, &fx).code(), Status::Code::kNotFound);
  Effects retried;
  ASSERT_TRUE(farm_.Retry("a", "", now_, &retried).ok());
  EXPECT_FALSE(farm_.FindDelivery("a")->finished);
  EXPECT_TRUE(retried.dirty_deliveries.count("a"));
  EXPECT_EQ(StateOf("a.j0"), JobState::kSucceeded) << "what was delivered stays";
  EXPECT_EQ(StateOf("a.j1"), JobState::kQueued);
  EXPECT_EQ(farm_.FindJob("a.j1")->attempts, 0);
  EXPECT_TRUE(farm_.FindJob("a.j1")->error.empty());
  auto again = Assigns(Tick());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].job().id(), "a.j1");
  EXPECT_EQ(again[0].attempt(), 1);
  Effects done;
  farm_.OnMessage("p1", ResultOf(again[0], true), now_, &done);
  EXPECT_EQ(farm_.Counts(*farm_.FindDelivery("a")).state, "delivered");
  EXPECT_EQ(done.finished_deliveries, std::vector<std::string>{"a"}) << "its manifest again";
}

TEST_F(FarmStateTest, OneDeliverableIsCancelledTheOthersRun) {
  Submit("a", 3);
  Effects fx;
  ASSERT_TRUE(farm_.CancelDeliverable("a", "d1", now_, &fx).ok());
  EXPECT_EQ(StateOf("a.j1"), JobState::kCancelled);
  EXPECT_EQ(farm_.CancelDeliverable("a", "zz", now_, &fx).code(), Status::Code::kNotFound);
  Hello("p1", "w1", 4);
  auto assigned = Assigns(Tick());
  ASSERT_EQ(assigned.size(), 2u);
  for (const auto& a : assigned) farm_.OnMessage("p1", ResultOf(a, true), now_, &fx);
  DeliveryCounts c = farm_.Counts(*farm_.FindDelivery("a"));
  EXPECT_EQ(c.delivered, 2);
  EXPECT_EQ(c.cancelled, 1);
  EXPECT_TRUE(farm_.FindDelivery("a")->finished);
}

}  // namespace
}  // namespace reelfarm
