#include "coordinator/coordinator_metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/daemon_util.h"
#include "common/metrics.h"
#include "common/presets.h"

namespace reelfarm {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

constexpr const char* kJobResults[] = {"succeeded", "failed", "cancelled"};
constexpr const char* kDeliverableResults[] = {"delivered", "failed", "cancelled"};
// FarmEvent::reason of kRetry and kRedispatch.
constexpr const char* kRedispatchReasons[] = {"retryable",        "worker_lost",    "worker_left",
                                              "worker_restarted", "lease_expired",  "split",
                                              "reuse_failed",     "gpu_unavailable"};
// FarmEvent::reason of kFailed.
constexpr const char* kFailureReasons[] = {"not_retryable", "qc_failed", "gave_up", "dependency"};

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

FarmGauges ComputeFarmGauges(const FarmState& farm, SteadyTime now) {
  FarmGauges g;
  for (const char* s : kWorkerStates) g.workers[s] = 0;
  for (const auto& [name, w] : farm.workers()) {
    const int running = w.cpu_running();  // CPU slots; GPU slots come on top
    if (w.lost) {
      ++g.workers["lost"];
      continue;
    }
    g.slots_busy += std::min(running, w.slots);
    if (w.quarantined) {
      ++g.workers["quarantined"];
      continue;
    }
    if (w.draining) {
      ++g.workers["draining"];
      continue;
    }
    ++g.workers[running >= w.slots && w.free_gpu_slots() == 0 ? "busy" : "ready"];
    g.slots_free += std::max(0, w.slots - running);
  }
  Duration oldest{};
  for (const auto& [id, d] : farm.deliveries()) {
    if (d.manifest_failures > 0) ++g.manifests_failing;
    if (d.finished) continue;
    ++g.deliveries_active;
    for (const auto& jid : d.job_ids) {
      const JobRecord* j = farm.FindJob(jid);
      if (j == nullptr) continue;
      switch (j->state) {
        case JobState::kWaiting:
          ++g.jobs_waiting;
          break;
        case JobState::kQueued:
          ++g.jobs_queued;
          if (j->job.has_gpu() || j->job.needs().gpu()) ++g.jobs_queued_gpu;
          if (j->job.needs().gpu()) ++g.jobs_queued_gpu_only;
          if (j->queued_at != SteadyTime{}) oldest = std::max(oldest, now - j->queued_at);
          break;
        case JobState::kRunning:
          ++g.jobs_running;
          break;
        default:
          break;
      }
    }
  }
  g.oldest_queued_age_s = g.jobs_queued > 0 ? Seconds(oldest) : 0;
  return g;
}

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& r)
    : submitted_(BuildCounter()
                     .Name("reelfarm_deliveries_submitted_total")
                     .Help("Deliveries accepted by the API")
                     .Register(r)
                     .Add({})),
      stale_(BuildCounter()
                 .Name("reelfarm_stale_results_total")
                 .Help("Results refused because their attempt was superseded")
                 .Register(r)
                 .Add({})),
      forged_(BuildCounter()
                  .Name("reelfarm_forged_messages_total")
                  .Help("Worker messages refused because they claimed an attempt or a worker name "
                        "their connection does not hold, by message kind")
                  .Register(r)),
      active_(BuildGauge()
                  .Name("reelfarm_coordinator_active")
                  .Help("1 for the coordinator holding the lease, 0 for a standby "
                        "(docs/operations.md)")
                  .Register(r)
                  .Add({})),
      redis_data_lost_(prometheus::BuildGauge()
                           .Name("reelfarm_redis_data_lost")
                           .Help("1 when Redis lost (or replaced) its data since the coordinator "
                                 "started (its rf:epoch changed); restart the coordinator")
                           .Register(r)
                           .Add({})),
      manifest_failures_(BuildCounter()
                             .Name("reelfarm_manifest_write_failures_total")
                             .Help("Failed writes of delivery manifests (each is retried)")
                             .Register(r)
                             .Add({})),
      manifests_failing_(BuildGauge()
                             .Name("reelfarm_manifests_failing")
                             .Help("Finished deliveries whose manifest could not be written yet")
                             .Register(r)
                             .Add({})),
      published_(BuildCounter()
                     .Name("reelfarm_deliverables_published_total")
                     .Help("Deliverables published, by how: encoded, or reused from the output "
                           "cache")
                     .Register(r)),
      cache_lookups_(BuildCounter()
                         .Name("reelfarm_output_cache_lookups_total")
                         .Help("Deliverables looked up in the output cache at submit, by result "
                               "(hit: planned as a reuse)")
                         .Register(r)),
      cache_evictions_(BuildCounter()
                           .Name("reelfarm_output_cache_evictions_total")
                           .Help("Output cache entries removed to stay under --cache-max-gb")
                           .Register(r)
                           .Add({})),
      cache_evicted_bytes_(BuildCounter()
                               .Name("reelfarm_output_cache_evicted_bytes_total")
                               .Help("Bytes of the output cache entries evicted")
                               .Register(r)
                               .Add({})),
      cache_bytes_(BuildGauge()
                       .Name("reelfarm_output_cache_bytes")
                       .Help("Bytes in the output cache last checked (after a delivery)")
                       .Register(r)
                       .Add({})),
      cache_entries_(BuildGauge()
                         .Name("reelfarm_output_cache_entries")
                         .Help("Entries in the output cache last checked (after a delivery)")
                         .Register(r)
                         .Add({})),
      delivery_finished_(BuildCounter()
                             .Name("reelfarm_deliveries_finished_total")
                             .Help("Deliveries whose every job is terminal, by final state")
                             .Register(r)),
      jobs_completed_(BuildCounter()
                          .Name("reelfarm_jobs_completed_total")
                          .Help("Jobs that reached a terminal state, by preset and result")
                          .Register(r)),
      deliverables_completed_(
          BuildCounter()
              .Name("reelfarm_deliverables_completed_total")
              .Help("Deliverables finished, by preset and result (plan failures included)")
              .Register(r)),
      redispatches_(BuildCounter()
                        .Name("reelfarm_job_redispatches_total")
                        .Help("Attempts ended without success and queued again, by reason")
                        .Register(r)),
      job_failures_(BuildCounter()
                        .Name("reelfarm_job_failures_total")
                        .Help("Jobs failed for good, by reason")
                        .Register(r)),
      quarantines_(BuildCounter()
                       .Name("reelfarm_worker_quarantines_total")
                       .Help("Workers put out of rotation after repeated failures")
                       .Register(r)
                       .Add({})),
      job_duration_(BuildHistogram()
                        .Name("reelfarm_job_duration_seconds")
                        .Help("Run time of successful attempts, assignment to accepted result")
                        .Register(r)),
      queue_wait_(BuildHistogram()
                      .Name("reelfarm_job_queue_wait_seconds")
                      .Help("Time a job waited in the queue before an assignment")
                      .Register(r)),
      attempts_by_encoder_(
          BuildCounter()
              .Name("reelfarm_job_attempts_total")
              .Help("Attempts assigned, by the slot kind they run on (docs/gpu.md)")
              .Register(r)),
      deliveries_active_(BuildGauge()
                             .Name("reelfarm_deliveries_active")
                             .Help("Deliveries submitted and not finished")
                             .Register(r)
                             .Add({})),
      jobs_waiting_(BuildGauge()
                        .Name("reelfarm_jobs_waiting")
                        .Help("Jobs waiting for their dependencies")
                        .Register(r)
                        .Add({})),
      jobs_queued_(BuildGauge()
                       .Name("reelfarm_jobs_queued")
                       .Help("Jobs waiting for a worker (queue depth)")
                       .Register(r)
                       .Add({})),
      jobs_queued_for_(BuildGauge()
                           .Name("reelfarm_jobs_queued_for")
                           .Help("Queued jobs a GPU slot could take (slot=gpu) and those only a "
                                 "GPU slot can take (slot=gpu_only)")
                           .Register(r)),
      jobs_running_(BuildGauge()
                        .Name("reelfarm_jobs_running")
                        .Help("Jobs with an attempt running on a worker")
                        .Register(r)
                        .Add({})),
      oldest_queued_(BuildGauge()
                         .Name("reelfarm_queue_oldest_job_age_seconds")
                         .Help("How long the oldest queued job has waited; 0 when none")
                         .Register(r)
                         .Add({})),
      workers_(BuildGauge()
                   .Name("reelfarm_workers")
                   .Help("Workers known to the coordinator, by state")
                   .Register(r)),
      slots_(BuildGauge()
                 .Name("reelfarm_farm_slots")
                 .Help("Job slots of connected workers, by state (busy, free)")
                 .Register(r)),
      webhook_deliveries_(BuildCounter()
                              .Name("reelfarm_webhook_deliveries_total")
                              .Help("Webhook POSTs by result: ok (2xx), failed (retried later), "
                                    "dead (given up: a dead letter, docs/webhooks.md)")
                              .Register(r)),
      webhook_queue_(BuildGauge()
                         .Name("reelfarm_webhook_queue")
                         .Help("Webhook messages waiting to be sent or retried")
                         .Register(r)
                         .Add({})),
      webhook_dead_(BuildGauge()
                        .Name("reelfarm_webhook_dead_letters")
                        .Help("Webhook messages given up after their last attempt (kept for "
                              "redelivery through the API)")
                        .Register(r)
                        .Add({})) {
  for (const char* res : {"ok", "failed", "dead"}) webhook_deliveries_.Add({{"result", res}});
  // Every series that a dashboard or alert rates exists from the start, at
  // 0, so its first increment is seen as an increase.
  for (const auto& p : Presets()) {
    for (const char* res : kJobResults) jobs_completed_.Add({{"preset", p.name}, {"result", res}});
    for (const char* res : kDeliverableResults) {
      deliverables_completed_.Add({{"preset", p.name}, {"result", res}});
    }
    job_duration_.Add({{"preset", p.name}}, TranscodeSecondsBuckets());
    queue_wait_.Add({{"preset", p.name}}, QueueWaitSecondsBuckets());
  }
  for (const char* res : kDeliverableResults) delivery_finished_.Add({{"result", res}});
  for (const char* how : {"encoded", "reused"}) published_.Add({{"how", how}});
  for (const char* kind : {"cpu", "gpu"}) attempts_by_encoder_.Add({{"encoder", kind}});
  for (const char* res : {"hit", "miss"}) cache_lookups_.Add({{"result", res}});
  for (const char* r : kRedispatchReasons) redispatches_.Add({{"reason", r}});
  for (const char* r : kFailureReasons) job_failures_.Add({{"reason", r}});
  for (const char* s : kWorkerStates) workers_.Add({{"state", s}});
  slots_.Add({{"state", "busy"}});
  slots_.Add({{"state", "free"}});
}

void CoordinatorMetrics::OnSubmitted(const pb::Plan& plan) {
  submitted_.Increment();
  for (const auto& k : plan.keys()) {
    cache_lookups_.Add({{"result", k.reused() ? "hit" : "miss"}}).Increment();
  }
  for (const auto& f : plan.failures()) {
    deliverables_completed_.Add({{"preset", f.preset()}, {"result", "failed"}}).Increment();
  }
}

void CoordinatorMetrics::OnStaleResults(int n) {
  if (n > 0) stale_.Increment(n);
}

void CoordinatorMetrics::OnCacheEviction(const EvictionResult& r) {
  cache_evictions_.Increment(r.evicted);
  cache_evicted_bytes_.Increment(static_cast<double>(r.bytes_freed));
  cache_bytes_.Set(static_cast<double>(r.after.bytes));
  cache_entries_.Set(r.after.entries);
}

void CoordinatorMetrics::OnForged(const std::string& kind) {
  forged_.Add({{"kind", kind}}).Increment();
}

void CoordinatorMetrics::Observe(const FarmEvent& e, const FarmState& farm) {
  auto completed = [&](const char* job_result, const char* deliverable_result) {
    jobs_completed_.Add({{"preset", e.preset}, {"result", job_result}}).Increment();
    const JobRecord* j = farm.FindJob(e.job_id);
    if (j == nullptr || j->job.outputs_size() == 0) {
      deliverables_completed_.Add({{"preset", e.preset}, {"result", deliverable_result}})
          .Increment();
      return;
    }
    for (const auto& out : j->job.outputs()) {
      if (out.intermediate()) continue;  // a chunk or audio part
      deliverables_completed_.Add({{"preset", out.preset()}, {"result", deliverable_result}})
          .Increment();
    }
  };
  switch (e.kind) {
    case FarmEvent::Kind::kAssigned:
      queue_wait_.Add({{"preset", e.preset}}, QueueWaitSecondsBuckets())
          .Observe(Seconds(e.queue_wait));
      if (const JobRecord* j = farm.FindJob(e.job_id)) {
        attempts_by_encoder_.Add({{"encoder", j->on_gpu ? "gpu" : "cpu"}}).Increment();
      }
      break;
    case FarmEvent::Kind::kSucceeded:
      job_duration_.Add({{"preset", e.preset}}, TranscodeSecondsBuckets())
          .Observe(Seconds(e.run_time));
      completed("succeeded", "delivered");
      if (const JobRecord* j = farm.FindJob(e.job_id)) {
        int finals = 0;
        for (const auto& out : j->job.outputs()) finals += out.intermediate() ? 0 : 1;
        if (finals > 0) {
          published_.Add({{"how", j->job.kind() == "reuse" ? "reused" : "encoded"}})
              .Increment(finals);
        }
      }
      break;
    case FarmEvent::Kind::kFailed:
      job_failures_.Add({{"reason", e.reason}}).Increment();
      completed("failed", "failed");
      break;
    case FarmEvent::Kind::kCancelled:
      completed("cancelled", "cancelled");
      break;
    case FarmEvent::Kind::kRetry:
    case FarmEvent::Kind::kRedispatch:
      redispatches_.Add({{"reason", e.reason}}).Increment();
      break;
    case FarmEvent::Kind::kStaleResult:
      break;  // counted from Effects::stale_results (duplicates excluded there)
    case FarmEvent::Kind::kDeliveryFinished:
      delivery_finished_.Add({{"result", e.reason}}).Increment();
      break;
    case FarmEvent::Kind::kQuarantined:
      quarantines_.Increment();
      break;
  }
}

void CoordinatorMetrics::MaybeUpdateGauges(const FarmState& farm, SteadyTime now) {
  if (gauges_set_ && now - last_gauges_ < std::chrono::seconds(1)) return;
  UpdateGauges(farm, now);
}

void CoordinatorMetrics::UpdateGauges(const FarmState& farm, SteadyTime now) {
  gauges_set_ = true;
  last_gauges_ = now;
  FarmGauges g = ComputeFarmGauges(farm, now);
  deliveries_active_.Set(g.deliveries_active);
  manifests_failing_.Set(g.manifests_failing);
  jobs_waiting_.Set(g.jobs_waiting);
  jobs_queued_.Set(g.jobs_queued);
  jobs_queued_for_.Add({{"slot", "gpu"}}).Set(g.jobs_queued_gpu);
  jobs_queued_for_.Add({{"slot", "gpu_only"}}).Set(g.jobs_queued_gpu_only);
  jobs_running_.Set(g.jobs_running);
  oldest_queued_.Set(g.oldest_queued_age_s);
  for (const auto& [state, n] : g.workers) workers_.Add({{"state", state}}).Set(n);
  slots_.Add({{"state", "busy"}}).Set(g.slots_busy);
  slots_.Add({{"state", "free"}}).Set(g.slots_free);
}

void LogFarmEvent(const FarmEvent& e) {
  LogFields fields({{"delivery", e.delivery_id}, {"job", e.job_id}, {"worker", e.worker}});
  auto ms = [](Duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  switch (e.kind) {
    case FarmEvent::Kind::kAssigned:
      spdlog::info("job {} ({}) assigned to {} after {} ms in the queue", e.job_id, e.preset,
                   e.worker, ms(e.queue_wait));
      break;
    case FarmEvent::Kind::kSucceeded:
      spdlog::info("job {} ({}) succeeded on {} in {} ms", e.job_id, e.preset, e.worker,
                   ms(e.run_time));
      break;
    case FarmEvent::Kind::kFailed:
      spdlog::warn("job {} ({}) failed: {}", e.job_id, e.preset, e.reason);
      break;
    case FarmEvent::Kind::kRetry:
      spdlog::warn("job {} ({}) failed on {}, retrying: {}", e.job_id, e.preset, e.worker,
                   e.reason);
      break;
    case FarmEvent::Kind::kRedispatch:
      spdlog::warn("job {} ({}) requeued, its attempt on {} ended: {}", e.job_id, e.preset,
                   e.worker, e.reason);
      break;
    case FarmEvent::Kind::kCancelled:
      spdlog::info("job {} ({}) cancelled", e.job_id, e.preset);
      break;
    case FarmEvent::Kind::kStaleResult:
      spdlog::warn("job {}: refused a result from {} of a superseded attempt", e.job_id, e.worker);
      break;
    case FarmEvent::Kind::kDeliveryFinished:
      spdlog::debug("delivery {} finished: {}", e.delivery_id, e.reason);
      break;
    case FarmEvent::Kind::kQuarantined:
      break;  // the daemon logs quarantine changes
  }
}

}  // namespace reelfarm
