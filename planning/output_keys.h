// Output keys and reuse (docs/versions.md): what each deliverable's bytes
// depend on, and a plan that publishes the unchanged ones from the output
// cache instead of encoding them. Pure: the caller hashes the files, reads
// the cache and gives the results here.
#ifndef REELFARM_PLANNING_OUTPUT_KEYS_H_
#define REELFARM_PLANNING_OUTPUT_KEYS_H_

#include <map>
#include <string>
#include <vector>

#include "common/output_cache.h"
#include "common/spec.h"
#include "planning/planner.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// The content of what a delivery reads, and the FFmpeg that makes it.
struct KeyInputs {
  std::string source_sha256;
  std::map<std::string, std::string> subtitle_sha256;  // language -> SHA-256
  std::string ffmpeg_version;
};

// The jobs that make one deliverable on its own: its jobs in `plan`, a
// grouped deliverable's member job instead of the group, plus (`external`)
// the jobs they depend on that make no part of it (the source's analysis).
// The pointers are into `plan`, valid while it is.
struct DeliverableJobs {
  std::vector<const pb::Job*> own;
  std::vector<const pb::Job*> external;
};
DeliverableJobs JobsOf(const pb::Plan& plan, const std::string& deliverable);

// Each planned deliverable's key, in plan order. The settings part is a
// SHA-256 over its jobs (JobsOf) with every path replaced by what it stands
// for (source, subtitle, the output, its parts, the delivery folder): the
// argv, generated files, expected media, QC gates and loudness target. So a
// deliverable renamed, or moved to another folder, keeps its key; a changed
// preset, height, crop, gate or FFmpeg does not.
std::vector<pb::OutputKey> OutputKeys(const DeliverySpec& spec, const pb::Plan& plan,
                                      const KeyInputs& inputs);

// A deliverable found in the cache.
struct CacheHit {
  pb::OutputKey key;
  CacheEntry entry;
};

// `plan` holds the deliverables not reused (PlanDelivery of the spec without
// the hits); `full` is the plan of them all. Adds one "reuse" job per hit
// (ids "r0", "r1"...) publishing its entry, with the deliverable's jobs
// from `full` as its fallback (ids "r0.<id>"; a dependency on the source's
// analysis points at `plan`'s when it has one), and sets plan->keys from
// `keys` (hits marked reused).
void AddReuseJobs(const pb::Plan& full, const std::vector<CacheHit>& hits,
                  const std::vector<pb::OutputKey>& keys, const PlannerOptions& options,
                  pb::Plan* plan);

// Asks every final output of `plan` with a key (members of groups and
// fallbacks included) to be kept in the cache at `cache_root` once
// published, recorded as made by version `version` of the delivery.
void SetCacheStores(const std::string& cache_root, int version, pb::Plan* plan);

}  // namespace reelfarm

#endif  // REELFARM_PLANNING_OUTPUT_KEYS_H_
