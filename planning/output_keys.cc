#include "planning/output_keys.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/proto_json.h"
#include "common/secure.h"

namespace reelfarm {
namespace {

using json = nlohmann::json;

// Whether every output of `job` (a group: every member's) is `deliverable`'s.
bool AllOf(const pb::Job& job, const std::string& deliverable) {
  if (job.outputs_size() == 0) return false;
  for (const auto& out : job.outputs()) {
    if (out.deliverable() != deliverable) return false;
  }
  return true;
}

bool AnyOf(const pb::Job& job, const std::string& deliverable) {
  for (const auto& out : job.outputs()) {
    if (out.deliverable() == deliverable) return true;
  }
  return false;
}

// The deliverable's final output in `jobs` (null: none).
const pb::JobOutput* FinalOutput(const std::vector<const pb::Job*>& jobs,
                                 const std::string& deliverable) {
  for (const pb::Job* job : jobs) {
    for (const auto& out : job->outputs()) {
      if (out.deliverable() == deliverable && !out.intermediate()) return &out;
    }
  }
  return nullptr;
}

// Paths replaced by what they stand for, longest first, each also in the
// form it takes inside a filter graph.
class PathNames {
 public:
  void Add(const std::string& path, const std::string& name) {
    if (path.empty()) return;
    pairs_.push_back({path, name});
    const std::string escaped = EscapeFilterPath(path);
    if (escaped != path) pairs_.push_back({escaped, name});
  }
  void Sort() {
    std::stable_sort(pairs_.begin(), pairs_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
  std::string Apply(std::string s) const {
    for (const auto& [from, to] : pairs_) {
      for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
      }
    }
    return s;
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

json JobSettings(const pb::Job& job, const PathNames& names) {
  json argv = json::array();
  // argv[0] is the program's path on this host: FFmpeg's version stands
  // for it.
  for (int i = 1; i < job.argv_size(); ++i) argv.push_back(names.Apply(job.argv(i)));
  json files = json::array();
  for (const auto& f : job.write_files()) {
    files.push_back({{"path", names.Apply(f.path())}, {"content", names.Apply(f.content())}});
  }
  json outputs = json::array();
  for (const auto& out : job.outputs()) {
    pb::QcGates qc = out.qc();
    qc.set_reference_path(names.Apply(qc.reference_path()));
    outputs.push_back({{"intermediate", out.intermediate()},
                       {"expect", ProtoJson(out.expect())},
                       {"qc", ProtoJson(qc)},
                       {"normalise", ProtoJson(out.normalise())},
                       {"package", ProtoJson(out.package())}});
  }
  json inputs = json::array();
  for (const auto& in : job.inputs()) inputs.push_back(names.Apply(in));
  return {{"kind", job.kind()},
          {"argv", std::move(argv)},
          {"inputs", std::move(inputs)},
          {"files", std::move(files)},
          {"outputs", std::move(outputs)}};
}

}  // namespace

DeliverableJobs JobsOf(const pb::Plan& plan, const std::string& deliverable) {
  DeliverableJobs out;
  std::set<std::string> own_ids;
  for (const auto& job : plan.jobs()) {
    if (job.members_size() > 0 && !AllOf(job, deliverable)) {
      // A decode shared with other deliverables: this one's member job.
      for (const auto& member : job.members()) {
        if (AllOf(member, deliverable)) {
          out.own.push_back(&member);
          own_ids.insert(member.id());
        }
      }
    } else if (AnyOf(job, deliverable)) {
      out.own.push_back(&job);
      own_ids.insert(job.id());
    }
  }
  // What they wait for that is no part of them (the source's analysis),
  // and what that waits for.
  std::set<std::string> wanted;
  for (const pb::Job* job : out.own) {
    for (const auto& dep : job->depends_on()) {
      if (!own_ids.count(dep)) wanted.insert(dep);
    }
  }
  std::set<std::string> taken;
  while (!wanted.empty()) {
    const std::string id = *wanted.begin();
    wanted.erase(wanted.begin());
    if (!taken.insert(id).second) continue;
    for (const auto& job : plan.jobs()) {
      if (job.id() != id) continue;
      out.external.push_back(&job);
      for (const auto& dep : job.depends_on()) {
        if (!own_ids.count(dep) && !taken.count(dep)) wanted.insert(dep);
      }
    }
  }
  return out;
}

std::vector<pb::OutputKey> OutputKeys(const DeliverySpec& spec, const pb::Plan& plan,
                                      const KeyInputs& inputs) {
  std::vector<pb::OutputKey> keys;
  std::set<std::string> failed;
  for (const auto& f : plan.failures()) failed.insert(f.deliverable());
  for (const auto& d : spec.deliverables) {
    if (failed.count(d.name)) continue;
    DeliverableJobs jobs = JobsOf(plan, d.name);
    const pb::JobOutput* final_output = FinalOutput(jobs.own, d.name);
    if (final_output == nullptr) continue;
    PathNames names;
    names.Add(final_output->path(), "<output>");
    names.Add(spec.output_dir + "/" + kPartsFolder + "/" + d.name, "<parts>");
    names.Add(spec.output_dir, "<folder>");
    names.Add(spec.source, "<source>");
    std::string subtitle_sha256;
    if (d.subtitles) {
      auto path = spec.subtitles.find(d.subtitles->language);
      if (path != spec.subtitles.end()) names.Add(path->second, "<subtitle>");
      auto sha = inputs.subtitle_sha256.find(d.subtitles->language);
      if (sha != inputs.subtitle_sha256.end()) subtitle_sha256 = sha->second;
    }
    names.Sort();
    json settings = json::array();
    std::set<std::string> encoders;
    for (const auto* list : {&jobs.own, &jobs.external}) {
      for (const pb::Job* job : *list) {
        settings.push_back(JobSettings(*job, names));
        for (const auto& e : job->needs().encoders()) encoders.insert(e);
      }
    }
    pb::OutputKey key;
    key.set_deliverable(d.name);
    key.set_source_sha256(inputs.source_sha256);
    key.set_subtitle_sha256(subtitle_sha256);
    key.set_settings_sha256(Sha256Hex(settings.dump()));
    std::string list;
    for (const auto& e : encoders) list += (list.empty() ? "" : ",") + e;
    key.set_encoders(list);
    key.set_ffmpeg_version(inputs.ffmpeg_version);
    const json whole = {{"source", key.source_sha256()},
                        {"subtitle", key.subtitle_sha256()},
                        {"settings", key.settings_sha256()},
                        {"encoders", key.encoders()},
                        {"ffmpeg", key.ffmpeg_version()}};
    key.set_key(Sha256Hex(whole.dump()));
    keys.push_back(std::move(key));
  }
  return keys;
}

void AddReuseJobs(const pb::Plan& full, const std::vector<CacheHit>& hits,
                  const std::vector<pb::OutputKey>& keys, const PlannerOptions& options,
                  pb::Plan* plan) {
  std::string analyse_id;  // the plan's own analysis of the source, if any
  for (const auto& job : plan->jobs()) {
    if (job.kind() == "analyse") analyse_id = job.id();
  }
  std::map<std::string, const CacheHit*> hit_of;
  for (size_t k = 0; k < hits.size(); ++k) {
    const CacheHit& hit = hits[k];
    hit_of[hit.key.deliverable()] = &hit;
    DeliverableJobs jobs = JobsOf(full, hit.key.deliverable());
    const pb::JobOutput* final_output = FinalOutput(jobs.own, hit.key.deliverable());
    if (final_output == nullptr) continue;
    const std::string id = "r" + std::to_string(k);
    pb::Job reuse;
    reuse.set_id(id);
    reuse.set_kind("reuse");
    pb::JobOutput* out = reuse.add_outputs();
    *out = *final_output;
    out->clear_qc();  // the entry's report stands: the key covers the gates
    out->clear_normalise();
    out->clear_cache();
    reuse.mutable_reuse()->set_entry(hit.entry.path);
    for (const auto& f : hit.entry.files) *reuse.mutable_reuse()->add_files() = f;
    *reuse.mutable_reuse()->mutable_original() = hit.entry.original;
    reuse.set_cost(0.01);
    // Linking is instant; a copy (another filesystem) and the check read
    // every byte, at no less than 20 MB/s.
    reuse.set_timeout_s(options.timeout_base_s + hit.entry.bytes() / 20e6);
    // The fallback: the deliverable's own jobs, and the analysis they need
    // unless the plan runs one anyway.
    std::map<std::string, std::string> rename;
    std::vector<pb::Job> fallback;
    for (const pb::Job* own : jobs.own) fallback.push_back(*own);
    for (const pb::Job* ext : jobs.external) {
      if (ext->kind() == "analyse" && !analyse_id.empty()) {
        rename[ext->id()] = analyse_id;
      } else {
        fallback.push_back(*ext);
      }
    }
    for (const auto& job : fallback) rename.emplace(job.id(), id + "." + job.id());
    for (auto job : fallback) {
      job.set_id(rename[job.id()]);
      for (auto& dep : *job.mutable_depends_on()) {
        if (auto r = rename.find(dep); r != rename.end()) dep = r->second;
      }
      for (auto& member : *job.mutable_members()) {
        member.set_id(id + "." + member.id());
        for (auto& dep : *member.mutable_depends_on()) {
          if (auto r = rename.find(dep); r != rename.end()) dep = r->second;
        }
      }
      *reuse.add_fallback() = std::move(job);
    }
    *plan->add_jobs() = std::move(reuse);
  }
  plan->clear_keys();
  for (auto key : keys) {
    if (auto h = hit_of.find(key.deliverable()); h != hit_of.end()) {
      key.set_reused(true);
      key.set_made_by(h->second->entry.made_by);
      key.set_made_in_version(h->second->entry.made_in_version);
    }
    *plan->add_keys() = std::move(key);
  }
}

void SetCacheStores(const std::string& cache_root, int version, pb::Plan* plan) {
  std::map<std::string, const pb::OutputKey*> by_name;
  for (const auto& key : plan->keys()) by_name[key.deliverable()] = &key;
  auto set = [&](pb::Job* job, auto& self) -> void {
    for (auto& out : *job->mutable_outputs()) {
      auto key = by_name.find(out.deliverable());
      if (out.intermediate() || key == by_name.end() || job->kind() == "reuse") continue;
      pb::CacheStore* store = out.mutable_cache();
      store->set_key(key->second->key());
      store->set_entry(CacheEntryPath(cache_root, key->second->key()));
      store->set_ffmpeg_version(key->second->ffmpeg_version());
      store->set_delivery(plan->name());
      store->set_version(version);
    }
    for (auto& member : *job->mutable_members()) self(&member, self);
    for (auto& f : *job->mutable_fallback()) self(&f, self);
  };
  for (auto& job : *plan->mutable_jobs()) set(&job, set);
}

}  // namespace reelfarm
