// The planner: a pure function from a validated spec and the probed source
// facts to a job graph. No I/O.
#ifndef REELFARM_COORDINATOR_PLANNER_H_
#define REELFARM_COORDINATOR_PLANNER_H_

#include <string>
#include <vector>

#include "common/presets.h"
#include "common/spec.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct PlannerOptions {
  std::string ffmpeg = "ffmpeg";  // argv[0] of every job
  // Wall-clock limit of an attempt: base + factor x media seconds.
  double timeout_base_s = 120;
  double timeout_per_media_s = 20;
};

struct PlanResult {
  pb::Plan plan;                  // valid when errors is empty
  std::vector<SpecError> errors;  // spec problems only visible with the facts
};

// Jobs get local ids "j0", "j1", ... in deliverable order; the coordinator
// makes them farm-unique at submit.
PlanResult PlanDelivery(const DeliverySpec& spec, const pb::SourceFacts& source,
                        const PlannerOptions& options = PlannerOptions());

// Escapes a file path for use as a filter option value inside a
// -filter_complex graph (both of FFmpeg's escaping levels: the filter's
// option parser, then the graph parser), e.g. for subtitles=filename=...
std::string EscapeFilterPath(const std::string& path);

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_PLANNER_H_
