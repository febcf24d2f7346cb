#include "planning/submission.h"

#include <filesystem>
#include <set>
#include <utility>

#include "common/probe.h"
#include "common/secure.h"
#include "planning/output_keys.h"

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
  if (options_.reuse_outputs) {
    Status reused = Reuse(spec, *facts, &out);
    if (!reused.ok()) {
      out.errors.push_back({spec.spec_file, spec.source_line, "source", reused.message()});
      return out;
    }
  }
  out.spec = std::move(parsed.spec);
  return out;
}

Status SubmissionPipeline::Reuse(const DeliverySpec& spec, const pb::SourceFacts& facts,
                                 Submission* out) const {
  auto hash = [&](const std::string& path) {
    return cache_ != nullptr ? cache_->Sha256(path) : Sha256File(path);
  };
  KeyInputs in;
  StatusOr<std::string> source = hash(spec.source);
  if (!source.ok()) return source.status();
  in.source_sha256 = *source;
  for (const auto& [language, path] : spec.subtitles) {
    StatusOr<std::string> sha = hash(path);
    if (!sha.ok()) return sha.status();
    in.subtitle_sha256[language] = *sha;
  }
  // ffprobe comes with the FFmpeg it belongs to and says the same version;
  // the coordinator has it where it may have no ffmpeg. Unknown: nothing
  // made now is kept (a worker keeps an output only under its own version).
  StatusOr<std::string> version = cache_ != nullptr ? cache_->Version(*runner_, options_.ffprobe)
                                                    : ProgramVersion(*runner_, options_.ffprobe);
  in.ffmpeg_version = version.ok() ? *version : "unknown";
  std::vector<pb::OutputKey> keys = OutputKeys(spec, out->plan, in);
  out->cache_root =
      options_.cache_root.empty() ? DefaultCacheRoot(spec.output_dir) : options_.cache_root;
  std::vector<CacheHit> hits;
  if (version.ok()) {
    for (const auto& key : keys) {
      StatusOr<CacheEntry> entry = ReadCacheEntry(CacheEntryPath(out->cache_root, key.key()));
      if (entry.ok()) hits.push_back({key, *std::move(entry)});
    }
  }
  if (hits.empty()) {
    for (auto& key : keys) *out->plan.add_keys() = std::move(key);
    return Status::OK();
  }
  // The rest planned as if the reused ones were not asked for; those get a
  // reuse job each, with their jobs of the whole plan to fall back on.
  DeliverySpec rest = spec;
  std::set<std::string> reused;
  for (const auto& hit : hits) reused.insert(hit.key.deliverable());
  std::erase_if(rest.deliverables, [&](const auto& d) { return reused.count(d.name) > 0; });
  PlanResult planned = PlanDelivery(rest, facts, options_.planner);
  if (!planned.errors.empty()) return Status::Internal(planned.errors[0].ToString());
  planned.plan.mutable_notes()->CopyFrom(out->plan.notes());
  AddReuseJobs(out->plan, hits, keys, options_.planner, &planned.plan);
  out->plan = std::move(planned.plan);
  return Status::OK();
}

}  // namespace reelfarm
