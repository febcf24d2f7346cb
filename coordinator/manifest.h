// The delivery manifest (<output_dir>/manifest.json) and the API's views of
// deliveries, built from the farm's records. Pure.
#ifndef REELFARM_COORDINATOR_MANIFEST_H_
#define REELFARM_COORDINATOR_MANIFEST_H_

#include <nlohmann/json.hpp>

#include "coordinator/eta.h"
#include "coordinator/farm_state.h"

namespace reelfarm {

// manifest.json: source facts and every deliverable with status, path,
// bytes, sha256, probed media, attempts, worker, encode time, error.
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

// JSON of a protobuf message with the proto field names.
nlohmann::json ProtoToJson(const google::protobuf::Message& m);

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_MANIFEST_H_
