// The planner: a pure function from a validated spec and the probed source
// facts to a job graph. No I/O.
#ifndef REELFARM_PLANNING_PLANNER_H_
#define REELFARM_PLANNING_PLANNER_H_

#include <string>
#include <vector>

#include "common/presets.h"
#include "common/spec.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// Hidden folder in a delivery's output_dir for the parts (time chunks, audio)
// of chunked deliverables; the coordinator removes it when the delivery ends.
inline constexpr char kPartsFolder[] = ".reelfarm-parts";

struct PlannerOptions {
  std::string ffmpeg = "ffmpeg";  // argv[0] of every job
  // Wall-clock limit of an attempt: base + factor x media seconds.
  double timeout_base_s = 120;
  double timeout_per_media_s = 20;
  // The shape of a plan comes from cost alone, never from the workers
  // connected when it is made (docs/scaling.md): a moving picture costing
  // more than `piece_cost` is cut into time chunks of about that cost
  // (chunking), cheap ones that share a decode are grouped into decode-once
  // jobs of up to that cost (fan_out). Cost units (Job.cost): megapixels x
  // seconds x the encoder's weight; 4 is about 2 s of 1080p through libx264
  // medium. 0 = one job per deliverable.
  double piece_cost = 4;
  bool fan_out = true;
  bool chunking = true;
  // No chunk shorter than this many seconds of source.
  double min_chunk_s = 2;
  // A farm with GPU workers (its operator says so: coordinator --gpu-farm;
  // docs/gpu.md): deliverables a GPU encoder can make with `encoder: auto`
  // are planned whole, one job each that runs on a GPU slot or a CPU one
  // (late binding), instead of cut in chunks or grouped, which bind them to
  // the CPU. `encoder: gpu` deliverables are always whole.
  bool gpu_farm = false;
};

struct PlanResult {
  pb::Plan plan;                  // valid when errors is empty
  std::vector<SpecError> errors;  // spec problems only visible with the facts
};

// Jobs get local ids "j0", "j1", ... in deliverable order (a group's members
// "j0m0", "j0m1"...; dependencies name these ids); the coordinator makes
// them farm-unique at submit.
PlanResult PlanDelivery(const DeliverySpec& spec, const pb::SourceFacts& source,
                        const PlannerOptions& options = PlannerOptions());

// Escapes a file path for use as a filter option value inside a
// -filter_complex graph (both of FFmpeg's escaping levels: the filter's
// option parser, then the graph parser), e.g. for subtitles=filename=...
std::string EscapeFilterPath(const std::string& path);

}  // namespace reelfarm

#endif  // REELFARM_PLANNING_PLANNER_H_
