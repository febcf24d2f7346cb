#include "coordinator/manifest.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <unordered_map>

#include "common/presets.h"
#include "common/proto_json.h"
#include "common/versions.h"

namespace reelfarm {
namespace {

const char* ItemState(const JobRecord& j) {
  switch (j.state) {
    case JobState::kSucceeded:
      return "delivered";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kRunning:
      return "running";
    case JobState::kWaiting:
      return "waiting";
    default:
      return "queued";
  }
}

nlohmann::json MediaJson(const pb::MediaInfo& m) {
  nlohmann::json out = nlohmann::json::object();
  out["format"] = m.format_name();
  if (m.has_video()) {
    out["video"] = {
        {"codec", m.video_codec()},
        {"profile", m.video_profile()},
        {"width", m.width()},
        {"height", m.height()},
        {"pix_fmt", m.pix_fmt()},
        {"frame_rate", std::to_string(m.fps_num()) + "/" + std::to_string(m.fps_den())}};
  }
  if (m.has_audio()) {
    out["audio"] = {{"codec", m.audio_codec()},
                    {"channels", m.audio_channels()},
                    {"sample_rate", m.audio_sample_rate()}};
  }
  if (m.has_subtitle()) out["subtitles"] = {{"codec", m.subtitle_codec()}};
  out["duration_s"] = m.duration_s();
  return out;
}

nlohmann::json SegmentsJson(const google::protobuf::RepeatedPtrField<pb::Segment>& segments) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : segments) out.push_back({{"start_s", s.start_s()}, {"end_s", s.end_s()}});
  return out;
}

// What a measuring pass found (the source's analysis, an output's QC).
nlohmann::json AnalysisJson(const pb::MediaAnalysis& m) {
  nlohmann::json out = nlohmann::json::object();
  if (m.loudness_measured()) {
    out["silent"] = m.silent();
    if (!m.silent()) {
      out["integrated_lufs"] = m.integrated_lufs();
      out["true_peak_db"] = m.true_peak_db();
      out["lra"] = m.lra();
    }
  }
  if (m.video_analysed()) {
    out["black"] = SegmentsJson(m.black());
    out["freeze"] = SegmentsJson(m.freeze());
  }
  if (m.audio_analysed()) out["silence"] = SegmentsJson(m.silence());
  if (m.quality_measured()) {
    out["ssim"] = m.ssim();
    out["psnr_db"] = m.psnr_db();
  }
  return out;
}

nlohmann::json QcJson(const pb::QcReport& r) {
  nlohmann::json out = AnalysisJson(r.measured());
  out["passed"] = r.passed();
  if (r.gain_db() != 0) out["gain_db"] = r.gain_db();
  nlohmann::json gates = nlohmann::json::array();
  for (const auto& g : r.gates()) {
    gates.push_back({{"gate", g.gate()},
                     {"passed", g.passed()},
                     {"measured", g.measured()},
                     {"limit", g.limit()}});
  }
  out["gates"] = std::move(gates);
  return out;
}

// A streaming package's renditions as its master playlist lists them.
nlohmann::json RenditionsJson(const pb::OutputResult& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : r.renditions()) {
    nlohmann::json item = {
        {"name", v.name()},         {"playlist", v.playlist()},       {"codecs", v.codecs()},
        {"peak_bps", v.peak_bps()}, {"average_bps", v.average_bps()}, {"segments", v.segments()}};
    if (v.width() > 0) {
      item["width"] = v.width();
      item["height"] = v.height();
    }
    out.push_back(std::move(item));
  }
  return out;
}

// Seconds rounded up: "0" only when it is done.
int64_t WholeSeconds(double seconds) {
  return static_cast<int64_t>(std::ceil(std::max(0.0, seconds)));
}

// Each deliverable's key in the delivery's plan (the last one given).
using KeysByDeliverable = std::unordered_map<std::string_view, const pb::OutputKey*>;
KeysByDeliverable KeysOf(const DeliveryRecord& d) {
  KeysByDeliverable keys;
  for (const auto& key : d.plan.keys()) keys[key.deliverable()] = &key;
  return keys;
}

// One entry per output of the job.
// `farm` (the API's views) is null for the manifest, which shows only what
// finished.
void AppendItems(const FarmState* farm, const KeysByDeliverable& keys, const JobRecord& j,
                 nlohmann::json* items, const Eta* eta = nullptr) {
  const bool for_manifest = farm == nullptr;
  for (int i = 0; i < j.job.outputs_size(); ++i) {
    const auto& out = j.job.outputs(i);
    if (out.intermediate()) continue;
    nlohmann::json item = {{"name", out.deliverable()},
                           {"preset", out.preset()},
                           {"path", out.relative_path()},
                           {"attempts", j.attempts},
                           {"worker", j.worker}};
    // What its bytes depend on, and whether they came from the cache.
    if (auto found = keys.find(out.deliverable()); found != keys.end()) {
      const pb::OutputKey& key = *found->second;
      item["key"] = key.key();
      item["inputs"] = KeyJson(key);
      const bool reused = j.job.kind() == "reuse";
      item["reused"] = reused;
      if (reused && key.made_in_version() > 0) item["made_in_version"] = key.made_in_version();
    }
    if (!j.result.ffmpeg_version().empty()) item["ffmpeg_version"] = j.result.ffmpeg_version();
    // The encoder that made it (docs/gpu.md): its preset's, on the GPU or
    // the CPU as the attempt ran (a group's outputs each have their own;
    // chunks and cached outputs are the CPU's); or where it runs now.
    const bool ran = j.state == JobState::kSucceeded || j.state == JobState::kFailed;
    if (const PresetInfo* preset = FindPreset(out.preset()); preset != nullptr && ran) {
      const bool gpu = j.result.gpu() && !preset->gpu_video_encoder.empty();
      const std::string& encoder = gpu                 ? preset->gpu_video_encoder
                                   : preset->has_video ? preset->video_encoder
                                                       : preset->audio_encoder;
      item["encoder"] = encoder;
      item["gpu"] = gpu;
    } else if (!for_manifest && j.state == JobState::kRunning) {
      item["gpu"] = j.on_gpu;
    }
    const pb::OutputResult* res = nullptr;
    for (const auto& r : j.result.outputs()) {
      if (r.deliverable() == out.deliverable()) res = &r;
    }
    if (for_manifest) {
      item["status"] = j.state == JobState::kSucceeded ? "delivered" : "failed";
    } else {
      item["state"] = ItemState(j);
      item["job"] = j.job.id();
      item["progress"] = farm->Progress(j);
      item["fps"] = j.fps;
      item["speed"] = j.speed;
      if (std::string why = farm->Unrunnable(j); !why.empty()) item["waiting_for"] = why;
      if (eta != nullptr && !IsTerminal(j.state)) {
        auto left = eta->job_seconds.find(j.job.id());
        if (left != eta->job_seconds.end()) item["eta_s"] = WholeSeconds(left->second);
      }
    }
    // Failed jobs list what they published before failing (a rename or
    // fsync that failed part-way): the file is there, with this hash.
    if ((j.state == JobState::kSucceeded || j.state == JobState::kFailed) && res != nullptr) {
      item["bytes"] = res->bytes();
      item["sha256"] = res->sha256();
      item["encode_seconds"] = j.result.encode_seconds();
      if (for_manifest) item["media"] = MediaJson(res->media());
      if (res->renditions_size() > 0) item["renditions"] = RenditionsJson(*res);
      // Every file of a package (the manifest only: a film has thousands).
      if (for_manifest && res->files_size() > 0) {
        nlohmann::json files = nlohmann::json::array();
        for (const auto& f : res->files()) {
          files.push_back(
              {{"path", f.relative_path()}, {"bytes", f.bytes()}, {"sha256", f.sha256()}});
        }
        item["files"] = std::move(files);
      }
    } else {
      item["bytes"] = 0;
      item["sha256"] = "";
    }
    if (res != nullptr && res->has_qc()) item["qc"] = QcJson(res->qc());
    for (const auto& r : j.result.qc_rejected()) {
      if (r.deliverable() == out.deliverable()) item["qc"] = QcJson(r.qc());
    }
    if (j.state != JobState::kSucceeded && !j.error.empty()) item["error"] = j.error;
    items->push_back(std::move(item));
  }
}

void AppendPlanFailures(const DeliveryRecord& d, bool for_manifest, nlohmann::json* items) {
  for (const auto& f : d.plan.failures()) {
    nlohmann::json item = {{"name", f.deliverable()},
                           {"preset", f.preset()},
                           {"path", f.relative_path()},
                           {"attempts", 0},
                           {"worker", ""},
                           {"bytes", 0},
                           {"sha256", ""},
                           {"error", f.reason()}};
    if (for_manifest) {
      item["status"] = "failed";
    } else {
      item["state"] = "failed";
      item["progress"] = 1.0;
    }
    items->push_back(std::move(item));
  }
}

}  // namespace

ManifestSnapshot SnapshotForManifest(const FarmState& farm, const DeliveryRecord& d) {
  ManifestSnapshot s;
  s.delivery = d;
  s.counts = farm.Counts(d);
  s.jobs.reserve(d.job_ids.size());
  for (const auto& jid : d.job_ids) {
    const JobRecord* j = farm.FindJob(jid);
    if (j == nullptr) continue;
    JobRecord& copy = s.jobs.emplace_back();
    copy.job = j->job;
    copy.state = j->state;
    copy.attempts = j->attempts;
    copy.worker = j->worker;
    copy.on_gpu = j->on_gpu;
    copy.error = j->error;
    copy.result = j->result;
  }
  return s;
}

nlohmann::json BuildManifest(const FarmState& farm, const DeliveryRecord& d) {
  return BuildManifest(SnapshotForManifest(farm, d));
}

nlohmann::json BuildManifest(const ManifestSnapshot& snapshot) {
  const DeliveryRecord& d = snapshot.delivery;
  nlohmann::json items = nlohmann::json::array();
  nlohmann::json analysis;  // what the delivery's analyse job measured in the source
  std::map<std::string, std::string> not_reused;  // deliverable -> why its entry failed
  const KeysByDeliverable keys = KeysOf(d);
  for (const JobRecord& j : snapshot.jobs) {
    AppendItems(nullptr, keys, j, &items);
    if (j.result.has_analysis()) analysis = AnalysisJson(j.result.analysis());
    if (j.job.kind() == "reuse" && j.job.outputs_size() == 1 && j.job.outputs(0).intermediate()) {
      not_reused[j.job.outputs(0).deliverable()] = j.result.error();
    }
  }
  for (auto& item : items) {
    auto why = not_reused.find(item.value("name", ""));
    if (why != not_reused.end()) item["not_reused"] = why->second;
  }
  AppendPlanFailures(d, true, &items);
  const DeliveryCounts& c = snapshot.counts;
  nlohmann::json manifest = {
      {"manifest_version", 1},
      {"delivery", d.id},
      {"name", d.name},
      {"version", std::max(1, d.plan.version())},
      {"spec_file", d.spec_file},
      {"state", c.state},
      {"created_ms", d.created_ms},
      {"finished_ms", d.finished_ms},
      {"source", ProtoJsonByPrinter(d.plan.source(), /*print_defaults=*/true)},
      {"notes", std::vector<std::string>(d.plan.notes().begin(), d.plan.notes().end())},
      {"deliverables", items}};
  if (!analysis.is_null()) manifest["source_analysis"] = std::move(analysis);
  int reused = 0, encoded = 0;
  for (const auto& item : manifest["deliverables"]) {
    if (item.value("status", "") != "delivered") continue;
    ++(item.value("reused", false) ? reused : encoded);
  }
  manifest["reused"] = reused;
  manifest["encoded"] = encoded;
  return manifest;
}

nlohmann::json DeliverySummaryJson(const FarmState& farm, const DeliveryRecord& d, const Eta* eta) {
  DeliveryCounts c = farm.Counts(d);
  // A delivery is done when its manifest is published, not before.
  if (d.manifest_pending) c.state = "running";
  nlohmann::json out = {{"id", d.id},
                        {"name", d.name},
                        {"version", std::max(1, d.plan.version())},
                        {"state", c.state},
                        {"priority", d.priority},
                        {"output_dir", d.output_dir},
                        {"created_ms", d.created_ms},
                        {"finished_ms", d.finished_ms},
                        {"deliverables", c.total},
                        {"delivered", c.delivered},
                        {"failed", c.failed},
                        {"cancelled", c.cancelled},
                        {"running", c.running},
                        {"queued", c.queued},
                        {"progress", c.progress}};
  // Every deliverable is finished but the manifest could not be written:
  // why, and how many tries failed (the coordinator goes on trying).
  if (!d.manifest_error.empty()) {
    out["manifest_error"] = d.manifest_error;
    out["manifest_failures"] = d.manifest_failures;
  }
  if (eta != nullptr) {
    auto left = eta->delivery_seconds.find(d.id);
    if (left != eta->delivery_seconds.end()) out["eta_s"] = WholeSeconds(left->second);
  }
  return out;
}

nlohmann::json DeliveryDetailJson(const FarmState& farm, const DeliveryRecord& d, const Eta* eta) {
  nlohmann::json out = DeliverySummaryJson(farm, d, eta);
  nlohmann::json items = nlohmann::json::array();
  const KeysByDeliverable keys = KeysOf(d);
  for (const auto& jid : d.job_ids) {
    if (const JobRecord* j = farm.FindJob(jid)) AppendItems(&farm, keys, *j, &items, eta);
  }
  AppendPlanFailures(d, false, &items);
  out["items"] = std::move(items);
  if (d.plan.notes_size() > 0) {
    out["notes"] = std::vector<std::string>(d.plan.notes().begin(), d.plan.notes().end());
  }
  if (d.finished && !d.manifest_pending) out["manifest"] = d.output_dir + "/manifest.json";
  return out;
}

nlohmann::json WorkersJson(const FarmState& farm, SteadyTime now) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, w] : farm.workers()) {
    int running = static_cast<int>(w.running.size());
    const bool full = w.cpu_running() >= w.slots && w.free_gpu_slots() == 0;
    const char* state = w.quarantined ? "quarantined"
                        : w.lost      ? "lost"
                        : w.draining  ? "draining"
                        : full        ? "busy"
                                      : "ready";
    list.push_back(
        {{"name", name},
         {"host", w.host},
         {"version", w.version},
         {"state", state},
         {"slots", w.slots},
         {"cores", w.cores},
         {"threads_per_slot", w.threads_per_slot},
         {"running", running},
         {"encoders", std::vector<std::string>(w.encoders.begin(), w.encoders.end())},
         {"gpu", w.gpu},
         {"gpu_names", w.gpu_names},
         {"gpu_slots", w.gpu_slots},
         {"gpu_running", w.running_gpu.size()},
         {"gpu_closed", w.gpu_closed},
         {"gpu_decoders", w.gpu_decoders},
         {"last_seen_ms_ago",
          std::chrono::duration_cast<std::chrono::milliseconds>(now - w.last_seen).count()},
         {"jobs_done", w.jobs_done},
         {"jobs_failed", w.jobs_failed},
         {"connected", !w.lost},
         {"quarantine_reason", w.quarantine_reason}});
  }
  return {{"workers", list}};
}

}  // namespace reelfarm
