// ffprobe invocation and MediaInfo extraction. (SourceFacts live in
// common/source_facts.cc.)
#include "common/probe.h"

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace reelfarm {
namespace {

using nlohmann::json;

// ffprobe writes most numbers as JSON strings ("duration": "2.000000") and a
// few as numbers; these accept both and fall back when absent or "N/A".
std::string JsonString(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return "";
}

double JsonDouble(const json& obj, const char* key, double fallback = 0) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && std::isfinite(d)) return d;
  }
  return fallback;
}

int64_t JsonInt(const json& obj, const char* key, int64_t fallback = 0) {
  double d = JsonDouble(obj, key, static_cast<double>(fallback));
  return static_cast<int64_t>(std::llround(d));
}

// "25/1" -> {25, 1}, reduced; {0, 0} when unknown ("0/0", missing).
std::pair<int32_t, int32_t> ParseRational(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return {0, 0};
  long long num = std::atoll(s.substr(0, slash).c_str());
  long long den = std::atoll(s.substr(slash + 1).c_str());
  if (num <= 0 || den <= 0 || num > INT32_MAX || den > INT32_MAX) return {0, 0};
  long long g = std::gcd(num, den);
  return {static_cast<int32_t>(num / g), static_cast<int32_t>(den / g)};
}

bool IsAttachedPicture(const json& stream) {
  auto it = stream.find("disposition");
  return it != stream.end() && JsonInt(*it, "attached_pic") != 0;
}

// Clockwise degrees (0..359) needed to show the stream upright. A display
// matrix's "rotation" (av_display_rotation_get) is counter-clockwise, so it is
// negated; the legacy "rotate" tag is already clockwise.
int32_t ClockwiseRotation(const json& stream) {
  auto normalize = [](long long deg) { return static_cast<int32_t>(((deg % 360) + 360) % 360); };
  auto sd = stream.find("side_data_list");
  if (sd != stream.end() && sd->is_array()) {
    for (const json& entry : *sd) {
      if (entry.is_object() && entry.contains("rotation")) {
        return normalize(-std::llround(JsonDouble(entry, "rotation")));
      }
    }
  }
  auto tags = stream.find("tags");
  if (tags != stream.end() && tags->is_object() && tags->contains("rotate")) {
    return normalize(std::llround(JsonDouble(*tags, "rotate")));
  }
  return 0;
}

std::string FirstStderrLine(const std::string& tail) {
  size_t start = 0;
  while (start < tail.size()) {
    size_t end = tail.find('\n', start);
    if (end == std::string::npos) end = tail.size();
    std::string line = tail.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) return line;
    start = end + 1;
  }
  return "no error message";
}

}  // namespace

std::vector<std::string> ProbeArgv(const std::string& ffprobe, const std::string& path) {
  // The path always goes through the file protocol: "file:" makes ffprobe
  // take the rest literally, so a name with ':' (a would-be protocol) or a
  // leading '-' (a would-be option) is still just a local file, and with the
  // whitelist nothing but local files can ever be opened.
  return {ffprobe,         "-v",  "error", "-protocol_whitelist", "file", "-show_format",
          "-show_streams", "-of", "json",  "file:" + path};
}

std::vector<std::string> PackageProbeArgv(const std::string& ffprobe, const std::string& playlist) {
  return {ffprobe,
          "-v",
          "error",
          "-protocol_whitelist",
          "file",
          "-f",
          "hls",
          "-allowed_extensions",
          "mp4,m4s,m3u8",
          "-show_format",
          "-show_streams",
          "-show_data",
          "-of",
          "json",
          "file:" + playlist};
}

std::string VersionFromBanner(const std::string& text) {
  std::istringstream in(text);
  std::string program, word, version;
  in >> program >> word >> version;
  if (word != "version" || version.empty()) return "";
  return version;
}

StatusOr<std::string> ProgramVersion(ProcessRunner& runner, const std::string& program) {
  ProcessOptions opts;
  opts.argv = {program, "-hide_banner", "-version"};
  opts.timeout_s = 30;
  opts.stderr_tail_bytes = 1024;
  StatusOr<ProcessResult> run = runner.Run(opts);
  if (!run.ok()) return run.status();
  if (!run->Succeeded()) {
    return Status::Unavailable(program + " -version failed: " + run->Describe());
  }
  std::string version = VersionFromBanner(run->stdout_data);
  if (version.empty()) return Status::Unavailable(program + " -version printed no version");
  return version;
}

StatusOr<std::string> RunProbe(ProcessRunner& runner, const std::string& ffprobe,
                               const std::string& path, double timeout_s) {
  return RunProbeArgv(runner, ProbeArgv(ffprobe, path), path, timeout_s);
}

StatusOr<std::string> RunProbeArgv(ProcessRunner& runner, std::vector<std::string> argv,
                                   const std::string& path, double timeout_s) {
  ProcessOptions opts;
  opts.argv = std::move(argv);
  opts.timeout_s = timeout_s;
  opts.stderr_tail_bytes = 4096;
  StatusOr<ProcessResult> run = runner.Run(opts);
  if (!run.ok()) return run.status();
  const ProcessResult& r = *run;
  if (r.timed_out) {
    return Status::DeadlineExceeded("ffprobe timed out after " +
                                    std::to_string(static_cast<int>(timeout_s)) + " s on " + path);
  }
  if (r.cancelled) return Status::Cancelled("ffprobe on " + path + " was cancelled");
  if (r.term_signal != 0) {
    return Status::Internal("ffprobe was " + r.Describe() + " while reading " + path);
  }
  if (r.exit_code != 0) {
    return Status::InvalidArgument("ffprobe could not read " + path + ": " +
                                   FirstStderrLine(r.stderr_tail));
  }
  return r.stdout_data;
}

StatusOr<pb::MediaInfo> MediaInfoFromProbeJson(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::InvalidArgument("ffprobe output is not a JSON object");
  }
  pb::MediaInfo info;
  const json empty = json::object();
  const json& format = doc.contains("format") && doc["format"].is_object() ? doc["format"] : empty;
  info.set_format_name(JsonString(format, "format_name"));

  double stream_duration = 0;
  auto streams = doc.find("streams");
  if (streams != doc.end() && streams->is_array()) {
    for (const json& s : *streams) {
      if (!s.is_object()) continue;
      const std::string type = JsonString(s, "codec_type");
      if (type == "video" && !info.has_video() && !IsAttachedPicture(s)) {
        info.set_has_video(true);
        info.set_video_codec(JsonString(s, "codec_name"));
        info.set_width(static_cast<int32_t>(JsonInt(s, "width")));
        info.set_height(static_cast<int32_t>(JsonInt(s, "height")));
        info.set_pix_fmt(JsonString(s, "pix_fmt"));
        info.set_video_profile(JsonString(s, "profile"));
        auto fps = ParseRational(JsonString(s, "avg_frame_rate"));
        if (fps.first == 0) fps = ParseRational(JsonString(s, "r_frame_rate"));
        info.set_fps_num(fps.first);
        info.set_fps_den(fps.second);
        info.set_rotation(ClockwiseRotation(s));
        for (auto [key, set] : std::initializer_list<
                 std::pair<const char*, void (pb::MediaInfo::*)(const std::string&)>>{
                 {"field_order", &pb::MediaInfo::set_field_order},
                 {"color_primaries", &pb::MediaInfo::set_color_primaries},
                 {"color_transfer", &pb::MediaInfo::set_color_transfer},
                 {"color_space", &pb::MediaInfo::set_color_space},
                 {"color_range", &pb::MediaInfo::set_color_range}}) {
          std::string v = JsonString(s, key);
          (info.*set)(v == "unknown" ? std::string() : v);
        }
        if (stream_duration <= 0) stream_duration = JsonDouble(s, "duration");
      } else if (type == "audio" && !info.has_audio()) {
        info.set_has_audio(true);
        info.set_audio_codec(JsonString(s, "codec_name"));
        info.set_audio_channels(static_cast<int32_t>(JsonInt(s, "channels")));
        info.set_audio_sample_rate(static_cast<int32_t>(JsonInt(s, "sample_rate")));
        if (stream_duration <= 0) stream_duration = JsonDouble(s, "duration");
      } else if (type == "subtitle" && !info.has_subtitle()) {
        info.set_has_subtitle(true);
        info.set_subtitle_codec(JsonString(s, "codec_name"));
      }
    }
  }
  double duration = JsonDouble(format, "duration");
  info.set_duration_s(duration > 0 ? duration : stream_duration);
  return info;
}

}  // namespace reelfarm
