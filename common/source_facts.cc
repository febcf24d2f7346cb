// SourceFacts from ffprobe's JSON: the planner's only view of a source.
//
// Conventions worth knowing:
// - ffprobe's display-matrix "rotation" is counterclockwise (it is
//   av_display_rotation_get()); FFmpeg's own autorotation turns a frame with
//   rotation -90 by 90 degrees clockwise. SourceFacts::rotation is the
//   clockwise turn that shows the picture upright, so it is -rotation mod 360.
//   The legacy "rotate" stream tag (older muxers) already is clockwise.
// - The frame rate is variable when r_frame_rate and avg_frame_rate differ by
//   more than 1%; a variable rate is snapped to the nearest common rate
//   within 2%, else the average rounded to a whole number.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/probe.h"

namespace reelfarm {
namespace {

using nlohmann::json;

// Demuxers that are not a single local media file (playlists, lists, image
// sequences, generators, subtitles-only, network and raw-data formats).
constexpr const char* kDeniedFormats[] = {
    "hls",     "applehttp",  "dash",       "concat",   "image2", "image2pipe", "lavfi", "tty",
    "ansi",    "bin",        "xbin",       "idf",      "adf",    "srt",        "ass",   "ssa",
    "webvtt",  "subviewer",  "subviewer1", "microdvd", "mpl2",   "jacosub",    "sami",  "realtext",
    "stl",     "pjs",        "vplayer",    "aqtitle",  "lrc",    "scc",        "mcc",   "sup",
    "vobsub",  "ffmetadata", "sdp",        "rtp",      "rtsp",   "data",       "fifo",  "tee",
    "unknown", "libcdio",    "bluray",
};

bool IsDeniedFormat(const std::string& name) {
  for (const char* denied : kDeniedFormats) {
    if (name == denied) return true;
  }
  // Single-image pipe demuxers: png_pipe, jpeg_pipe, webp_pipe, ...
  const std::string suffix = "_pipe";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) parts.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

// ffprobe writes most numbers as strings ("2.000000", "48000"); accepts both.
bool NumberField(const json& obj, const char* key, double* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return false;
  if (it->is_number()) {
    *out = it->get<double>();
    return std::isfinite(*out);
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty() || s == "N/A") return false;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) return false;
    *out = v;
    return true;
  }
  return false;
}

// Bits per component of a pixel format by its name: "yuv420p10le" 10,
// "gbrpf32le" 32, "yuv422p" 8; 8 when the name says nothing.
int BitDepthOf(const std::string& pix_fmt) {
  for (const char* marker : {"p16", "p14", "p12", "p10", "p9", "f32", "f16"}) {
    if (pix_fmt.find(marker) != std::string::npos) return std::atoi(marker + 1);
  }
  if (pix_fmt == "v210" || pix_fmt == "x2rgb10le" || pix_fmt == "x2bgr10le") return 10;
  return 8;
}

std::string StringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_string()) return it->get<std::string>();
  return "";
}

// "34000/50000" (or "0.68") scaled by `unit`, rounded: 0 when unreadable.
int64_t Scaled(const json& obj, const char* key, double unit) {
  std::string text = obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>()
                     : obj.contains(key) && obj[key].is_number()
                         ? std::to_string(obj[key].get<double>())
                         : std::string();
  if (text.empty()) return 0;
  double num = std::strtod(text.c_str(), nullptr), den = 1;
  if (size_t slash = text.find('/'); slash != std::string::npos) {
    den = std::strtod(text.c_str() + slash + 1, nullptr);
  }
  if (!(den > 0) || !std::isfinite(num)) return 0;
  return std::llround(num / den * unit);
}

// Mastering display and content light level from an ffprobe side data list
// (a stream's, from its container, or a frame's, from SEI).
void ApplyHdrSideData(const json& list, pb::SourceFacts* facts) {
  if (!list.is_array()) return;
  for (const json& sd : list) {
    if (!sd.is_object()) continue;
    const std::string type = StringField(sd, "side_data_type");
    if (type == "Mastering display metadata" && sd.contains("red_x")) {
      auto xy = [&](const char* x, const char* y) {
        return "(" + std::to_string(Scaled(sd, x, 50000)) + "," +
               std::to_string(Scaled(sd, y, 50000)) + ")";
      };
      facts->set_mastering_display("G" + xy("green_x", "green_y") + "B" + xy("blue_x", "blue_y") +
                                   "R" + xy("red_x", "red_y") + "WP" +
                                   xy("white_point_x", "white_point_y") + "L(" +
                                   std::to_string(Scaled(sd, "max_luminance", 10000)) + "," +
                                   std::to_string(Scaled(sd, "min_luminance", 10000)) + ")");
    } else if (type == "Content light level metadata") {
      facts->set_max_cll(static_cast<int32_t>(Scaled(sd, "max_content", 1)));
      facts->set_max_fall(static_cast<int32_t>(Scaled(sd, "max_average", 1)));
    }
  }
}

// "30000/1001" or "16:9" -> num, den; false unless both are positive.
bool ParseRatio(const std::string& s, char sep, int64_t* num, int64_t* den) {
  size_t pos = s.find(sep);
  if (pos == std::string::npos) return false;
  char* end = nullptr;
  long long n = std::strtoll(s.c_str(), &end, 10);
  if (end != s.c_str() + pos) return false;
  const char* d_start = s.c_str() + pos + 1;
  long long d = std::strtoll(d_start, &end, 10);
  if (end == d_start || *end != '\0') return false;
  if (n <= 0 || d <= 0) return false;
  *num = n;
  *den = d;
  return true;
}

int64_t Gcd(int64_t a, int64_t b) {
  while (b != 0) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int RoundEven(double x) {
  long v = std::lround(x / 2.0) * 2;
  return static_cast<int>(v < 2 ? 2 : v);
}

struct Rate {
  int64_t num = 0;
  int64_t den = 0;
  double value() const { return den > 0 ? static_cast<double>(num) / den : 0; }
};

// The common rates a variable rate is snapped to.
constexpr Rate kCommonRates[] = {{24000, 1001}, {24, 1}, {25, 1},       {30000, 1001}, {30, 1},
                                 {48, 1},       {50, 1}, {60000, 1001}, {60, 1}};

// Nearest common rate within `tolerance` (relative), or nullopt.
std::optional<Rate> NearestCommonRate(double fps, double tolerance) {
  std::optional<Rate> best;
  double best_err = tolerance;
  for (const Rate& r : kCommonRates) {
    double err = std::fabs(fps - r.value()) / r.value();
    if (err <= best_err) {
      best_err = err;
      best = r;
    }
  }
  return best;
}

// Clockwise degrees in {0, 90, 180, 270} from any angle (nearest quarter).
int NormalizeClockwise(double degrees) {
  long quarter = std::lround(degrees / 90.0);
  int cw = static_cast<int>(((quarter % 4) + 4) % 4) * 90;
  return cw;
}

int VideoRotation(const json& stream) {
  auto sdl = stream.find("side_data_list");
  if (sdl != stream.end() && sdl->is_array()) {
    for (const json& sd : *sdl) {
      double ccw = 0;
      if (sd.is_object() && NumberField(sd, "rotation", &ccw)) return NormalizeClockwise(-ccw);
    }
  }
  auto tags = stream.find("tags");
  if (tags != stream.end() && tags->is_object()) {
    double cw = 0;
    if (NumberField(*tags, "rotate", &cw)) return NormalizeClockwise(cw);
  }
  return 0;
}

bool IsAttachedPicture(const json& stream) {
  auto disp = stream.find("disposition");
  if (disp == stream.end() || !disp->is_object()) return false;
  double v = 0;
  return NumberField(*disp, "attached_pic", &v) && v != 0;
}

constexpr size_t kSniffBytes = 4096;

std::string LowerAscii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool StartsWith(const std::string& s, size_t pos, const char* prefix) {
  return s.compare(pos, std::strlen(prefix), prefix) == 0;
}

// Skips ID3v2 tags: FFmpeg's format probe looks past one before matching a
// demuxer, so "ID3...#EXTM3U" is still read as an HLS playlist.
size_t SkipId3v2(const std::string& s) {
  size_t pos = 0;
  while (s.size() >= pos + 10 && StartsWith(s, pos, "ID3")) {
    const auto* b = reinterpret_cast<const unsigned char*>(s.data() + pos);
    if ((b[6] | b[7] | b[8] | b[9]) & 0x80) break;  // not a syncsafe size
    size_t len = (size_t{b[6]} << 21) | (size_t{b[7]} << 14) | (size_t{b[8]} << 7) | b[9];
    pos += 10 + len + ((b[5] & 0x10) ? 10 : 0);
  }
  return pos;
}

// Why the first bytes of a file look like a playlist or list that FFmpeg
// would follow (HLS, DASH or any XML, ffconcat / concat "file" lines, SDP,
// ffmetadata), whatever the file is called; "" when they do not.
std::string ListContentProblem(const std::string& head) {
  size_t pos = SkipId3v2(head);
  if (pos >= head.size()) return "";
  std::string text = LowerAscii(head.substr(pos));
  if (StartsWith(text, 0, "\xef\xbb\xbf")) text.erase(0, 3);
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const std::string refused =
      "; playlists and lists are refused whatever the file is called (they make FFmpeg open "
      "other files or URLs): the source must be one local media file";
  if (StartsWith(text, first, "#extm3u")) return "is an HLS/M3U playlist" + refused;
  if (StartsWith(text, first, "ffconcat")) return "is an ffconcat list" + refused;
  if (StartsWith(text, first, ";ffmetadata")) return "is an FFmpeg metadata file" + refused;
  if (StartsWith(text, first, "v=0")) return "is an SDP session description" + refused;
  // No media container starts with '<'; FFmpeg's dash demuxer finds "<MPD"
  // anywhere in a growing probe buffer, so any XML or HTML is refused.
  if (text[first] == '<') return "is an XML or HTML document (e.g. a DASH manifest)" + refused;
  // A concat list without its header: the first line that is not blank or a
  // comment reads `file PATH` or `file 'PATH'`.
  size_t line = 0;
  while (line < text.size()) {
    size_t end = text.find('\n', line);
    if (end == std::string::npos) end = text.size();
    size_t start = text.find_first_not_of(" \t\r", line);
    if (start != std::string::npos && start < end && text[start] != '#') {
      if (StartsWith(text, start, "file") && start + 4 < end &&
          (text[start + 4] == ' ' || text[start + 4] == '\t' || text[start + 4] == '\'' ||
           text[start + 4] == '"')) {
        return "is a concat list (`file` lines)" + refused;
      }
      break;
    }
    line = end + 1;
  }
  return "";
}

}  // namespace

StatusOr<pb::SourceFacts> SourceFactsFromProbeJson(const std::string& json_text,
                                                   const std::string& path) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Status::InvalidArgument("ffprobe did not describe " + path +
                                   " (its output is not JSON).");
  }
  auto format_it = root.find("format");
  if (format_it == root.end() || !format_it->is_object()) {
    return Status::InvalidArgument("ffprobe found no container format in " + path + ".");
  }
  const json& format = *format_it;
  const std::string format_names = StringField(format, "format_name");
  std::vector<std::string> names = SplitComma(format_names);
  if (names.empty()) {
    return Status::InvalidArgument("ffprobe found no container format in " + path + ".");
  }
  for (const std::string& name : names) {
    if (IsDeniedFormat(name)) {
      return Status::InvalidArgument(path + " is read by FFmpeg's '" + name +
                                     "' demuxer, which is not a media file reelfarm accepts as a "
                                     "source (playlists, lists, image sequences, subtitles and "
                                     "network formats are refused).");
    }
  }

  pb::SourceFacts facts;
  facts.set_path(path);
  facts.set_format_name(names.front());
  double size = 0;
  if (NumberField(format, "size", &size)) facts.set_size_bytes(static_cast<int64_t>(size));

  const json* video = nullptr;
  const json* audio = nullptr;
  auto streams_it = root.find("streams");
  if (streams_it != root.end() && streams_it->is_array()) {
    for (const json& s : *streams_it) {
      if (!s.is_object()) continue;
      const std::string type = StringField(s, "codec_type");
      if (type == "video" && video == nullptr && !IsAttachedPicture(s)) video = &s;
      if (type == "audio" && audio == nullptr) audio = &s;
    }
  }
  if (video == nullptr && audio == nullptr) {
    return Status::InvalidArgument(path + " has neither a video nor an audio stream.");
  }

  double duration = 0;
  if (!NumberField(format, "duration", &duration) || duration <= 0) {
    duration = 0;
    for (const json* s : {video, audio}) {
      double d = 0;
      if (s != nullptr && NumberField(*s, "duration", &d) && d > duration) duration = d;
    }
  }
  if (!(duration > 0)) {
    return Status::InvalidArgument(path +
                                   " has no known duration; it does not look like a finished "
                                   "media file.");
  }
  facts.set_duration_s(duration);
  for (const json* s : {video, audio}) {
    double d = 0;
    if (s == nullptr || !NumberField(*s, "duration", &d) || !(d > 0)) continue;
    if (s == video) facts.set_video_duration_s(d);
    if (s == audio) facts.set_audio_duration_s(d);
  }

  if (video != nullptr) {
    double w = 0, h = 0;
    if (!NumberField(*video, "width", &w) || !NumberField(*video, "height", &h) || w <= 0 ||
        h <= 0) {
      return Status::InvalidArgument("the video stream of " + path + " has no frame size.");
    }
    facts.set_has_video(true);
    facts.set_video_codec(StringField(*video, "codec_name"));
    facts.set_width(static_cast<int>(w));
    facts.set_height(static_cast<int>(h));
    facts.set_pix_fmt(StringField(*video, "pix_fmt"));
    facts.set_bit_depth(BitDepthOf(facts.pix_fmt()));
    // Scan and colour: ffprobe's names, "" for what the stream leaves unsaid.
    auto known = [&](const char* key) {
      std::string v = StringField(*video, key);
      return v == "unknown" ? std::string() : v;
    };
    facts.set_field_order(known("field_order"));
    facts.set_color_primaries(known("color_primaries"));
    facts.set_color_transfer(known("color_transfer"));
    facts.set_color_space(known("color_space"));
    facts.set_color_range(known("color_range"));
    // HDR metadata the container carries (MOV/MP4 mdcv and clli, Matroska's
    // MasteringMetadata); FFmpeg copies it into what it writes.
    if (video->contains("side_data_list")) {
      ApplyHdrSideData(video->at("side_data_list"), &facts);
      facts.set_hdr_metadata_in_container(!facts.mastering_display().empty() ||
                                          facts.max_cll() > 0);
    }

    int64_t sar_num = 1, sar_den = 1;
    if (!ParseRatio(StringField(*video, "sample_aspect_ratio"), ':', &sar_num, &sar_den)) {
      sar_num = sar_den = 1;
    }
    int64_t g = Gcd(sar_num, sar_den);
    facts.set_sar_num(static_cast<int32_t>(sar_num / g));
    facts.set_sar_den(static_cast<int32_t>(sar_den / g));

    int rotation = VideoRotation(*video);
    facts.set_rotation(rotation);
    double upright_w = w, upright_h = h;
    double sar = static_cast<double>(sar_num) / sar_den;
    if (rotation == 90 || rotation == 270) {
      std::swap(upright_w, upright_h);
      sar = 1.0 / sar;  // the pixel's shape turns with the picture
    }
    // Square pixels keep the height and stretch or shrink the width.
    facts.set_display_width(RoundEven(upright_w * sar));
    facts.set_display_height(RoundEven(upright_h));

    Rate r, avg;
    ParseRatio(StringField(*video, "r_frame_rate"), '/', &r.num, &r.den);
    ParseRatio(StringField(*video, "avg_frame_rate"), '/', &avg.num, &avg.den);
    Rate rate;
    bool variable = false;
    if (r.value() > 0 && avg.value() > 0 &&
        std::fabs(r.value() - avg.value()) / avg.value() > 0.01) {
      variable = true;
      auto common = NearestCommonRate(avg.value(), 0.02);
      rate = common ? *common : Rate{std::max<int64_t>(1, std::llround(avg.value())), 1};
    } else {
      rate = r.value() > 0 ? r : avg;
      if (rate.value() <= 0) {
        return Status::InvalidArgument("the video stream of " + path + " has no frame rate.");
      }
      // A constant rate stored inexactly (e.g. 2997/125) is cleaned up, a
      // genuinely different one (12.5, 15) is kept as it is.
      if (auto common = NearestCommonRate(rate.value(), 0.001)) rate = *common;
    }
    int64_t rg = Gcd(rate.num, rate.den);
    rate.num /= rg;
    rate.den /= rg;
    facts.set_fps_num(static_cast<int32_t>(rate.num));
    facts.set_fps_den(static_cast<int32_t>(rate.den));
    facts.set_variable_frame_rate(variable);
    const double video_s = facts.video_duration_s() > 0 ? facts.video_duration_s() : duration;
    facts.set_frame_count(std::llround(video_s * rate.value()));
  }

  if (audio != nullptr) {
    facts.set_has_audio(true);
    facts.set_audio_codec(StringField(*audio, "codec_name"));
    double channels = 0, rate = 0;
    if (NumberField(*audio, "channels", &channels)) {
      facts.set_audio_channels(static_cast<int>(channels));
    }
    facts.set_audio_layout(StringField(*audio, "channel_layout"));
    if (NumberField(*audio, "sample_rate", &rate)) {
      facts.set_audio_sample_rate(static_cast<int>(rate));
    }
    if (facts.audio_channels() <= 0) {
      return Status::InvalidArgument("the audio stream of " + path + " has no channels.");
    }
  }
  return facts;
}

std::string SourceContentProblem(const std::string& path) {
  // O_NONBLOCK: opening a FIFO that replaced the source must not block here.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return std::string("cannot be opened (") + std::strerror(errno) + ")";
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return "is not a regular file (a FIFO, device or socket); only regular files are allowed";
  }
  std::string head(kSniffBytes, '\0');
  ssize_t n;
  do {
    n = ::pread(fd, head.data(), head.size(), 0);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n < 0) return std::string("cannot be read (") + std::strerror(errno) + ")";
  head.resize(static_cast<size_t>(n));
  if (head.empty()) return "is empty (0 bytes); it is not a media file";
  return ListContentProblem(head);
}

namespace {

// Runs one of the probe's follow-up passes (key frames, HDR metadata, idet);
// nullopt when it fails: the fact it would add stays unknown.
std::optional<ProcessResult> RunFollowUp(ProcessRunner& runner, std::vector<std::string> argv,
                                         double timeout_s) {
  ProcessOptions opts;
  opts.argv = std::move(argv);
  opts.timeout_s = timeout_s;
  opts.stderr_tail_bytes = 4096;
  StatusOr<ProcessResult> run = runner.Run(opts);
  if (!run.ok() || !run->Succeeded()) return std::nullopt;
  return *std::move(run);
}

// `program` reading only local files of `format_name` (pinned when known).
std::vector<std::string> LocalInputArgv(std::vector<std::string> argv,
                                        const std::string& format_name) {
  for (const char* a : {"-protocol_whitelist", "file"}) argv.push_back(a);
  if (!format_name.empty()) {
    argv.push_back("-f");
    argv.push_back(format_name);
  }
  return argv;
}

}  // namespace

StatusOr<pb::SourceFacts> ProbeSource(ProcessRunner& runner, const std::string& ffprobe,
                                      const std::string& path, double timeout_s,
                                      const std::string& ffmpeg) {
  // Refuse playlists and lists by their content before ffprobe sees them:
  // ffprobe's hls, dash and concat demuxers open the files a list names while
  // probing (local segments are read even with -protocol_whitelist file), so
  // the format_name check below would come too late.
  std::string problem = SourceContentProblem(path);
  if (!problem.empty()) return Status::InvalidArgument(path + " " + problem + ".");
  StatusOr<std::string> json_text = RunProbe(runner, ffprobe, path, timeout_s);
  if (!json_text.ok()) return json_text.status();
  StatusOr<pb::SourceFacts> facts = SourceFactsFromProbeJson(*json_text, path);
  if (!facts.ok() || !facts->has_video()) return facts;
  // Interlaced video is broadcast video: SD (480/576 lines) and 1080 lines.
  // idet misreads small synthetic pictures (a 320x180 test pattern shows
  // "TFF" on most frames), so smaller ones are not examined.
  if (!ffmpeg.empty() && facts->frame_count() >= 20 && facts->width() >= 640 &&
      facts->height() >= 480) {
    auto run = RunFollowUp(
        runner, IdetArgv(ffmpeg, path, facts->format_name(), facts->duration_s() * 0.3, 60),
        timeout_s);
    if (run) {
      const std::string& flag = facts->field_order();
      const std::string seen = FieldOrderFromIdet(run->stderr_tail, !flag.empty());
      if (!seen.empty() && (flag.empty() || IsInterlacedOrder(flag) != IsInterlacedOrder(seen))) {
        facts->set_field_order(seen);
        facts->set_field_order_from_idet(true);
      }
    }
  }
  if (IsHdrTransfer(facts->color_transfer()) && !facts->hdr_metadata_in_container()) {
    auto run = RunFollowUp(runner, HdrProbeArgv(ffprobe, path, facts->format_name()), timeout_s);
    if (run) ApplyHdrFromProbeJson(run->stdout_data, &*facts);
  }
  if (IsIntraOnlyCodec(facts->video_codec())) {
    if (facts->fps_num() > 0) {
      facts->set_keyframe_interval_s(double(facts->fps_den()) / facts->fps_num());
    }
    facts->set_gop_frames(1);
    return facts;
  }
  auto run = RunFollowUp(runner, KeyFrameProbeArgv(ffprobe, path, facts->format_name()), timeout_s);
  if (run) ApplyKeyFramesFromProbeJson(run->stdout_data, &*facts);
  return facts;
}

std::vector<std::string> KeyFrameProbeArgv(const std::string& ffprobe, const std::string& path,
                                           const std::string& format_name) {
  std::vector<std::string> argv = LocalInputArgv({ffprobe, "-v", "error"}, format_name);
  for (const char* a : {"-select_streams", "v:0", "-read_intervals"}) argv.push_back(a);
  argv.push_back("%+" + std::to_string(kKeyFrameProbeSeconds));
  for (const char* a : {"-show_entries", "packet=pts_time,flags", "-of", "json"}) {
    argv.push_back(a);
  }
  argv.push_back("file:" + path);
  return argv;
}

std::vector<std::string> IdetArgv(const std::string& ffmpeg, const std::string& path,
                                  const std::string& format_name, double start_s, int frames) {
  std::vector<std::string> argv = LocalInputArgv(
      {ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"}, format_name);
  char start[32];
  std::snprintf(start, sizeof(start), "%.3f", std::max(0.0, start_s));
  argv.insert(argv.end(), {"-ss", start, "-i", "file:" + path, "-map", "0:v:0", "-vf", "idet",
                           "-frames:v", std::to_string(frames), "-an", "-f", "null", "-"});
  return argv;
}

std::string FieldOrderFromIdet(const std::string& log, bool against_flag) {
  const size_t at = log.rfind("Multi frame detection:");
  if (at == std::string::npos) return "";
  int tff = 0, bff = 0, progressive = 0;
  if (std::sscanf(log.c_str() + at, "Multi frame detection: TFF: %d BFF: %d Progressive: %d", &tff,
                  &bff, &progressive) != 3) {
    return "";
  }
  const int fields = tff + bff;
  if (against_flag) {
    // Overruling what the stream declares takes nine decided frames in ten:
    // woven fields show as one order on nearly every frame, while a moving
    // synthetic 720p pattern flagged progressive showed 35 TFF, 9 BFF and 17
    // progressive of 61.
    const int decided = fields + progressive;
    if (decided < 10) return "";
    if (tff * 10 >= decided * 9) return "tt";
    if (bff * 10 >= decided * 9) return "bb";
    if (progressive * 10 >= decided * 9) return "progressive";
    return "";
  }
  if (fields >= 10 && fields > 2 * progressive) return tff >= bff ? "tt" : "bb";
  if (progressive >= 10 && progressive > 2 * fields) return "progressive";
  return "";
}

bool IsInterlacedOrder(const std::string& o) {
  return o == "tt" || o == "bb" || o == "tb" || o == "bt";
}

bool IsHdrTransfer(const std::string& transfer) {
  return transfer == "smpte2084" || transfer == "arib-std-b67";
}

std::vector<std::string> HdrProbeArgv(const std::string& ffprobe, const std::string& path,
                                      const std::string& format_name) {
  std::vector<std::string> argv = LocalInputArgv({ffprobe, "-v", "error"}, format_name);
  for (const char* a : {"-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries",
                        "frame_side_data", "-of", "json"}) {
    argv.push_back(a);
  }
  argv.push_back("file:" + path);
  return argv;
}

void ApplyHdrFromProbeJson(const std::string& text, pb::SourceFacts* facts) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("frames") ||
      !doc["frames"].is_array() || doc["frames"].empty() || !doc["frames"][0].is_object()) {
    return;
  }
  const json& frame = doc["frames"][0];
  if (frame.contains("side_data_list")) ApplyHdrSideData(frame["side_data_list"], facts);
}

bool IsIntraOnlyCodec(const std::string& codec) {
  static constexpr const char* kIntra[] = {"prores", "dnxhd", "mjpeg",   "jpeg2000", "rawvideo",
                                           "v210",   "v410",  "ffv1",    "dvvideo",  "png",
                                           "tiff",   "qtrle", "utvideo", "huffyuv",  "ffvhuff",
                                           "cfhd",   "r210",  "v308",    "v408",     "yuv4"};
  for (const char* c : kIntra) {
    if (codec == c) return true;
  }
  return false;
}

void ApplyKeyFramesFromProbeJson(const std::string& text, pb::SourceFacts* facts) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("packets") ||
      !doc["packets"].is_array() || facts->fps_num() <= 0 || facts->fps_den() <= 0) {
    return;
  }
  std::vector<double> keys;
  double last_pts = 0, first_pts = std::numeric_limits<double>::infinity();
  for (const json& p : doc["packets"]) {
    if (!p.is_object() || !p.contains("pts_time") || !p["pts_time"].is_string()) continue;
    char* end = nullptr;
    const std::string pts_text = p["pts_time"].get<std::string>();
    const double pts = std::strtod(pts_text.c_str(), &end);
    if (end == pts_text.c_str() || !std::isfinite(pts)) continue;
    last_pts = std::max(last_pts, pts);
    first_pts = std::min(first_pts, pts);
    const std::string flags =
        p.contains("flags") && p["flags"].is_string() ? p["flags"].get<std::string>() : "";
    if (flags.find('K') != std::string::npos) keys.push_back(pts);
  }
  if (keys.empty()) return;
  std::sort(keys.begin(), keys.end());
  const double frame = double(facts->fps_den()) / facts->fps_num();
  const double window = std::max(last_pts - keys.front() + frame,
                                 std::min<double>(facts->duration_s(), kKeyFrameProbeSeconds));
  if (keys.size() < 2) {
    facts->set_keyframe_interval_s(window);
    return;
  }
  double longest = 0;
  for (size_t i = 1; i < keys.size(); ++i) longest = std::max(longest, keys[i] - keys[i - 1]);
  // The tail after the last key frame seen counts when it is longer.
  longest = std::max(longest, last_pts - keys.back() + frame);
  facts->set_keyframe_interval_s(longest);
  // A fixed grid from the first frame: every gap the first one, a whole
  // number of frames, the first key frame the first frame (within a tenth
  // of a frame).
  const int64_t gop = std::llround((keys[1] - keys[0]) / frame);
  if (gop < 1 || std::fabs(keys[0] - first_pts) > frame / 10) return;
  for (size_t i = 1; i < keys.size(); ++i) {
    const double gap = (keys[i] - keys[i - 1]) / frame;
    if (std::fabs(gap - double(gop)) > 0.1) return;
  }
  facts->set_gop_frames(static_cast<int32_t>(gop));
}

}  // namespace reelfarm
