// The coordinator's series, fed from a real FarmState driven by hand-made
// messages and an injected time (no sockets, no sleeping), read back from
// the prometheus-cpp registry.
#include "coordinator/coordinator_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "common/metrics.h"

namespace reelfarm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The value of one sample of `name` whose labels include `labels`; for a
// histogram, `name` may end in _count or _sum. NaN when absent.
double Sample(prometheus::Registry& r, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  for (const auto& fam : r.Collect()) {
    bool count = name == fam.name + "_count";
    bool sum = name == fam.name + "_sum";
    if (fam.name != name && !count && !sum) continue;
    for (const auto& m : fam.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& lp : m.label) found |= lp.name == k && lp.value == v;
        match &= found;
      }
      if (!match) continue;
      switch (fam.type) {
        case prometheus::MetricType::Counter:
          return m.counter.value;
        case prometheus::MetricType::Gauge:
          return m.gauge.value;
        case prometheus::MetricType::Histogram:
          return count ? static_cast<double>(m.histogram.sample_count) : m.histogram.sample_sum;
        default:
          return std::nan("");
      }
    }
  }
  return std::nan("");
}

class CoordinatorMetricsTest : public ::testing::Test {
 protected:
  CoordinatorMetricsTest() : farm_(Options()), metrics_(registry_) {}

  static FarmOptions Options() {
    FarmOptions o;
    o.heartbeat_interval = milliseconds(1000);
    o.liveness = 3;
    o.max_attempts = 2;
    return o;
  }

  // A delivery of one job per preset.
  void Submit(const std::string& id, const std::vector<std::string>& presets) {
    DeliveryRecord d;
    d.id = id;
    d.name = id;
    d.seq = ++seq_;
    std::vector<JobRecord> jobs;
    for (size_t i = 0; i < presets.size(); ++i) {
      JobRecord j;
      j.job.set_id(id + ".j" + std::to_string(i));
      j.job.set_kind("encode");
      j.job.mutable_needs()->add_encoders("libx264");
      auto* out = j.job.add_outputs();
      out->set_deliverable("d" + std::to_string(i));
      out->set_preset(presets[i]);
      j.delivery_id = id;
      j.seq = d.seq * 1000 + i;
      d.job_ids.push_back(j.job.id());
      jobs.push_back(j);
    }
    Run([&](Effects* fx) { farm_.AddDelivery(d, jobs, now_, fx); });
  }

  void Hello(const std::string& peer, const std::string& name, int slots) {
    pb::WorkerMessage m;
    m.mutable_hello()->set_name(name);
    m.mutable_hello()->set_slots(slots);
    m.mutable_hello()->add_encoders("libx264");
    Run([&](Effects* fx) { farm_.OnMessage(peer, m, now_, fx); });
  }

  void Result(const std::string& peer, const std::string& job, bool ok, bool retryable) {
    const JobRecord* j = farm_.FindJob(job);
    ASSERT_NE(j, nullptr);
    pb::WorkerMessage m;
    m.mutable_result()->set_job_id(job);
    m.mutable_result()->set_token(j->token);
    m.mutable_result()->set_attempt_key(j->attempt_key);
    m.mutable_result()->set_ok(ok);
    m.mutable_result()->set_retryable(retryable);
    Run([&](Effects* fx) { farm_.OnMessage(peer, m, now_, fx); });
  }

  void Tick() {
    Run([&](Effects* fx) { farm_.Tick(now_, fx); });
  }

  // Applies what the coordinator's ApplyLocked applies to the metrics.
  template <typename F>
  void Run(F f) {
    Effects fx;
    f(&fx);
    for (const auto& e : fx.events) metrics_.Observe(e, farm_);
    metrics_.OnStaleResults(fx.stale_results);
  }

  FarmState farm_;
  prometheus::Registry registry_;
  CoordinatorMetrics metrics_;
  SteadyTime now_{seconds(1000)};
  uint64_t seq_ = 0;
};

TEST_F(CoordinatorMetricsTest, SeriesExistAtZeroBeforeAnythingHappens) {
  // Rates of a counter see its first increment only when the series existed.
  EXPECT_EQ(Sample(registry_, "reelfarm_deliverables_completed_total",
                   {{"preset", "web-h264"}, {"result", "delivered"}}),
            0);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_completed_total",
                   {{"preset", "master-prores"}, {"result", "failed"}}),
            0);
  EXPECT_EQ(Sample(registry_, "reelfarm_job_redispatches_total", {{"reason", "worker_lost"}}), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_job_duration_seconds_count", {{"preset", "web-h264"}}), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "quarantined"}}), 0);
}

TEST_F(CoordinatorMetricsTest, AssignmentAndSuccessFeedHistogramsAndCounters) {
  Submit("film-1", {"web-h264", "thumbnail-jpg"});
  now_ += seconds(4);
  Hello("p1", "w1", 1);
  Tick();  // one slot: j0 assigned after 4 s in the queue
  EXPECT_EQ(Sample(registry_, "reelfarm_job_queue_wait_seconds_count", {{"preset", "web-h264"}}),
            1);
  EXPECT_DOUBLE_EQ(
      Sample(registry_, "reelfarm_job_queue_wait_seconds_sum", {{"preset", "web-h264"}}), 4.0);

  metrics_.UpdateGauges(farm_, now_);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_running"), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_queued"), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_active"), 1);
  EXPECT_DOUBLE_EQ(Sample(registry_, "reelfarm_queue_oldest_job_age_seconds"), 4.0);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "busy"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "ready"}}), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_farm_slots", {{"state", "busy"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_farm_slots", {{"state", "free"}}), 0);

  now_ += seconds(90);
  Result("p1", "film-1.j0", true, false);
  EXPECT_EQ(Sample(registry_, "reelfarm_job_duration_seconds_count", {{"preset", "web-h264"}}), 1);
  EXPECT_DOUBLE_EQ(Sample(registry_, "reelfarm_job_duration_seconds_sum", {{"preset", "web-h264"}}),
                   90.0);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_completed_total",
                   {{"preset", "web-h264"}, {"result", "succeeded"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliverables_completed_total",
                   {{"preset", "web-h264"}, {"result", "delivered"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_finished_total", {{"result", "delivered"}}), 0);

  Tick();
  now_ += seconds(2);
  Result("p1", "film-1.j1", true, false);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliverables_completed_total",
                   {{"preset", "thumbnail-jpg"}, {"result", "delivered"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_finished_total", {{"result", "delivered"}}), 1);

  metrics_.UpdateGauges(farm_, now_);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_active"), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_queued"), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_queue_oldest_job_age_seconds"), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "ready"}}), 1);
}

TEST_F(CoordinatorMetricsTest, RetriesAndFailuresAreCountedByReason) {
  Submit("film-2", {"web-hevc"});
  Hello("p1", "w1", 1);
  Tick();
  Result("p1", "film-2.j0", false, /*retryable=*/true);
  EXPECT_EQ(Sample(registry_, "reelfarm_job_redispatches_total", {{"reason", "retryable"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_completed_total",
                   {{"preset", "web-hevc"}, {"result", "failed"}}),
            0);
  now_ += seconds(2);  // past the retry backoff (1 s +-25%), within the worker's expiry
  Tick();
  Result("p1", "film-2.j0", false, /*retryable=*/true);  // max_attempts = 2: gives up
  EXPECT_EQ(Sample(registry_, "reelfarm_job_failures_total", {{"reason", "gave_up"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_completed_total",
                   {{"preset", "web-hevc"}, {"result", "failed"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliverables_completed_total",
                   {{"preset", "web-hevc"}, {"result", "failed"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_finished_total", {{"result", "failed"}}), 1);
}

TEST_F(CoordinatorMetricsTest, LostWorkerIsRedispatchedAndCountedAsLost) {
  Submit("film-3", {"web-h264"});
  Hello("p1", "w1", 1);
  Tick();
  now_ += seconds(10);  // > heartbeat x liveness without a word from w1
  Tick();
  EXPECT_EQ(Sample(registry_, "reelfarm_job_redispatches_total", {{"reason", "worker_lost"}}), 1);
  metrics_.UpdateGauges(farm_, now_);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "lost"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_farm_slots", {{"state", "free"}}), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_queued"), 1);
}

TEST_F(CoordinatorMetricsTest, QuarantinedWorkerIsItsOwnStateWithNoFreeSlots) {
  Hello("p1", "w1", 2);
  Hello("p2", "w2", 2);
  Run([&](Effects* fx) { farm_.Quarantine("w2", "three failures", fx); });
  metrics_.UpdateGauges(farm_, now_);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "quarantined"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_workers", {{"state", "ready"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_farm_slots", {{"state", "free"}}), 2);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_quarantines_total"), 1);
}

TEST_F(CoordinatorMetricsTest, CancelAndPlanFailuresCountAsDeliverables) {
  pb::Plan plan;
  auto* f = plan.add_failures();
  f->set_preset("audio-wav");
  metrics_.OnSubmitted(plan);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_submitted_total"), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliverables_completed_total",
                   {{"preset", "audio-wav"}, {"result", "failed"}}),
            1);

  Submit("film-4", {"web-h264", "web-h264"});
  Run([&](Effects* fx) { ASSERT_TRUE(farm_.Cancel("film-4", SteadyTime{}, fx).ok()); });
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_completed_total",
                   {{"preset", "web-h264"}, {"result", "cancelled"}}),
            2);
  EXPECT_EQ(Sample(registry_, "reelfarm_deliveries_finished_total", {{"result", "cancelled"}}), 1);
}

TEST_F(CoordinatorMetricsTest, GaugesRefreshAtMostOnceASecond) {
  metrics_.MaybeUpdateGauges(farm_, now_);
  Submit("film-5", {"web-h264"});
  metrics_.MaybeUpdateGauges(farm_, now_ + milliseconds(500));
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_queued"), 0);  // not yet refreshed
  metrics_.MaybeUpdateGauges(farm_, now_ + milliseconds(1000));
  EXPECT_EQ(Sample(registry_, "reelfarm_jobs_queued"), 1);
}

TEST(MetricsBuckets, TranscodeBucketsSpanSecondsToHoursAndAreSorted) {
  const auto& b = TranscodeSecondsBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_LE(b.front(), 1.0);
  EXPECT_GE(b.back(), 4 * 3600.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_TRUE(std::is_sorted(QueueWaitSecondsBuckets().begin(), QueueWaitSecondsBuckets().end()));
}

}  // namespace
}  // namespace reelfarm
