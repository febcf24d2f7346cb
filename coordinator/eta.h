// When will it be done: estimated seconds to the end of every unfinished
// job and delivery on the farm, from this farm's own measured speed. Pure:
// it reads a FarmState and `now`, and changes nothing.
//
// - Speed: every succeeded job tells how long its kind of work took here
//   (encode seconds per unit of the planner's cost, by job kind and preset,
//   before any ended, from its running jobs' pace once 10 % along; then by
//   kind, then over all encodes, no less than the quickest job seen),
//   so the estimate learns the farm's machines and presets; nothing is
//   assumed before a first measurement.
// - A running job ends after elapsed x (1 - p) / p once its progress p is
//   known (its fps over the frames left, in effect), before that after its
//   measured duration less what has elapsed.
// - Queued and waiting jobs are laid out on the farm's free slots (workers
//   connected, not quarantined, not draining) in dispatch order (priority,
//   then submission): each starts when a slot frees and what it waits for
//   has ended, as the dispatcher would start it.
// - A job has no estimate (absent from the maps) when nothing measured
//   tells how long it takes, when no worker could run it (no slots), when it
//   waits for a job without one, when no worker connected now could run it
//   (FarmState::Unrunnable), or past `max_jobs` queued jobs; a delivery
//   has one when each of its unfinished jobs has one.
// Ignored: which of the workers that could run a job will (encoders, GPU
// slots: any slot is taken to serve any job), chunks of one
// deliverable that a busier farm would run later, and retries to come.
#ifndef REELFARM_COORDINATOR_ETA_H_
#define REELFARM_COORDINATOR_ETA_H_

#include <map>
#include <string>
#include <unordered_map>

#include "coordinator/farm_state.h"

namespace reelfarm {

struct EtaOptions {
  // Below this progress a running job's own pace is too early to tell.
  double min_progress = 0.02;
  // Queued jobs laid out at most (the rest: no estimate).
  size_t max_jobs = 20000;
};

struct Eta {
  // Seconds from `now` to the end of each unfinished job that has one.
  std::unordered_map<std::string, double> job_seconds;
  // Seconds to the end of each unfinished delivery that has one.
  std::map<std::string, double> delivery_seconds;
};

Eta EstimateEta(const FarmState& farm, SteadyTime now, const EtaOptions& options = {});

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_ETA_H_
