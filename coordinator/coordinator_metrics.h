// The coordinator's Prometheus series (docs/monitoring.md lists them), fed
// from FarmState's events (counters, histograms) and from snapshots of
// FarmState (gauges), and the log line of each event.
#ifndef REELFARM_COORDINATOR_COORDINATOR_METRICS_H_
#define REELFARM_COORDINATOR_COORDINATOR_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/output_cache.h"
#include "coordinator/farm_state.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// A snapshot of what the gauges show. Pure function of the farm and `now`.
struct FarmGauges {
  int deliveries_active = 0;  // submitted, not finished
  int manifests_failing = 0;  // finished, their manifest's last write failed
  int jobs_waiting = 0;       // on dependencies
  int jobs_queued = 0;
  // Of the queued jobs, those a GPU slot could take (a GPU variant or GPU
  // only) and those only a GPU slot can take (docs/gpu.md): what GPU
  // workers scale on.
  int jobs_queued_gpu = 0;
  int jobs_queued_gpu_only = 0;
  int jobs_running = 0;
  double oldest_queued_age_s = 0;      // 0 when nothing is queued
  std::map<std::string, int> workers;  // state -> count, every state present
  int slots_busy = 0;                  // over workers not lost
  int slots_free = 0;                  // a quarantined worker has none free
};
FarmGauges ComputeFarmGauges(const FarmState& farm, SteadyTime now);

// The worker states reelfarm_workers is labelled with.
inline constexpr const char* kWorkerStates[] = {"ready", "busy", "draining", "quarantined", "lost"};

// Not thread-safe: the coordinator calls it under its lock. The series are
// registered in `registry`, which must outlive this object.
class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // A delivery was accepted; its plan failures count as failed deliverables.
  void OnSubmitted(const pb::Plan& plan);
  void OnStaleResults(int n);
  // A worker message refused as forged (FarmEvent's ForgedMessage::kind).
  void OnForged(const std::string& kind);
  // A write of a delivery's manifest failed (it is retried).
  void OnManifestWriteFailed() { manifest_failures_.Increment(); }
  // After the output cache was kept under its bound (EvictCache).
  void OnCacheEviction(const EvictionResult& r);
  // Redis lost (or replaced) its data since this coordinator started.
  void SetRedisDataLost(bool lost) { redis_data_lost_.Set(lost ? 1 : 0); }
  void SetActive(bool active) { active_.Set(active ? 1 : 0); }
  // Webhooks (coordinator/webhook_outbox.h). Thread-safe, unlike the rest:
  // the sender thread calls them without the coordinator's lock.
  // `result`: ok | failed (retried) | dead (given up).
  void OnWebhookAttempt(const std::string& result) {
    webhook_deliveries_.Add({{"result", result}}).Increment();
  }
  void SetWebhookQueue(double queued, double dead) {
    webhook_queue_.Set(queued);
    webhook_dead_.Set(dead);
  }
  // Counters and histograms for one event; `farm` is read for the job's
  // outputs (one deliverable each).
  void Observe(const FarmEvent& event, const FarmState& farm);
  // Refreshes the gauges when a second has passed since the last refresh
  // (they walk every unfinished job).
  void MaybeUpdateGauges(const FarmState& farm, SteadyTime now);
  void UpdateGauges(const FarmState& farm, SteadyTime now);

 private:
  prometheus::Counter& submitted_;
  prometheus::Counter& stale_;
  prometheus::Family<prometheus::Counter>& forged_;
  prometheus::Gauge& active_;
  prometheus::Gauge& redis_data_lost_;
  prometheus::Counter& manifest_failures_;
  prometheus::Gauge& manifests_failing_;
  prometheus::Family<prometheus::Counter>& published_;
  prometheus::Family<prometheus::Counter>& cache_lookups_;
  prometheus::Counter& cache_evictions_;
  prometheus::Counter& cache_evicted_bytes_;
  prometheus::Gauge& cache_bytes_;
  prometheus::Gauge& cache_entries_;
  prometheus::Family<prometheus::Counter>& delivery_finished_;
  prometheus::Family<prometheus::Counter>& jobs_completed_;
  prometheus::Family<prometheus::Counter>& deliverables_completed_;
  prometheus::Family<prometheus::Counter>& redispatches_;
  prometheus::Family<prometheus::Counter>& job_failures_;
  prometheus::Counter& quarantines_;
  prometheus::Family<prometheus::Histogram>& job_duration_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Counter>& attempts_by_encoder_;  // {encoder="cpu|gpu"}
  prometheus::Gauge& deliveries_active_;
  prometheus::Gauge& jobs_waiting_;
  prometheus::Gauge& jobs_queued_;
  prometheus::Family<prometheus::Gauge>& jobs_queued_for_;  // {slot="gpu|gpu_only"}
  prometheus::Gauge& jobs_running_;
  prometheus::Gauge& oldest_queued_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Gauge>& slots_;
  prometheus::Family<prometheus::Counter>& webhook_deliveries_;
  prometheus::Gauge& webhook_queue_;
  prometheus::Gauge& webhook_dead_;
  SteadyTime last_gauges_{};
  bool gauges_set_ = false;
};

// Logs one event at a fitting level, with the delivery and job ids as
// structured fields (LogFields).
void LogFarmEvent(const FarmEvent& event);

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_COORDINATOR_METRICS_H_
