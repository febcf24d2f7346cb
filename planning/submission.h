// The one submission pipeline: spec text -> parse -> allowed folders ->
// files -> probe -> plan. `POST /api/v1/deliveries` (Coordinator::Submit)
// and `reelfarm plan` / `run` both go through it, so they cannot disagree
// about what a spec means or whether it is valid.
#ifndef REELFARM_PLANNING_SUBMISSION_H_
#define REELFARM_PLANNING_SUBMISSION_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/probe_cache.h"
#include "common/process_runner.h"
#include "common/spec.h"
#include "common/status.h"
#include "planning/planner.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct SubmissionOptions {
  // Folders the source, subtitle files and output_dir must lie in
  // (CheckSpecRoots); empty: any.
  std::vector<std::string> allowed_roots;
  std::string ffprobe = "ffprobe";
  PlannerOptions planner;
  // The output cache (docs/versions.md): each deliverable gets its output
  // key (the source and subtitles are hashed, FFmpeg's version asked), and
  // one whose key has an entry is planned as a "reuse" job. `cache_root`
  // "": DefaultCacheRoot of the delivery's output_dir.
  bool reuse_outputs = true;
  std::string cache_root;
};

struct Submission {
  // The problems of the first step that found any, each printed
  // FILE:LINE: field: message. Empty: spec and plan are set.
  std::vector<SpecError> errors;
  // Not OK when the source could not be probed; errors then holds one error
  // on `source` with its message. Callers may tell a refused or missing
  // source (InvalidArgument, NotFound, FailedPrecondition) from an ffprobe
  // that could not run.
  Status probe_status;
  std::optional<DeliverySpec> spec;
  pb::Plan plan;  // job ids local to the plan ("j0", ...)
  // Where this delivery's outputs are cached (SetCacheStores); "" when
  // reuse_outputs is off.
  std::string cache_root;

  bool ok() const { return errors.empty(); }
};

// Thread-safe when its runner and cache are (PosixProcessRunner and
// ProbeCache are).
class SubmissionPipeline {
 public:
  // `runner` (not owned) runs ffprobe and must outlive the pipeline;
  // `cache` (not owned, may be null: every source is probed) remembers
  // sources by their identity.
  SubmissionPipeline(SubmissionOptions options, ProcessRunner* runner, ProbeCache* cache);

  // ParseSpecText(spec_text, spec_file, base_dir), CheckSpecRoots,
  // CheckSpecFiles, the probe, PlanDelivery.
  Submission Run(const std::string& spec_text, const std::string& spec_file,
                 const std::string& base_dir) const;
  // The same, from ParseSpecFile(spec_path).
  Submission RunFile(const std::string& spec_path) const;

 private:
  Submission Check(SpecParseResult parsed) const;
  // Keys every deliverable of out->plan and turns those found in the cache
  // into reuse jobs. Not OK when the source or a subtitle cannot be read.
  Status Reuse(const DeliverySpec& spec, const pb::SourceFacts& facts, Submission* out) const;

  SubmissionOptions options_;
  ProcessRunner* runner_;
  ProbeCache* cache_;
};

}  // namespace reelfarm

#endif  // REELFARM_PLANNING_SUBMISSION_H_
