// The delivery manifest (<output_dir>/manifest.json) and the API's views of
// deliveries, built from the farm's records. Pure.
#ifndef REELFARM_COORDINATOR_MANIFEST_H_
#define REELFARM_COORDINATOR_MANIFEST_H_

#include <nlohmann/json.hpp>

#include "coordinator/eta.h"
#include "coordinator/farm_state.h"

namespace reelfarm {

// What a finished delivery's manifest is made of, copied from the farm's
// records (under the daemon's lock) so that the manifest is built and
// written off the event loop: the delivery, and of each of its jobs what the
// manifest shows (no payload, log or lease).
struct ManifestSnapshot {
  DeliveryRecord delivery;
  std::vector<JobRecord> jobs;  // in the delivery's order
  DeliveryCounts counts;
};
ManifestSnapshot SnapshotForManifest(const FarmState& farm, const DeliveryRecord& d);

// manifest.json: source facts and every deliverable with status, path,
// bytes, sha256, probed media, attempts, worker, encode time, error.
nlohmann::json BuildManifest(const ManifestSnapshot& snapshot);
// The same from the farm's records as they are now.
nlohmann::json BuildManifest(const FarmState& farm, const DeliveryRecord& d);

// GET /api/v1/deliveries item (docs/api.md). With `eta`, an unfinished
// delivery that has an estimate gets "eta_s" (whole seconds, rounded up).
nlohmann::json DeliverySummaryJson(const FarmState& farm, const DeliveryRecord& d,
                                   const Eta* eta = nullptr);
// GET /api/v1/deliveries/{id}: the summary plus per-deliverable items (each
// unfinished one with its "eta_s" when `eta` has one).
nlohmann::json DeliveryDetailJson(const FarmState& farm, const DeliveryRecord& d,
                                  const Eta* eta = nullptr);
// GET /api/v1/workers.
nlohmann::json WorkersJson(const FarmState& farm, SteadyTime now);

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_MANIFEST_H_
