// The ETA: a FarmState driven by hand-made messages and an injected time,
// then estimated; no sockets, no sleeping.
#include "coordinator/eta.h"

#include <gtest/gtest.h>

#include "coordinator/manifest.h"

namespace reelfarm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class EtaTest : public ::testing::Test {
 protected:
  EtaTest() : farm_(FarmOptions{}) {}

  // A job of delivery `d` making `deliverable` with `preset` at `cost`.
  static JobRecord Job(const std::string& d, int i, const std::string& preset, double cost,
                       int priority = 50, uint64_t seq = 0) {
    JobRecord j;
    j.job.set_id(d + ".j" + std::to_string(i));
    j.job.set_kind("encode");
    j.job.set_cost(cost);
    auto* out = j.job.add_outputs();
    out->set_deliverable("d" + std::to_string(i));
    out->set_preset(preset);
    j.delivery_id = d;
    j.priority = priority;
    j.seq = seq * 1000 + i;
    return j;
  }

  void Add(const std::string& id, std::vector<JobRecord> jobs, int priority = 50,
           uint64_t seq = 1) {
    DeliveryRecord d;
    d.id = id;
    d.name = id;
    d.priority = priority;
    d.seq = seq;
    Effects fx;
    farm_.AddDelivery(d, std::move(jobs), now_, &fx);
  }

  void Hello(const std::string& peer, const std::string& name, int slots) {
    pb::WorkerMessage m;
    auto* h = m.mutable_hello();
    h->set_name(name);
    h->set_slots(slots);
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx);
  }

  // Assigns what can run now; the assignments.
  std::vector<pb::Assign> Tick() {
    Effects fx;
    farm_.Tick(now_, &fx);
    std::vector<pb::Assign> out;
    for (const auto& m : fx.messages) {
      if (!m.message.has_assign()) continue;
      out.push_back(m.Whole().assign());
      peer_of_[m.Whole().assign().job().id()] = m.peer;
    }
    return out;
  }

  void Progress(const pb::Assign& a, double fraction) {
    const std::string& peer = peer_of_.at(a.job().id());
    pb::WorkerMessage m;
    auto* p = m.mutable_progress();
    p->set_job_id(a.job().id());
    p->set_token(a.token());
    p->set_attempt_key(a.attempt_key());
    p->set_fraction(fraction);
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx);
  }

  void Succeed(const pb::Assign& a, double encode_seconds) {
    const std::string& peer = peer_of_.at(a.job().id());
    pb::WorkerMessage m;
    auto* r = m.mutable_result();
    r->set_job_id(a.job().id());
    r->set_token(a.token());
    r->set_attempt_key(a.attempt_key());
    r->set_ok(true);
    r->set_encode_seconds(encode_seconds);
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx);
  }

  // Runs `job` of a one-job delivery to success in `encode_seconds`: the
  // farm's measurement of its preset.
  void Measure(const std::string& delivery, const std::string& preset, double cost,
               double encode_seconds, uint64_t seq) {
    Add(delivery, {Job(delivery, 0, preset, cost, 50, seq)}, 50, seq);
    auto a = Tick();
    ASSERT_EQ(a.size(), 1u);
    now_ += milliseconds(static_cast<int>(encode_seconds * 1000));
    Succeed(a[0], encode_seconds);
  }

  FarmState farm_;
  std::map<std::string, std::string> peer_of_;  // job id -> the peer it was assigned to
  SteadyTime now_ = SteadyTime(std::chrono::hours(1));
};

TEST_F(EtaTest, NothingIsGuessedBeforeTheFarmMeasuredAnything) {
  Hello("p1", "w1", 1);
  Add("a", {Job("a", 0, "web-h264", 10), Job("a", 1, "web-h264", 10)});
  Tick();
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_TRUE(eta.job_seconds.empty());
  EXPECT_TRUE(eta.delivery_seconds.empty());
}

TEST_F(EtaTest, ARunningJobEndsAtThePaceOfItsOwnProgress) {
  Hello("p1", "w1", 1);
  Add("a", {Job("a", 0, "web-h264", 10)});
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  now_ += seconds(10);
  Progress(a[0], 0.25);  // 10 s for a quarter: 30 s to go
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.job_seconds.at("a.j0"), 30.0, 1e-6);
  EXPECT_NEAR(eta.delivery_seconds.at("a"), 30.0, 1e-6);
}

TEST_F(EtaTest, QueuedJobsAreLaidOutOnTheSlotsAtTheMeasuredSpeed) {
  Hello("p1", "w1", 1);
  // This farm encodes web-h264 at 2 s per unit of cost.
  Measure("m", "web-h264", 5, 10, 1);
  // Two slots now; three jobs of cost 5 (10 s each) behind one running.
  Hello("p2", "w2", 1);
  Add("a",
      {Job("a", 0, "web-h264", 5, 50, 2), Job("a", 1, "web-h264", 5, 50, 2),
       Job("a", 2, "web-h264", 5, 50, 2)},
      50, 2);
  auto started = Tick();
  ASSERT_EQ(started.size(), 2u);
  now_ += seconds(4);
  for (const auto& s : started) Progress(s, 0.5);
  Eta eta = EstimateEta(farm_, now_);
  // Both running ones: 4 s for half, 4 s to go; the third starts then.
  EXPECT_NEAR(eta.job_seconds.at("a.j0"), 4.0, 1e-6);
  EXPECT_NEAR(eta.job_seconds.at("a.j1"), 4.0, 1e-6);
  EXPECT_NEAR(eta.job_seconds.at("a.j2"), 14.0, 1e-6);
  EXPECT_NEAR(eta.delivery_seconds.at("a"), 14.0, 1e-6);
}

TEST_F(EtaTest, AHigherPriorityDeliveryGoesFirstAndPushesTheOtherBack) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 1, 10, 1);  // 10 s per unit
  Add("low", {Job("low", 0, "web-h264", 1, 10, 2)}, 10, 2);
  Add("high", {Job("high", 0, "web-h264", 2, 90, 3)}, 90, 3);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.delivery_seconds.at("high"), 20.0, 1e-6);
  EXPECT_NEAR(eta.delivery_seconds.at("low"), 30.0, 1e-6);
}

TEST_F(EtaTest, AJobStartsWhenWhatItWaitsForEndsAndFreeSlotsServeOthersMeanwhile) {
  Hello("p1", "w1", 2);
  Measure("m", "web-h264", 1, 10, 1);
  // a.j1 waits for a.j0 (10 s); b.j0 (10 s) comes later in the queue but
  // takes the second slot at once.
  JobRecord first = Job("a", 0, "web-h264", 1, 50, 2);
  JobRecord second = Job("a", 1, "web-h264", 1, 50, 2);
  second.job.add_depends_on("a.j0");
  second.state = JobState::kWaiting;
  Add("a", {first, second}, 50, 2);
  Add("b", {Job("b", 0, "web-h264", 1, 50, 3)}, 50, 3);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.job_seconds.at("a.j0"), 10.0, 1e-6);
  EXPECT_NEAR(eta.job_seconds.at("a.j1"), 20.0, 1e-6);
  EXPECT_NEAR(eta.delivery_seconds.at("b"), 10.0, 1e-6);
}

TEST_F(EtaTest, NoWorkerToRunItMeansNoEstimate) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 1, 10, 1);
  // The only worker drains: queued work has nowhere to go.
  pb::WorkerMessage m;
  m.mutable_heartbeat()->set_draining(true);
  Effects fx;
  farm_.OnMessage("p1", m, now_, &fx);
  Add("a", {Job("a", 0, "web-h264", 1, 50, 2)}, 50, 2);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_FALSE(eta.delivery_seconds.count("a"));
}

TEST_F(EtaTest, AnotherPresetUsesTheFarmsPacePerUnitOfCost) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 2, 10, 1);  // 5 s per unit
  Add("a", {Job("a", 0, "master-prores", 3, 50, 2)}, 50, 2);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.delivery_seconds.at("a"), 15.0, 1e-6);
}

TEST_F(EtaTest, AnUnmeasuredCheapKindTakesNoLessThanTheQuickestJobSeen) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 10, 20, 1);  // 2 s per unit; the quickest job: 20 s
  JobRecord join = Job("a", 0, "web-h264", 0.01, 50, 2);
  join.job.set_kind("assemble");  // a stream copy: cost 0.01, no measurement of its kind
  Add("a", {join}, 50, 2);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.delivery_seconds.at("a"), 20.0, 1e-6);
}

TEST_F(EtaTest, TheSourcesAnalysisSetsNoPaceForEncodes) {
  Hello("p1", "w1", 1);
  // The source's analysis (cost 1) took 30 s; nothing was encoded yet.
  JobRecord analyse = Job("m", 0, "", 1, 50, 1);
  analyse.job.set_kind("analyse");
  Add("m", {analyse}, 50, 1);
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  now_ += seconds(30);
  Succeed(a[0], 30);
  Add("a", {Job("a", 0, "web-h264", 2, 50, 2)}, 50, 2);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_FALSE(eta.delivery_seconds.count("a")) << "an analysis is no encoder's pace";
}

TEST_F(EtaTest, ARunningJobSetsItsPresetsPaceBeforeAnyHasEnded) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 1, 1, 1);  // web-h264 at 1 s a unit
  Add("a", {Job("a", 0, "master-prores", 2, 50, 2), Job("a", 1, "master-prores", 2, 50, 2)}, 50, 2);
  auto a = Tick();
  ASSERT_EQ(a.size(), 1u);
  now_ += seconds(5);
  Progress(a[0], 0.25);  // a master at 10 s a unit: 20 s in all, 15 s to go
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_NEAR(eta.job_seconds.at(a[0].job().id()), 15.0, 1e-6);
  // The other master: its preset's own pace, not web-h264's.
  EXPECT_NEAR(eta.delivery_seconds.at("a"), 35.0, 1e-6);
}

TEST_F(EtaTest, TheApiShowsWholeSecondsForUnfinishedWorkOnly) {
  Hello("p1", "w1", 1);
  Measure("m", "web-h264", 1, 2.5, 1);
  Add("a", {Job("a", 0, "web-h264", 1, 50, 2)}, 50, 2);
  Eta eta = EstimateEta(farm_, now_);
  nlohmann::json a = DeliveryDetailJson(farm_, *farm_.FindDelivery("a"), &eta);
  EXPECT_EQ(a["eta_s"], 3);
  ASSERT_EQ(a["items"].size(), 1u);
  EXPECT_EQ(a["items"][0]["eta_s"], 3);
  nlohmann::json m = DeliveryDetailJson(farm_, *farm_.FindDelivery("m"), &eta);
  EXPECT_FALSE(m.contains("eta_s"));
  EXPECT_FALSE(m["items"][0].contains("eta_s"));
}

}  // namespace
}  // namespace reelfarm
