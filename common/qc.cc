#include "common/qc.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

namespace reelfarm {
namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

pb::LoudnessTarget Target(const char* standard, double lufs, double tp) {
  pb::LoudnessTarget t;
  t.set_standard(standard);
  t.set_integrated_lufs(lufs);
  t.set_true_peak_db(tp);
  return t;
}

// The number after `key` in `line` ("black_start:3", "silence_end: 12.01").
std::optional<double> NumberAfter(std::string_view line, std::string_view key) {
  size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::string rest(line.substr(at + key.size()));
  const char* p = rest.c_str();
  while (*p == ' ' || *p == ':') ++p;
  char* end = nullptr;
  double v = std::strtod(p, &end);
  if (end == p || !std::isfinite(v)) return std::nullopt;
  return v;
}

// loudnorm prints its figures as strings: "-29.98", "-inf", "inf".
std::optional<double> JsonFigure(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  const std::string& s = it->get_ref<const std::string&>();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

double Overlap(const pb::Segment& a, double start, double end) {
  return std::max(0.0, std::min(a.end_s(), end) - std::max(a.start_s(), start));
}

// Seconds of [start, end) that none of `excused` (widened by `slack` on
// each side) covers. REQUIRES: excused sorted and disjoint.
double Uncovered(double start, double end,
                 const google::protobuf::RepeatedPtrField<pb::Segment>& excused, double slack) {
  double covered = 0;
  for (const auto& s : excused) {
    pb::Segment wide;
    wide.set_start_s(s.start_s() - slack);
    wide.set_end_s(s.end_s() + slack);
    covered += Overlap(wide, start, end);
  }
  return std::max(0.0, (end - start) - covered);
}

// The segment gate `name` over `segments` (what, e.g. "black"): fails on a
// segment longer than max_s once what the source also has is set aside.
void SegmentGate(const std::string& name, const std::string& what, double max_s,
                 const google::protobuf::RepeatedPtrField<pb::Segment>& segments,
                 const google::protobuf::RepeatedPtrField<pb::Segment>* source,
                 pb::QcReport* report) {
  constexpr double kSlack = 0.5;  // detectors' timing differs by a few frames
  pb::QcGateResult* g = report->add_gates();
  g->set_gate(name);
  g->set_limit("at most " + Fixed(max_s, 2) + " s" +
               (source != nullptr ? " (beyond what the source has)" : ""));
  g->set_passed(true);
  double worst_uncovered = -1;
  const pb::Segment* worst = nullptr;
  int excused = 0;
  for (const auto& s : segments) {
    const double length = s.end_s() - s.start_s();
    if (length <= max_s) continue;
    const double uncovered =
        source != nullptr ? Uncovered(s.start_s(), s.end_s(), *source, kSlack) : length;
    if (uncovered <= max_s) {
      ++excused;
      continue;
    }
    if (uncovered > worst_uncovered) {
      worst_uncovered = uncovered;
      worst = &s;
    }
  }
  if (worst != nullptr) {
    g->set_passed(false);
    g->set_measured(Fixed(worst->end_s() - worst->start_s(), 2) + " s of " + what + " from " +
                    Fixed(worst->start_s(), 2) + " s" +
                    (source != nullptr && worst_uncovered < worst->end_s() - worst->start_s()
                         ? " (" + Fixed(worst_uncovered, 2) + " s of it not in the source)"
                         : ""));
  } else {
    double longest = 0;
    for (const auto& s : segments) longest = std::max(longest, s.end_s() - s.start_s());
    g->set_measured(segments.empty() ? "none"
                                     : "longest " + Fixed(longest, 2) + " s" +
                                           (excused > 0 ? ", as in the source" : ""));
  }
}

}  // namespace

std::optional<pb::LoudnessTarget> LoudnessStandard(const std::string& name) {
  // EBU R128 (broadcast, Europe); ATSC A/85 (broadcast, US); "web": Apple,
  // AES TD1008 streaming; "social": YouTube, Spotify and most social apps.
  if (name == "ebu-r128") return Target("ebu-r128", -23, -1);
  if (name == "atsc-a85") return Target("atsc-a85", -24, -2);
  if (name == "web") return Target("web", -16, -1);
  if (name == "social") return Target("social", -14, -1);
  return std::nullopt;
}

std::vector<std::string> LoudnessStandardNames() {
  return {"ebu-r128", "atsc-a85", "web", "social"};
}

std::vector<std::string> DetectorArgs(const DetectorOptions& o) {
  std::vector<std::string> graph;
  std::vector<std::string> maps;
  const std::string picture = "[0:v:0]setpts=PTS-STARTPTS";
  std::string detect_in = picture + ",";  // where each chain takes the picture
  std::string quality_in = picture + ",";
  if (o.video && o.quality) {
    graph.push_back(picture + ",split[pd][pq]");
    detect_in = "[pd]";
    quality_in = "[pq]";
  }
  if (o.video) {
    // blackdetect's defaults: a picture is black when 98 % of its pixels
    // are under 10 % luma; freezedetect's: -60 dB of noise between frames.
    graph.push_back(detect_in + "blackdetect=d=" + Fixed(o.black_min_s, 3) +
                    ",freezedetect=d=" + Fixed(o.freeze_min_s, 3) + "[v]");
    maps.insert(maps.end(), {"-map", "[v]"});
  }
  if (o.quality) {
    // The same frames of both (by number: both run at the source's rate
    // from 0), then SSIM and PSNR over them.
    const std::string sample =
        "select='not(mod(n\\," + std::to_string(std::max(1, o.sample_every)) + "))'";
    graph.push_back(quality_in + sample + ",split[q0][q1]");
    graph.push_back("[1:v:0]setpts=PTS-STARTPTS," + o.reference_filter + "," + sample +
                    ",split[r0][r1]");
    graph.push_back("[q0][r0]ssim[qs]");
    graph.push_back("[q1][r1]psnr[qp]");
    maps.insert(maps.end(), {"-map", "[qs]", "-map", "[qp]"});
  }
  if (o.audio || o.loudness) {
    std::string chain = "[0:a:0]asetpts=PTS-STARTPTS";
    if (o.audio) {
      chain += ",silencedetect=n=" + Fixed(o.silence_threshold_db, 2) +
               "dB:d=" + Fixed(o.silence_min_s, 3);
    }
    // loudnorm measures as ebur128 does (BS.1770 integrated loudness, LRA,
    // 4x oversampled true peak) and prints it as JSON.
    if (o.loudness) chain += ",loudnorm=print_format=json";
    graph.push_back(chain + "[a]");
    maps.insert(maps.end(), {"-map", "[a]"});
  }
  std::string joined;
  for (const auto& g : graph) joined += (joined.empty() ? "" : ";") + g;
  std::vector<std::string> args = {"-filter_complex", joined};
  args.insert(args.end(), maps.begin(), maps.end());
  args.insert(args.end(), {"-f", "null", "-"});
  return args;
}

AnalysisParser::AnalysisParser(const DetectorOptions& o) : options_(o) {
  result_.set_video_analysed(o.video);
  result_.set_audio_analysed(o.audio);
}

void AnalysisParser::Open(std::optional<double>* start, double t) {
  if (!*start) *start = t;
}

void AnalysisParser::Close(std::optional<double>* start, double t,
                           google::protobuf::RepeatedPtrField<pb::Segment>* into) {
  if (!*start) return;
  const double from = **start;
  start->reset();
  if (t < from) return;
  // Reports that touch (freezedetect splits a long freeze) become one.
  if (!into->empty() && from - into->rbegin()->end_s() < 0.05) {
    into->rbegin()->set_end_s(std::max(into->rbegin()->end_s(), t));
    return;
  }
  if (into->size() >= kMaxSegments) return;
  pb::Segment* s = into->Add();
  s->set_start_s(from);
  s->set_end_s(t);
}

void AnalysisParser::Feed(std::string_view line) {
  // The loudnorm block: a line "{", figures, a line "}".
  if (options_.loudness) {
    std::string_view trimmed = line;
    while (!trimmed.empty() && (trimmed.back() == '\r' || trimmed.back() == ' ')) {
      trimmed.remove_suffix(1);
    }
    if (trimmed == "{") {
      in_json_ = true;
      json_ = "{";
      return;
    }
    if (in_json_) {
      if (json_.size() < 4096) json_.append(line).push_back('\n');
      if (trimmed == "}") {
        in_json_ = false;
        nlohmann::json j = nlohmann::json::parse(json_, nullptr, false);
        auto i = JsonFigure(j, "input_i");
        auto tp = JsonFigure(j, "input_tp");
        auto lra = JsonFigure(j, "input_lra");
        auto thresh = JsonFigure(j, "input_thresh");
        if (i && tp && lra && thresh) {
          result_.set_loudness_measured(true);
          // Under the absolute gate (-70 LUFS) there is nothing to measure.
          result_.set_silent(!std::isfinite(*i) || *i <= -70);
          result_.set_integrated_lufs(std::isfinite(*i) ? *i : -70);
          result_.set_true_peak_db(std::isfinite(*tp) ? *tp : -100);
          result_.set_lra(std::isfinite(*lra) ? *lra : 0);
          result_.set_threshold_lufs(std::isfinite(*thresh) ? *thresh : -70);
        }
      }
      return;
    }
  }
  if (options_.quality && line.find("] SSIM ") != std::string_view::npos) {
    if (auto v = NumberAfter(line, "All:")) {
      result_.set_ssim(*v);
      result_.set_quality_measured(true);
    }
    return;
  }
  if (options_.quality && line.find("] PSNR ") != std::string_view::npos) {
    const size_t at = line.find("average:");
    if (at != std::string_view::npos && line.substr(at + 8, 3) == "inf") {
      result_.set_psnr_db(kIdenticalPsnrDb);
    } else if (auto v = NumberAfter(line, "average:")) {
      result_.set_psnr_db(std::min(*v, kIdenticalPsnrDb));
    }
    return;
  }
  if (line.find("blackdetect") != std::string_view::npos) {
    auto start = NumberAfter(line, "black_start");
    auto end = NumberAfter(line, "black_end");
    if (start && end) {
      black_ = *start;
      Close(&black_, *end, result_.mutable_black());
    }
  } else if (line.find("freezedetect") != std::string_view::npos) {
    if (auto t = NumberAfter(line, "freeze_start")) Open(&freeze_, *t);
    if (auto t = NumberAfter(line, "freeze_end")) Close(&freeze_, *t, result_.mutable_freeze());
  } else if (line.find("silencedetect") != std::string_view::npos) {
    if (auto t = NumberAfter(line, "silence_start")) Open(&silence_, std::max(0.0, *t));
    if (auto t = NumberAfter(line, "silence_end")) Close(&silence_, *t, result_.mutable_silence());
  }
}

pb::MediaAnalysis AnalysisParser::Finish(double duration_s) {
  Close(&black_, duration_s, result_.mutable_black());
  Close(&freeze_, duration_s, result_.mutable_freeze());
  Close(&silence_, duration_s, result_.mutable_silence());
  return result_;
}

double NormalisationGain(const pb::LoudnessTarget& target, const pb::MediaAnalysis& source) {
  if (!source.loudness_measured() || source.silent()) return 0;
  return target.integrated_lufs() - source.integrated_lufs();
}

std::string LoudnormFilter(const pb::LoudnessTarget& target, const pb::MediaAnalysis& source) {
  if (!source.loudness_measured() || source.silent()) return "anull";
  // loudnorm takes linear mode only when the source's range fits the
  // target's and its peaks stay under the ceiling after the gain, and it
  // reads a measured range of 0 (a steady tone) as "not given": 0.1 LU
  // says the same without that. A target range left unset keeps the
  // source's (loudnorm allows 1 to 50 LU).
  const double measured_lra = std::max(source.lra(), 0.1);
  const double lra =
      target.lra() > 0 ? target.lra() : std::clamp(std::ceil(measured_lra + 1), 1.0, 50.0);
  return "loudnorm=I=" + Fixed(target.integrated_lufs(), 1) +
         ":TP=" + Fixed(target.true_peak_db(), 1) + ":LRA=" + Fixed(lra, 1) +
         ":measured_I=" + Fixed(source.integrated_lufs(), 2) +
         ":measured_TP=" + Fixed(source.true_peak_db(), 2) +
         ":measured_LRA=" + Fixed(measured_lra, 2) +
         ":measured_thresh=" + Fixed(source.threshold_lufs(), 2) +
         ":offset=0:linear=true:print_format=none";
}

std::string LoudnormPlaceholder(int output_index) {
  return "{loudnorm:" + std::to_string(output_index) + "}";
}

StatusOr<std::vector<std::string>> FillLoudnorm(const std::vector<std::string>& argv,
                                                const pb::Job& job,
                                                const pb::MediaAnalysis* source) {
  std::vector<std::string> out = argv;
  for (auto& a : out) {
    if (a.rfind("{loudnorm:", 0) != 0 || a.back() != '}') continue;
    char* end = nullptr;
    const long n = std::strtol(a.c_str() + 10, &end, 10);
    if (end == a.c_str() + 10 || *end != '}' || n < 0 || n >= job.outputs_size() ||
        !job.outputs(static_cast<int>(n)).has_normalise()) {
      return Status::InvalidArgument("the job's command has " + a +
                                     ", which names no output to normalise");
    }
    if (source == nullptr || !source->loudness_measured()) {
      return Status::InvalidArgument(
          "the job normalises loudness, and the source's measurement did not reach it");
    }
    a = LoudnormFilter(job.outputs(static_cast<int>(n)).normalise(), *source);
  }
  return out;
}

DetectorOptions QcDetectors(const pb::QcGates& gates, bool has_video, bool has_audio,
                            double silence_threshold_db) {
  DetectorOptions o;
  o.video = has_video && (gates.black_max_s() > 0 || gates.freeze_max_s() > 0);
  // Reported from half the limit: a segment the gate may excuse in part is
  // still measured whole.
  if (gates.black_max_s() > 0) o.black_min_s = gates.black_max_s() / 2;
  if (gates.freeze_max_s() > 0) o.freeze_min_s = gates.freeze_max_s() / 2;
  o.audio = has_audio && gates.silence_max_s() > 0;
  if (gates.silence_max_s() > 0) o.silence_min_s = gates.silence_max_s() / 2;
  o.silence_threshold_db = silence_threshold_db;
  o.loudness = has_audio;  // always reported, gate or not
  o.quality = has_video && (gates.ssim_min() > 0 || gates.psnr_min_db() > 0) &&
              !gates.reference_filter().empty();
  if (o.quality) {
    o.reference_filter = gates.reference_filter();
    o.sample_every = std::max(1, gates.sample_every());
  }
  return o;
}

DetectorOptions DetectorsIn(const std::vector<std::string>& argv) {
  DetectorOptions o;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] != "-filter_complex") continue;
    const std::string& g = argv[i + 1];
    o.video = g.find("blackdetect=") != std::string::npos;
    o.audio = g.find("silencedetect=") != std::string::npos;
    o.loudness = g.find("loudnorm=print_format=json") != std::string::npos;
  }
  return o;
}

pb::QcReport EvaluateQc(const pb::QcGates& gates, const pb::MediaAnalysis& output,
                        const pb::MediaAnalysis* source, double gain_db) {
  pb::QcReport report;
  *report.mutable_measured() = output;
  report.set_gain_db(gain_db);
  const pb::MediaAnalysis* excuse = gates.allow_in_source() ? source : nullptr;
  if (gates.check_loudness() && output.loudness_measured()) {
    const pb::LoudnessTarget& t = gates.loudness();
    const double tol = gates.loudness_tolerance_lu() > 0 ? gates.loudness_tolerance_lu() : 1.0;
    pb::QcGateResult* g = report.add_gates();
    g->set_gate("loudness");
    g->set_limit(Fixed(t.integrated_lufs(), 1) + " LUFS +-" + Fixed(tol, 1) + " LU" +
                 (t.standard().empty() ? "" : " (" + t.standard() + ")"));
    if (output.silent()) {
      // A silent programme has no loudness to judge; silent only because
      // the source is.
      const bool source_silent = source != nullptr && source->silent();
      g->set_passed(source_silent);
      g->set_measured(source_silent ? "silent, as the source" : "silent");
    } else {
      g->set_measured(Fixed(output.integrated_lufs(), 1) + " LUFS");
      g->set_passed(std::abs(output.integrated_lufs() - t.integrated_lufs()) <= tol);
    }
    pb::QcGateResult* p = report.add_gates();
    p->set_gate("true_peak");
    p->set_limit("at most " + Fixed(t.true_peak_db(), 1) + " dBTP");
    p->set_measured(output.silent() ? "silent" : Fixed(output.true_peak_db(), 1) + " dBTP");
    p->set_passed(output.silent() || output.true_peak_db() <= t.true_peak_db() + 0.05);
  }
  if (gates.black_max_s() > 0 && output.video_analysed()) {
    SegmentGate("black", "black", gates.black_max_s(), output.black(),
                excuse != nullptr && excuse->video_analysed() ? &excuse->black() : nullptr,
                &report);
  }
  if (gates.freeze_max_s() > 0 && output.video_analysed()) {
    SegmentGate("freeze", "frozen picture", gates.freeze_max_s(), output.freeze(),
                excuse != nullptr && excuse->video_analysed() ? &excuse->freeze() : nullptr,
                &report);
  }
  if (gates.silence_max_s() > 0 && output.audio_analysed()) {
    SegmentGate("silence", "silence", gates.silence_max_s(), output.silence(),
                excuse != nullptr && excuse->audio_analysed() ? &excuse->silence() : nullptr,
                &report);
  }
  for (const auto& [gate, floor] :
       {std::pair<const char*, double>{"ssim", gates.ssim_min()}, {"psnr", gates.psnr_min_db()}}) {
    if (floor <= 0) continue;
    const bool ssim = std::string(gate) == "ssim";
    const double got = ssim ? output.ssim() : output.psnr_db();
    pb::QcGateResult* g = report.add_gates();
    g->set_gate(gate);
    std::ostringstream limit;
    limit << "at least " << floor << (ssim ? "" : " dB") << " against the source";
    g->set_limit(limit.str());
    if (!output.quality_measured()) {
      g->set_measured("not measured");
      g->set_passed(false);
      continue;
    }
    g->set_measured(ssim ? Fixed(got, 4) : Fixed(got, 2) + " dB");
    g->set_passed(got >= floor);
  }
  bool passed = true;
  for (const auto& g : report.gates()) passed = passed && g.passed();
  report.set_passed(passed);
  return report;
}

std::string QcFailureSummary(const pb::QcReport& report) {
  std::string out;
  for (const auto& g : report.gates()) {
    if (g.passed()) continue;
    out += (out.empty() ? "" : "; ") + std::string("QC gate ") + g.gate() +
           " failed: " + g.measured() + " (" + g.limit() + ")";
  }
  return out;
}

std::string QcRefusal(const std::string& deliverable, const pb::QcReport& report) {
  return "QC failed for " + deliverable + ": " + QcFailureSummary(report);
}

}  // namespace reelfarm
