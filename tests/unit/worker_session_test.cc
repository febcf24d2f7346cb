// The worker's session state machine, driven by hand-made coordinator
// messages and an injected time; no sockets, no threads, no sleeping.
#include "worker/worker_session.h"

#include <gtest/gtest.h>

namespace reelfarm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class WorkerSessionTest : public ::testing::Test {
 protected:
  WorkerSessionTest() : session_(Options()) {}

  static WorkerSessionOptions Options() {
    WorkerSessionOptions o;
    o.name = "w1";
    o.host = "box";
    o.slots = 2;
    o.cores = 8;
    o.threads_per_slot = 4;
    o.encoders = {"libx264", "aac"};
    o.gpu = true;
    o.gpu_names = {"H200"};
    o.version = "9.9.9";
    o.heartbeat_interval = milliseconds(1000);
    o.liveness = 3;
    o.reconnect_min = milliseconds(250);
    o.reconnect_max = seconds(8);
    o.result_resend = seconds(3);
    return o;
  }

  // Starts the session and has the coordinator welcome it; the start's
  // first heartbeat and resend are done.
  void Connected() {
    session_.Start(now_);
    Message(Welcome());
    session_.Tick(now_);
  }

  static pb::CoordinatorMessage Welcome(int interval_ms = 1000, int liveness = 3) {
    pb::CoordinatorMessage m;
    m.mutable_welcome()->set_coordinator("c");
    m.mutable_welcome()->set_heartbeat_interval_ms(interval_ms);
    m.mutable_welcome()->set_liveness(liveness);
    return m;
  }

  static pb::CoordinatorMessage Assign(const std::string& job, uint64_t token) {
    pb::CoordinatorMessage m;
    m.mutable_assign()->mutable_job()->set_id(job);
    m.mutable_assign()->set_token(token);
    m.mutable_assign()->set_attempt(1);
    m.mutable_assign()->set_attempt_key(KeyOf(job, token));
    return m;
  }

  static pb::CoordinatorMessage Ref(const std::string& job, uint64_t token,
                                    pb::JobRef* (pb::CoordinatorMessage::*field)()) {
    pb::CoordinatorMessage m;
    pb::JobRef* r = (m.*field)();
    r->set_job_id(job);
    r->set_token(token);
    return m;
  }
  static pb::CoordinatorMessage Cancel(const std::string& job, uint64_t token) {
    return Ref(job, token, &pb::CoordinatorMessage::mutable_cancel);
  }
  static pb::CoordinatorMessage Ack(const std::string& job, uint64_t token) {
    return Ref(job, token, &pb::CoordinatorMessage::mutable_result_ack);
  }

  static std::string KeyOf(const std::string& job, uint64_t token) {
    return "key:" + job + "#" + std::to_string(token);
  }

  static pb::JobResult Result(const std::string& job, uint64_t token, bool ok = true) {
    pb::JobResult r;
    r.set_job_id(job);
    r.set_token(token);
    r.set_attempt_key(KeyOf(job, token));
    r.set_ok(ok);
    return r;
  }

  SessionEffects Message(const pb::CoordinatorMessage& m) { return session_.OnMessage(m, now_); }
  SessionEffects Tick() { return session_.Tick(now_); }

  using Has = bool (pb::WorkerMessage::*)() const;
  static std::vector<pb::WorkerMessage> Sent(const SessionEffects& fx, Has has) {
    std::vector<pb::WorkerMessage> out;
    for (const auto& m : fx.send) {
      if ((m.*has)()) out.push_back(m);
    }
    return out;
  }
  static std::vector<pb::WorkerMessage> Heartbeats(const SessionEffects& fx) {
    return Sent(fx, &pb::WorkerMessage::has_heartbeat);
  }
  static std::vector<pb::WorkerMessage> Hellos(const SessionEffects& fx) {
    return Sent(fx, &pb::WorkerMessage::has_hello);
  }
  static std::vector<pb::WorkerMessage> Results(const SessionEffects& fx) {
    return Sent(fx, &pb::WorkerMessage::has_result);
  }

  // "job#token:key" for each ref.
  static std::vector<std::string> Refs(const google::protobuf::RepeatedPtrField<pb::JobRef>& refs) {
    std::vector<std::string> out;
    for (const auto& r : refs) {
      out.push_back(r.job_id() + "#" + std::to_string(r.token()) + ":" + r.attempt_key());
    }
    return out;
  }
  static std::string Listed(const std::string& job, uint64_t token) {
    return job + "#" + std::to_string(token) + ":" + KeyOf(job, token);
  }

  // Ticks every 10 ms, the coordinator silent, until the session asks for a
  // reconnect; returns the backoff it announced first (zero: none).
  Duration SilenceUntilReconnect() {
    Duration announced{};
    SteadyTime announced_at{};
    for (int i = 0; i < 100000; ++i) {
      now_ += milliseconds(10);
      SessionEffects fx = Tick();
      if (fx.reconnect_in > Duration::zero()) {
        EXPECT_EQ(announced, Duration::zero()) << "announced twice";
        EXPECT_FALSE(fx.reconnect);
        announced = fx.reconnect_in;
        announced_at = now_;
      }
      if (fx.reconnect) {
        EXPECT_NE(announced, Duration::zero()) << "reconnected unannounced";
        EXPECT_EQ(now_ - announced_at, announced);
        EXPECT_EQ(Hellos(fx).size(), 1u);
        return announced;
      }
    }
    ADD_FAILURE() << "never reconnected";
    return announced;
  }

  WorkerSession session_;
  SteadyTime now_ = SteadyTime(std::chrono::hours(1));
};

TEST_F(WorkerSessionTest, StartOpensTheConnectionAndSaysHello) {
  SessionEffects fx = session_.Start(now_);
  EXPECT_TRUE(fx.reconnect);
  ASSERT_EQ(fx.send.size(), 1u);
  ASSERT_TRUE(fx.send[0].has_hello());
  const pb::Hello& h = fx.send[0].hello();
  EXPECT_EQ(h.name(), "w1");
  EXPECT_EQ(h.host(), "box");
  EXPECT_EQ(h.slots(), 2);
  EXPECT_EQ(h.cores(), 8);
  EXPECT_EQ(h.threads_per_slot(), 4);
  EXPECT_EQ(std::vector<std::string>(h.encoders().begin(), h.encoders().end()),
            (std::vector<std::string>{"libx264", "aac"}));
  EXPECT_TRUE(h.gpu());
  ASSERT_EQ(h.gpu_names_size(), 1);
  EXPECT_EQ(h.gpu_names(0), "H200");
  EXPECT_EQ(h.version(), "9.9.9");
  EXPECT_EQ(h.running_size(), 0);
  EXPECT_FALSE(session_.welcomed());
}

TEST_F(WorkerSessionTest, NothingHappensBeforeStart) {
  SessionEffects fx = Tick();
  EXPECT_TRUE(fx.send.empty());
  EXPECT_FALSE(fx.reconnect);
}

TEST_F(WorkerSessionTest, HeartbeatsEveryIntervalListingRunningAttemptsWithKeys) {
  session_.Start(now_);
  Message(Welcome());
  SessionEffects fx = Tick();  // the first heartbeat goes at once
  ASSERT_EQ(Heartbeats(fx).size(), 1u);
  EXPECT_EQ(Heartbeats(fx)[0].heartbeat().running_size(), 0);

  fx = Message(Assign("d.j0", 7));
  ASSERT_EQ(fx.start.size(), 1u);
  EXPECT_EQ(fx.start[0].job().id(), "d.j0");
  EXPECT_EQ(fx.start[0].attempt_key(), KeyOf("d.j0", 7));
  Message(Assign("d.j1", 8));

  now_ += milliseconds(999);
  EXPECT_TRUE(Heartbeats(Tick()).empty());
  now_ += milliseconds(1);
  fx = Tick();
  ASSERT_EQ(Heartbeats(fx).size(), 1u);
  EXPECT_EQ(Refs(Heartbeats(fx)[0].heartbeat().running()),
            (std::vector<std::string>{Listed("d.j0", 7), Listed("d.j1", 8)}));
  // Coordinator heartbeats keep it alive; its own go on every interval.
  for (int i = 0; i < 10; ++i) {
    now_ += milliseconds(500);
    pb::CoordinatorMessage hb;
    hb.set_heartbeat(true);
    EXPECT_TRUE(Message(hb).send.empty());
    fx = Tick();
    EXPECT_FALSE(fx.reconnect);
    EXPECT_EQ(Heartbeats(fx).size(), i % 2 == 1 ? 1u : 0u) << i;
  }
}

TEST_F(WorkerSessionTest, SilentCoordinatorReconnectsWithADoublingCappedBackoff) {
  session_.Start(now_);
  // Silent for exactly interval x liveness: not yet.
  now_ += seconds(3);
  EXPECT_EQ(Tick().reconnect_in, Duration::zero());
  EXPECT_EQ(SilenceUntilReconnect(), milliseconds(250));
  EXPECT_EQ(SilenceUntilReconnect(), milliseconds(500));
  EXPECT_EQ(SilenceUntilReconnect(), seconds(1));
  EXPECT_EQ(SilenceUntilReconnect(), seconds(2));
  EXPECT_EQ(SilenceUntilReconnect(), seconds(4));
  EXPECT_EQ(SilenceUntilReconnect(), seconds(8));
  EXPECT_EQ(SilenceUntilReconnect(), seconds(8));
  // A Welcome starts the backoff over.
  Message(Welcome());
  EXPECT_TRUE(session_.welcomed());
  EXPECT_EQ(session_.backoff(), Duration::zero());
  EXPECT_EQ(SilenceUntilReconnect(), milliseconds(250));
  EXPECT_FALSE(session_.welcomed());
  EXPECT_EQ(SilenceUntilReconnect(), milliseconds(500));
}

TEST_F(WorkerSessionTest, SilenceCountsFromTheLastFrameEvenOneThatDidNotParse) {
  session_.Start(now_);
  now_ += milliseconds(2500);
  Message(pb::CoordinatorMessage());  // what the glue passes for a bad frame
  now_ += milliseconds(2999);
  EXPECT_EQ(Tick().reconnect_in, Duration::zero());
  now_ += milliseconds(2);
  EXPECT_EQ(Tick().reconnect_in, milliseconds(250));
}

TEST_F(WorkerSessionTest, AFrameDuringTheBackoffCallsTheReconnectOff) {
  session_.Start(now_);
  now_ += milliseconds(3001);
  EXPECT_EQ(Tick().reconnect_in, milliseconds(250));
  now_ += milliseconds(100);
  pb::CoordinatorMessage hb;
  hb.set_heartbeat(true);
  Message(hb);
  now_ += milliseconds(200);
  EXPECT_FALSE(Tick().reconnect);
}

TEST_F(WorkerSessionTest, WelcomeAdoptsHeartbeatIntervalAndLiveness) {
  session_.Start(now_);
  SessionEffects fx = Message(Welcome(400, 5));
  EXPECT_TRUE(fx.welcomed);
  EXPECT_EQ(session_.heartbeat_interval(), milliseconds(400));
  EXPECT_EQ(session_.liveness(), 5);
  Tick();
  now_ += milliseconds(399);
  EXPECT_TRUE(Heartbeats(Tick()).empty());
  now_ += milliseconds(1);
  EXPECT_EQ(Heartbeats(Tick()).size(), 1u);
  // Silent for 400 ms x 5.
  now_ += milliseconds(1600);
  EXPECT_EQ(Tick().reconnect_in, Duration::zero());
  now_ += milliseconds(1);
  EXPECT_EQ(Tick().reconnect_in, milliseconds(250));

  // Nonsense is not adopted.
  Message(Welcome(0, 1));
  EXPECT_EQ(session_.heartbeat_interval(), milliseconds(400));
  EXPECT_EQ(session_.liveness(), 5);
}

TEST_F(WorkerSessionTest, ResultIsSentAndResentEveryResultResendUntilAcknowledged) {
  Connected();
  Message(Assign("d.j0", 7));
  now_ += milliseconds(100);
  SessionEffects fx = session_.OnAttemptFinished(Result("d.j0", 7));
  ASSERT_EQ(Results(fx).size(), 1u);
  EXPECT_EQ(Results(fx)[0].result().attempt_key(), KeyOf("d.j0", 7));
  EXPECT_EQ(session_.unacked_results(), 1u);

  // The resend clock started with the session's first tick.
  now_ += milliseconds(2899);
  EXPECT_TRUE(Results(Tick()).empty());
  now_ += milliseconds(1);
  ASSERT_EQ(Results(Tick()).size(), 1u);
  now_ += milliseconds(2999);
  EXPECT_TRUE(Results(Tick()).empty());
  now_ += milliseconds(1);
  ASSERT_EQ(Results(Tick()).size(), 1u);

  // An ack for another attempt of the job changes nothing.
  Message(Ack("d.j0", 6));
  EXPECT_EQ(session_.unacked_results(), 1u);
  Message(Ack("d.j0", 7));
  EXPECT_EQ(session_.unacked_results(), 0u);
  now_ += seconds(3);
  EXPECT_TRUE(Results(Tick()).empty());
}

TEST_F(WorkerSessionTest, UnacknowledgedResultsAreListedInHelloAndHeartbeats) {
  Connected();
  Message(Assign("d.j0", 7));
  Message(Assign("d.j1", 8));
  session_.OnAttemptFinished(Result("d.j0", 7, false));
  now_ += seconds(1);
  SessionEffects fx = Tick();
  ASSERT_EQ(Heartbeats(fx).size(), 1u);
  // Running attempts first, then the finished ones not acknowledged.
  EXPECT_EQ(Refs(Heartbeats(fx)[0].heartbeat().running()),
            (std::vector<std::string>{Listed("d.j1", 8), Listed("d.j0", 7)}));

  pb::CoordinatorMessage again;
  again.set_reconnect(true);
  fx = Message(again);
  ASSERT_EQ(Hellos(fx).size(), 1u);
  EXPECT_FALSE(fx.reconnect);
  EXPECT_EQ(Refs(Hellos(fx)[0].hello().running()),
            (std::vector<std::string>{Listed("d.j1", 8), Listed("d.j0", 7)}));

  Message(Ack("d.j0", 7));
  now_ += seconds(1);
  fx = Tick();
  EXPECT_EQ(Refs(Heartbeats(fx)[0].heartbeat().running()),
            (std::vector<std::string>{Listed("d.j1", 8)}));
}

TEST_F(WorkerSessionTest, WelcomeResendsUnacknowledgedResults) {
  Connected();
  Message(Assign("d.j0", 7));
  Message(Assign("d.j1", 8));
  session_.OnAttemptFinished(Result("d.j0", 7));
  session_.OnAttemptFinished(Result("d.j1", 8, false));
  Message(Ack("d.j1", 8));
  // The coordinator restarts: silence, a reconnect, a new Welcome.
  SilenceUntilReconnect();
  SessionEffects fx = Message(Welcome());
  ASSERT_EQ(Results(fx).size(), 1u);
  EXPECT_EQ(Results(fx)[0].result().job_id(), "d.j0");
  EXPECT_EQ(Results(fx)[0].result().token(), 7u);
  EXPECT_TRUE(Results(fx)[0].result().ok());
}

TEST_F(WorkerSessionTest, CancelForTheCurrentTokenCancelsForAnOldOneNothing) {
  Connected();
  Message(Assign("d.j0", 7));
  SessionEffects fx = Message(Cancel("d.j0", 6));
  EXPECT_TRUE(fx.cancel.empty());
  fx = Message(Cancel("d.j9", 7));
  EXPECT_TRUE(fx.cancel.empty());

  fx = Message(Cancel("d.j0", 7));
  ASSERT_EQ(fx.cancel.size(), 1u);
  EXPECT_EQ(fx.cancel[0], (AttemptId{"d.j0", 7}));
  // Once: a repeated cancel asks for nothing more.
  EXPECT_TRUE(Message(Cancel("d.j0", 7)).cancel.empty());
  // No longer listed, and its result is not reported.
  now_ += seconds(1);
  EXPECT_EQ(Heartbeats(Tick())[0].heartbeat().running_size(), 0);
  fx = session_.OnAttemptFinished(Result("d.j0", 7, false));
  EXPECT_TRUE(fx.send.empty());
  EXPECT_EQ(session_.unacked_results(), 0u);
  now_ += seconds(3);
  EXPECT_TRUE(Results(Tick()).empty());
}

TEST_F(WorkerSessionTest, WelcomeCancelCancelsTheListedAttempts) {
  session_.Start(now_);
  Message(Assign("d.j0", 7));
  Message(Assign("d.j1", 8));
  Message(Assign("d.j2", 9));
  pb::CoordinatorMessage w = Welcome();
  const std::vector<std::pair<std::string, uint64_t>> listed = {{"d.j0", 7}, {"d.j2", 3}};
  for (const auto& [job, token] : listed) {
    auto* r = w.mutable_welcome()->add_cancel();
    r->set_job_id(job);
    r->set_token(token);
  }
  SessionEffects fx = Message(w);
  // d.j2's listed token is not the one running: it runs on.
  ASSERT_EQ(fx.cancel.size(), 1u);
  EXPECT_EQ(fx.cancel[0], (AttemptId{"d.j0", 7}));
  fx = Tick();
  EXPECT_EQ(Refs(Heartbeats(fx)[0].heartbeat().running()),
            (std::vector<std::string>{Listed("d.j1", 8), Listed("d.j2", 9)}));
}

TEST_F(WorkerSessionTest, PublishGrantAnswersTheWaitingRequest) {
  Connected();
  Message(Assign("d.j0", 7));
  SessionEffects fx = session_.OnPublishRequested("d.j0", 7, KeyOf("d.j0", 7));
  ASSERT_EQ(fx.send.size(), 1u);
  ASSERT_TRUE(fx.send[0].has_publish_request());
  EXPECT_EQ(fx.send[0].publish_request().job_id(), "d.j0");
  EXPECT_EQ(fx.send[0].publish_request().token(), 7u);
  EXPECT_EQ(fx.send[0].publish_request().attempt_key(), KeyOf("d.j0", 7));
  EXPECT_TRUE(fx.publish_answers.empty());

  pb::CoordinatorMessage other;
  other.mutable_publish_grant()->set_job_id("d.j0");
  other.mutable_publish_grant()->set_token(6);
  other.mutable_publish_grant()->set_valid_ms(5000);
  EXPECT_TRUE(Message(other).publish_answers.empty());

  pb::CoordinatorMessage grant;
  grant.mutable_publish_grant()->set_job_id("d.j0");
  grant.mutable_publish_grant()->set_token(7);
  grant.mutable_publish_grant()->set_valid_ms(5000);
  fx = Message(grant);
  ASSERT_EQ(fx.publish_answers.size(), 1u);
  EXPECT_EQ(fx.publish_answers[0].job_id, "d.j0");
  EXPECT_EQ(fx.publish_answers[0].token, 7u);
  EXPECT_TRUE(fx.publish_answers[0].granted);
  EXPECT_EQ(fx.publish_answers[0].valid_ms, 5000);
  // Answered once.
  EXPECT_TRUE(Message(grant).publish_answers.empty());
}

TEST_F(WorkerSessionTest, CancelRefusesAWaitingPublishRequest) {
  Connected();
  Message(Assign("d.j0", 7));
  session_.OnPublishRequested("d.j0", 7, KeyOf("d.j0", 7));
  SessionEffects fx = Message(Cancel("d.j0", 7));
  ASSERT_EQ(fx.publish_answers.size(), 1u);
  EXPECT_FALSE(fx.publish_answers[0].granted);
  EXPECT_EQ(fx.cancel.size(), 1u);
  // A cancelled attempt asking again is refused at once, and nothing is sent.
  fx = session_.OnPublishRequested("d.j0", 7, KeyOf("d.j0", 7));
  EXPECT_TRUE(fx.send.empty());
  ASSERT_EQ(fx.publish_answers.size(), 1u);
  EXPECT_FALSE(fx.publish_answers[0].granted);
}

TEST_F(WorkerSessionTest, HelloRefusedIsReportedOncePerStreakAndAReconnectBringsTheHello) {
  session_.Start(now_);
  pb::CoordinatorMessage refused;
  refused.set_hello_refused("name w1 is held by another connection");
  SessionEffects fx = Message(refused);
  EXPECT_EQ(fx.hello_refused, "name w1 is held by another connection");
  EXPECT_TRUE(fx.send.empty());
  EXPECT_FALSE(fx.reconnect);
  EXPECT_FALSE(session_.welcomed());
  EXPECT_TRUE(Message(refused).hello_refused.empty());

  // Heartbeats go on; the coordinator answers them with `reconnect`, which
  // brings the Hello again on the same connection.
  fx = Tick();
  EXPECT_EQ(Heartbeats(fx).size(), 1u);
  pb::CoordinatorMessage again;
  again.set_reconnect(true);
  fx = Message(again);
  EXPECT_FALSE(fx.reconnect);
  EXPECT_EQ(Hellos(fx).size(), 1u);
  EXPECT_TRUE(Message(refused).hello_refused.empty());
  // The refusals keep the connection alive: no reconnect.
  for (int i = 0; i < 20; ++i) {
    now_ += milliseconds(500);
    Message(refused);
    EXPECT_FALSE(Tick().reconnect);
  }

  // Taken at last; a later refusal streak is reported again.
  Message(Welcome());
  EXPECT_TRUE(session_.welcomed());
  EXPECT_EQ(Message(refused).hello_refused, "name w1 is held by another connection");
}

TEST_F(WorkerSessionTest, ANewerAssignSupersedesTheOldAttemptAndADuplicateIsIgnored) {
  Connected();
  Message(Assign("d.j0", 7));
  EXPECT_TRUE(Message(Assign("d.j0", 7)).start.empty());

  SessionEffects fx = Message(Assign("d.j0", 9));
  ASSERT_EQ(fx.cancel.size(), 1u);
  EXPECT_EQ(fx.cancel[0], (AttemptId{"d.j0", 7}));
  ASSERT_EQ(fx.start.size(), 1u);
  EXPECT_EQ(fx.start[0].token(), 9u);
  now_ += seconds(1);
  EXPECT_EQ(Refs(Heartbeats(Tick())[0].heartbeat().running()),
            (std::vector<std::string>{Listed("d.j0", 9)}));
  // The superseded attempt's result is still reported (the coordinator
  // acknowledges it as stale), as before.
  fx = session_.OnAttemptFinished(Result("d.j0", 7, false));
  EXPECT_EQ(Results(fx).size(), 1u);
  // A cancel for the old token does not touch the new attempt.
  EXPECT_TRUE(Message(Cancel("d.j0", 7)).cancel.empty());
}

TEST_F(WorkerSessionTest, ProgressIsPassedOn) {
  Connected();
  Message(Assign("d.j0", 7));
  pb::Progress p;
  p.set_job_id("d.j0");
  p.set_token(7);
  p.set_fraction(0.5);
  p.set_attempt_key(KeyOf("d.j0", 7));
  SessionEffects fx = session_.OnProgress(p);
  ASSERT_EQ(fx.send.size(), 1u);
  ASSERT_TRUE(fx.send[0].has_progress());
  EXPECT_EQ(fx.send[0].progress().fraction(), 0.5);
  EXPECT_EQ(fx.send[0].progress().attempt_key(), KeyOf("d.j0", 7));
}

TEST_F(WorkerSessionTest, StopCancelsEverythingAndSaysGoodbye) {
  Connected();
  Message(Assign("d.j0", 7));
  Message(Assign("d.j1", 8));
  session_.OnPublishRequested("d.j1", 8, KeyOf("d.j1", 8));
  SessionEffects fx = session_.Stop();
  EXPECT_EQ(fx.cancel.size(), 2u);
  ASSERT_EQ(fx.publish_answers.size(), 1u);
  EXPECT_FALSE(fx.publish_answers[0].granted);
  ASSERT_EQ(fx.send.size(), 1u);
  EXPECT_TRUE(fx.send[0].goodbye());
  // Nothing more is reported or sent.
  EXPECT_TRUE(session_.OnAttemptFinished(Result("d.j0", 7)).send.empty());
  now_ += seconds(10);
  EXPECT_TRUE(Tick().send.empty());
}

}  // namespace
TEST_F(WorkerSessionTest, DrainingSaysSoAtOnceAndInEveryHelloAndHeartbeatUntilIdle) {
  Connected();
  Message(Assign("d.j0", 7));
  EXPECT_FALSE(session_.Idle());
  SessionEffects fx = session_.Drain(now_);
  ASSERT_EQ(Heartbeats(fx).size(), 1u) << "the coordinator learns it at once";
  EXPECT_TRUE(Heartbeats(fx)[0].heartbeat().draining());
  EXPECT_EQ(Heartbeats(fx)[0].heartbeat().running_size(), 1) << "what it runs goes on";
  EXPECT_TRUE(fx.cancel.empty());
  EXPECT_TRUE(session_.Drain(now_).send.empty()) << "once";
  now_ += seconds(1);
  ASSERT_EQ(Heartbeats(Tick()).size(), 1u);
  // After a coordinator restart, the Hello says it too.
  now_ += seconds(10);
  fx = Tick();
  now_ += seconds(10);
  fx = Tick();
  ASSERT_EQ(Hellos(fx).size(), 1u);
  EXPECT_TRUE(Hellos(fx)[0].hello().draining());
  Message(Welcome());
  // Idle once the attempt has finished and its result is acknowledged.
  session_.OnAttemptFinished(Result("d.j0", 7));
  EXPECT_FALSE(session_.Idle()) << "its result is not acknowledged yet";
  Message(Ack("d.j0", 7));
  EXPECT_TRUE(session_.Idle());
}

TEST_F(WorkerSessionTest, TheCoordinatorsDrainMessageDrainsLikeASignal) {
  Connected();
  pb::CoordinatorMessage drain;
  drain.set_drain(true);
  SessionEffects fx = Message(drain);
  EXPECT_TRUE(session_.draining());
  ASSERT_EQ(Heartbeats(fx).size(), 1u);
  EXPECT_TRUE(Heartbeats(fx)[0].heartbeat().draining());
}

}  // namespace reelfarm
