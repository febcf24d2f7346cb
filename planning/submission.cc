#include "planning/submission.h"

#include <utility>

#include "common/probe.h"

namespace reelfarm {

SubmissionPipeline::SubmissionPipeline(SubmissionOptions options, ProcessRunner* runner,
                                       ProbeCache* cache)
    : options_(std::move(options)), runner_(runner), cache_(cache) {}

Submission SubmissionPipeline::Run(const std::string& spec_text, const std::string& spec_file,
                                   const std::string& base_dir) const {
  return Check(ParseSpecText(spec_text, spec_file, base_dir));
}

Submission SubmissionPipeline::RunFile(const std::string& spec_path) const {
  return Check(ParseSpecFile(spec_path));
}

Submission SubmissionPipeline::Check(SpecParseResult parsed) const {
  Submission out;
  if (!parsed.errors.empty()) {
    out.errors = std::move(parsed.errors);
    return out;
  }
  const DeliverySpec& spec = *parsed.spec;
  out.errors = CheckSpecRoots(spec, options_.allowed_roots);
  if (!out.errors.empty()) return out;
  out.errors = CheckSpecFiles(spec);
  if (!out.errors.empty()) return out;

  StatusOr<pb::SourceFacts> facts =
      cache_ != nullptr
          ? cache_->Probe(*runner_, options_.ffprobe, spec.source, 60, options_.planner.ffmpeg)
          : ProbeSource(*runner_, options_.ffprobe, spec.source, 60, options_.planner.ffmpeg);
  if (!facts.ok()) {
    out.probe_status = facts.status();
    out.errors.push_back({spec.spec_file, spec.source_line, "source", facts.status().message()});
    return out;
  }

  PlanResult planned = PlanDelivery(spec, *facts, options_.planner);
  if (!planned.errors.empty()) {
    out.errors = std::move(planned.errors);
    return out;
  }
  out.plan = std::move(planned.plan);
  out.spec = std::move(parsed.spec);
  return out;
}

}  // namespace reelfarm
