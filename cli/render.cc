#include "cli/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace reelfarm::cli {

namespace {

// "%.3f" without trailing zeros: 25 -> "25", 23.976 -> "23.976".
std::string FormatNumber(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

std::string FormatFps(int num, int den) {
  if (num <= 0 || den <= 0) return "?";
  return FormatNumber(static_cast<double>(num) / den);
}

std::string JoinStrings(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string RenderSource(const pb::SourceFacts& s) {
  std::ostringstream out;
  out << "Source: " << s.path() << "\n";
  out << "  container: " << (s.format_name().empty() ? "?" : s.format_name()) << ", "
      << FormatNumber(s.duration_s(), 2) << " s, " << FormatBytes(s.size_bytes()) << "\n";
  if (s.has_video()) {
    out << "  video: " << s.video_codec() << " " << s.width() << "x" << s.height();
    if (s.display_width() != s.width() || s.display_height() != s.height()) {
      out << " (shown upright as " << s.display_width() << "x" << s.display_height() << ")";
    }
    out << ", " << FormatFps(s.fps_num(), s.fps_den()) << " fps";
    if (s.variable_frame_rate()) out << " (variable, snapped)";
    if (!s.pix_fmt().empty()) out << ", " << s.pix_fmt();
    if (s.rotation() != 0) out << ", rotation " << s.rotation();
    if (s.sar_num() > 0 && s.sar_den() > 0 && s.sar_num() != s.sar_den()) {
      out << ", SAR " << s.sar_num() << ":" << s.sar_den();
    }
    out << "\n";
  } else {
    out << "  video: none\n";
  }
  if (s.has_audio()) {
    out << "  audio: " << s.audio_codec() << ", " << s.audio_channels() << " ch";
    if (!s.audio_layout().empty()) out << " (" << s.audio_layout() << ")";
    out << ", " << s.audio_sample_rate() << " Hz\n";
  } else {
    out << "  audio: none\n";
  }
  return out.str();
}

}  // namespace

std::string ShellQuote(const std::string& arg) {
  if (arg.empty()) return "''";
  bool safe = std::all_of(arg.begin(), arg.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("@%+=:,./_-").find(static_cast<char>(c)) != std::string_view::npos;
  });
  if (safe) return arg;
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) out += ' ';
    out += ShellQuote(argv[i]);
  }
  return out;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = -1;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string FormatPercent(double fraction) {
  if (!std::isfinite(fraction)) fraction = 0;
  double pct = std::clamp(fraction, 0.0, 1.0) * 100.0;
  return std::to_string(static_cast<int>(std::floor(pct))) + "%";
}

std::string FormatEta(const nlohmann::json& object) {
  if (!object.is_object() || !object.contains("eta_s") || !object["eta_s"].is_number()) return "";
  const double value = object["eta_s"].get<double>();
  if (!std::isfinite(value) || value < 0) return "";
  const int64_t s = static_cast<int64_t>(std::ceil(std::min(value, 1e9)));
  char buf[40];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return buf;
}

TextTable::TextTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void TextTable::AddRow(std::vector<std::string> row) {
  row.resize(std::max(row.size(), rows_.front().size()));
  rows_.push_back(std::move(row));
}

std::string TextTable::Render() const {
  size_t columns = 0;
  for (const auto& row : rows_) columns = std::max(columns, row.size());
  std::vector<size_t> widths(columns, 0);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size(), ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string JsonString(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  return "";
}

double JsonNumber(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<double>();
}

int64_t JsonInt(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  return it->get<int64_t>();
}

std::string RenderSpecErrors(const std::vector<SpecError>& errors) {
  std::string out;
  for (const SpecError& e : errors) out += e.ToString() + "\n";
  return out;
}

std::string RenderApiSpecErrors(const nlohmann::json& body) {
  std::string out;
  if (body.is_object() && body.contains("errors") && body["errors"].is_array()) {
    for (const auto& e : body["errors"]) {
      std::string text = JsonString(e, "text");
      if (text.empty()) {
        SpecError err;
        err.file = JsonString(e, "file");
        err.line = static_cast<int>(JsonInt(e, "line"));
        err.field = JsonString(e, "field");
        err.message = JsonString(e, "message");
        text = err.ToString();
      }
      out += text + "\n";
    }
  }
  if (out.empty()) {
    std::string sentence = JsonString(body, "error");
    out = (sentence.empty() ? "the coordinator refused the spec" : sentence) + "\n";
  }
  return out;
}

// "web (-16 LUFS, true peak <= -2 dBTP)": a loudness target.
std::string DescribeLoudness(const pb::LoudnessTarget& t) {
  std::string out = t.standard().empty() ? "" : t.standard() + " ";
  out += "(" + FormatNumber(t.integrated_lufs(), 1) +
         " LUFS, true peak <= " + FormatNumber(t.true_peak_db(), 1) + " dBTP";
  if (t.lra() > 0) out += ", LRA " + FormatNumber(t.lra(), 1) + " LU";
  return out + ")";
}

// "loudness -16 +-1 LU, black <= 2 s, ... (beyond the source's)": QC gates.
std::string DescribeGates(const pb::QcGates& g) {
  std::vector<std::string> gates;
  if (g.check_loudness()) {
    gates.push_back("loudness " + FormatNumber(g.loudness().integrated_lufs(), 1) + " +-" +
                    FormatNumber(g.loudness_tolerance_lu(), 1) +
                    " LU, true peak <= " + FormatNumber(g.loudness().true_peak_db(), 1) + " dBTP");
  }
  if (g.black_max_s() > 0) gates.push_back("black <= " + FormatNumber(g.black_max_s(), 2) + " s");
  if (g.freeze_max_s() > 0) {
    gates.push_back("freeze <= " + FormatNumber(g.freeze_max_s(), 2) + " s");
  }
  if (g.silence_max_s() > 0) {
    gates.push_back("silence <= " + FormatNumber(g.silence_max_s(), 2) + " s");
  }
  std::string out = JoinStrings(gates, ", ");
  if (g.allow_in_source() &&
      (g.black_max_s() > 0 || g.freeze_max_s() > 0 || g.silence_max_s() > 0)) {
    out += " (beyond what the source has)";
  }
  return out;
}

std::string RenderPlan(const pb::Plan& plan) {
  std::ostringstream out;
  out << "Delivery " << plan.name() << " (priority " << plan.priority() << ") -> "
      << plan.output_dir() << "\n";
  out << RenderSource(plan.source());
  out << "\nJobs (" << plan.jobs_size() << "):\n";
  for (const pb::Job& job : plan.jobs()) {
    out << "  " << job.id() << "  " << job.kind() << "\n";
    for (const pb::JobOutput& o : job.outputs()) {
      out << "    " << (o.intermediate() ? "part" : "output") << ": " << o.deliverable() << " ("
          << o.preset() << ") -> " << o.relative_path() << "\n";
      if (o.has_normalise()) {
        out << "      loudness: " << DescribeLoudness(o.normalise()) << "\n";
      }
      if (o.has_qc() && !o.intermediate()) out << "      qc: " << DescribeGates(o.qc()) << "\n";
    }
    std::vector<std::string> encoders(job.needs().encoders().begin(), job.needs().encoders().end());
    out << "    needs: " << (encoders.empty() ? "-" : JoinStrings(encoders, ", "))
        << (job.needs().gpu() ? " + GPU" : "") << "\n";
    if (job.depends_on_size() > 0) {
      std::vector<std::string> deps(job.depends_on().begin(), job.depends_on().end());
      out << "    after: " << JoinStrings(deps, ", ") << "\n";
    }
    if (job.kind() == "reuse") {
      out << "    publishes the output cache's " << job.reuse().entry()
          << " (checked by SHA-256); should it fail the check, its " << job.fallback_size()
          << " jobs make it instead\n";
    }
    if (job.members_size() > 0) {
      std::vector<std::string> members;
      for (const auto& m : job.members()) members.push_back(m.id());
      out << "    decodes the source once for " << job.outputs_size()
          << " outputs; an output that fails runs again alone as " << JoinStrings(members, ", ")
          << "\n";
    }
    out << "    media: " << FormatNumber(job.media_duration_s(), 2) << " s, time limit "
        << FormatNumber(job.timeout_s(), 0) << " s, memory " << job.memory_mb() << " MiB\n";
    std::vector<std::string> argv(job.argv().begin(), job.argv().end());
    out << "    argv: " << ShellJoin(argv) << "\n";
    if (job.has_gpu()) {
      // Late binding (docs/gpu.md): what a GPU slot runs instead.
      std::vector<std::string> gpu(job.gpu().argv().begin(), job.gpu().argv().end());
      out << "    on a GPU slot: " << ShellJoin(gpu) << "\n";
    }
  }
  if (plan.notes_size() > 0) {
    out << "\nNotes:\n";
    for (const std::string& note : plan.notes()) out << "  " << note << "\n";
  }
  if (plan.failures_size() > 0) {
    out << "\nCannot be made from this source (" << plan.failures_size() << "):\n";
    for (const pb::PlannedFailure& f : plan.failures()) {
      out << "  " << f.deliverable() << " (" << f.preset() << ") -> " << f.relative_path() << ": "
          << f.reason() << "\n";
    }
  }
  return out.str();
}

std::string RenderPlanJson(const pb::Plan& plan) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(plan, &json, options);
  if (!status.ok()) return "{\"error\": \"cannot render the plan as JSON\"}\n";
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

std::string RenderDeliveryList(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("deliveries") || !body["deliveries"].is_array() ||
      body["deliveries"].empty()) {
    return "No deliveries.\n";
  }
  TextTable table(
      {"ID", "NAME", "STATE", "PROGRESS", "ETA", "DELIVERED", "FAILED", "PRIORITY", "OUTPUT"});
  for (const auto& d : body["deliveries"]) {
    const std::string eta = FormatEta(d);
    table.AddRow(
        {JsonString(d, "id"), JsonString(d, "name"), JsonString(d, "state"),
         FormatPercent(JsonNumber(d, "progress")), eta.empty() ? "-" : eta,
         std::to_string(JsonInt(d, "delivered")) + "/" + std::to_string(JsonInt(d, "deliverables")),
         std::to_string(JsonInt(d, "failed")), std::to_string(JsonInt(d, "priority")),
         JsonString(d, "output_dir")});
  }
  return table.Render();
}

// The QC column: "-" (no gates, or not checked yet), "ok -16.1 LUFS", or
// "FAILED black, silence".
std::string QcCell(const nlohmann::json& item) {
  if (!item.is_object() || !item.contains("qc") || !item["qc"].is_object()) return "-";
  const nlohmann::json& qc = item["qc"];
  std::vector<std::string> failed;
  if (qc.contains("gates") && qc["gates"].is_array()) {
    for (const auto& g : qc["gates"]) {
      if (g.is_object() && g.contains("passed") && g["passed"].is_boolean() &&
          !g["passed"].get<bool>()) {
        failed.push_back(JsonString(g, "gate"));
      }
    }
  }
  if (!failed.empty()) return "FAILED " + JoinStrings(failed, ", ");
  std::string out = "ok";
  if (qc.contains("integrated_lufs") && qc["integrated_lufs"].is_number()) {
    out += " " + FormatNumber(qc["integrated_lufs"].get<double>(), 1) + " LUFS";
  }
  return out;
}

std::string RenderDeliveryDetail(const nlohmann::json& d) {
  std::ostringstream out;
  out << "Delivery " << JsonString(d, "id") << " (" << JsonString(d, "name")
      << "): " << JsonString(d, "state") << ", " << JsonInt(d, "delivered") << "/"
      << JsonInt(d, "deliverables") << " delivered, " << JsonInt(d, "failed") << " failed, "
      << FormatPercent(JsonNumber(d, "progress"));
  const std::string eta = FormatEta(d);
  if (!eta.empty()) out << ", ETA " << eta;
  out << "\n";
  out << "Output: " << JsonString(d, "output_dir") << "\n";
  std::string manifest = JsonString(d, "manifest");
  if (!manifest.empty()) out << "Manifest: " << manifest << "\n";
  if (d.is_object() && d.contains("items") && d["items"].is_array() && !d["items"].empty()) {
    TextTable table(
        {"DELIVERABLE", "PRESET", "STATE", "PROGRESS", "ETA", "WORKER", "ATTEMPTS", "QC", "ERROR"});
    for (const auto& item : d["items"]) {
      const std::string item_eta = FormatEta(item);
      table.AddRow({JsonString(item, "name"), JsonString(item, "preset"), JsonString(item, "state"),
                    FormatPercent(JsonNumber(item, "progress")), item_eta.empty() ? "-" : item_eta,
                    JsonString(item, "worker"), std::to_string(JsonInt(item, "attempts")),
                    // Why a queued item cannot start says more than its last error.
                    QcCell(item),
                    JsonString(item, "waiting_for").empty() ? JsonString(item, "error")
                                                            : JsonString(item, "waiting_for")});
    }
    out << "\n" << table.Render();
  }
  return out.str();
}

std::string RenderWorkers(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("workers") || !body["workers"].is_array() ||
      body["workers"].empty()) {
    return "No workers.\n";
  }
  TextTable table(
      {"NAME", "HOST", "STATE", "CORES", "SLOTS", "THREADS", "RUNNING", "ENCODERS", "GPU"});
  for (const auto& w : body["workers"]) {
    std::vector<std::string> encoders;
    if (w.contains("encoders") && w["encoders"].is_array()) {
      for (const auto& e : w["encoders"]) {
        if (e.is_string()) encoders.push_back(e.get<std::string>());
      }
    }
    bool gpu = w.contains("gpu") && w["gpu"].is_boolean() && w["gpu"].get<bool>();
    // GPU: "-" (none), "yes" (CUDA decodes), or its GPU slots "1/2 slots"
    // (running / offered; "closed" after an encoder failed to open).
    std::string gpu_cell = gpu ? "yes" : "no";
    if (JsonInt(w, "gpu_slots") > 0) {
      const bool closed =
          w.contains("gpu_closed") && w["gpu_closed"].is_boolean() && w["gpu_closed"].get<bool>();
      gpu_cell = std::to_string(JsonInt(w, "gpu_running")) + "/" +
                 std::to_string(JsonInt(w, "gpu_slots")) + " slots" + (closed ? " (closed)" : "");
    }
    auto number = [&](const char* key) {
      int64_t v = JsonInt(w, key);
      return v > 0 ? std::to_string(v) : std::string("-");
    };
    table.AddRow({JsonString(w, "name"), JsonString(w, "host"), JsonString(w, "state"),
                  number("cores"), number("slots"), number("threads_per_slot"),
                  std::to_string(JsonInt(w, "running")),
                  encoders.empty() ? "-" : JoinStrings(encoders, ","), gpu_cell});
  }
  return table.Render();
}

std::string RenderHistory(const std::string& name, const std::vector<nlohmann::json>& manifests) {
  if (manifests.empty()) return "No versions of " + name + ".\n";
  std::ostringstream out;
  const nlohmann::json* previous = nullptr;
  for (const auto& m : manifests) {
    const int version = static_cast<int>(JsonInt(m, "version"));
    out << "v" << (version > 0 ? version : 1) << "  " << JsonString(m, "delivery") << "  "
        << JsonString(m, "state");
    if (const int64_t ms = JsonInt(m, "finished_ms"); ms > 0) {
      const std::time_t t = static_cast<std::time_t>(ms / 1000);
      char when[32];
      std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
      out << "  finished " << when;
    }
    const auto items = m.contains("deliverables") && m["deliverables"].is_array()
                           ? m["deliverables"].size()
                           : size_t{0};
    out << "\n    " << items << " deliverables: " << JsonInt(m, "encoded") << " encoded, "
        << JsonInt(m, "reused") << " reused";
    int failed = 0;
    if (items > 0) {
      for (const auto& item : m["deliverables"])
        failed += JsonString(item, "status") != "delivered";
    }
    if (failed > 0) out << ", " << failed << " failed";
    out << "\n";
    if (previous != nullptr) {
      std::vector<std::string> changed;
      for (const auto& c : DiffManifests(*previous, m)) {
        if (c.change == "reused" || c.change == "unchanged") continue;
        std::string line = c.name + " " + c.change;
        if (!c.reasons.empty()) line += " (" + JoinStrings(c.reasons, ", ") + ")";
        changed.push_back(line);
      }
      out << "    changes: " << (changed.empty() ? "none" : JoinStrings(changed, "; ")) << "\n";
    }
    previous = &m;
  }
  return out.str();
}

std::string RenderDiff(int from, int to, const std::vector<DeliverableChange>& changes) {
  std::ostringstream out;
  out << "v" << from << " -> v" << to << "\n";
  TextTable table({"DELIVERABLE", "CHANGE", "WHY"});
  for (const auto& c : changes) table.AddRow({c.name, c.change, JoinStrings(c.reasons, ", ")});
  out << table.Render();
  return out.str();
}

}  // namespace reelfarm::cli
