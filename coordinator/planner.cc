// The planner: spec + source facts -> jobs with exact FFmpeg argument vectors.
//
// Picture geometry is computed here, with concrete numbers, in this order:
//   1. turn the stored frame upright (transpose / hflip,vflip) - FFmpeg's own
//      autorotation is off (-noautorotate) so the argv says what happens;
//   2. square pixels and even sizes: scale to the facts' display size;
//   3. crop to the requested aspect (largest window, anchored by focus);
//   4. scale to the requested height (width keeps the aspect, even);
//   5. setsar=1, then burn subtitles last, at the final size.
//
// FFmpeg 5.1 quirk: with -noautorotate it copies the source's display matrix
// to the output stream whenever the stream comes from a filtergraph with a
// single input, so a turned picture would be turned again by players. A graph
// with two inputs gets no source stream and no matrix; for a rotated source
// the graph therefore also feeds [0:v:0] to a nullsink (decoded once, frames
// shared, no measurable cost). Verified by tests/integration.

#include "coordinator/planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace reelfarm {
namespace {

constexpr int kDnxhrMinWidth = 256;  // dnxhd refuses smaller frames
constexpr int kDnxhrMinHeight = 120;

int NearestEven(double x) { return static_cast<int>(std::lround(x / 2.0) * 2); }

// Sizes: nearest even, at least 2.
int RoundEven(double x) { return std::max(2, NearestEven(x)); }

std::string FormatDouble(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

double FrameRate(const pb::SourceFacts& f) {
  return f.fps_den() > 0 ? static_cast<double>(f.fps_num()) / f.fps_den() : 0;
}

// Escapes `value` for one level of FFmpeg's av_get_token() parsing: every
// character in `specials`, backslash and whitespace get a backslash.
std::string BackslashEscape(const std::string& value, const std::string& specials) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || specials.find(c) != std::string::npos || c == ' ' || c == '\t' || c == '\n' ||
        c == '\r') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// The demuxer for a subtitle sidecar, pinned by its extension; empty when
// the extension is not one the spec allows (FFmpeg then probes).
std::string SubtitleDemuxer(const std::string& path) {
  size_t dot = path.rfind('.');
  if (dot == std::string::npos) return "";
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (ext == "srt") return "srt";
  if (ext == "ass" || ext == "ssa") return "ass";
  if (ext == "vtt") return "webvtt";
  return "";
}

struct Geometry {
  int width = 0;
  int height = 0;
  std::vector<std::string> filters;  // comma-joined into the video chain
};

}  // namespace

std::string EscapeFilterPath(const std::string& path) {
  // Level 1: the filter's option parser ("key=value:key=value").
  std::string level1 = BackslashEscape(path, "':=");
  // Level 2: the filtergraph parser ("a,b;c" with [labels]).
  return BackslashEscape(level1, "'[],;");
}

namespace {

// Upright display size of the source: square pixels, even.
void DisplaySize(const pb::SourceFacts& f, int* w, int* h) {
  if (f.display_width() > 0 && f.display_height() > 0) {
    *w = f.display_width();
    *h = f.display_height();
    return;
  }
  double uw = f.width(), uh = f.height();
  double sar = (f.sar_num() > 0 && f.sar_den() > 0) ? double(f.sar_num()) / f.sar_den() : 1.0;
  if (f.rotation() == 90 || f.rotation() == 270) {
    std::swap(uw, uh);
    sar = 1.0 / sar;
  }
  *w = RoundEven(uw * sar);
  *h = RoundEven(uh);
}

Geometry PlanGeometry(const DeliverableSpec& d, const pb::SourceFacts& f) {
  Geometry g;
  int upright_w = f.width(), upright_h = f.height();
  bool sar_square = f.sar_num() <= 0 || f.sar_den() <= 0 || f.sar_num() == f.sar_den();
  switch (f.rotation()) {
    case 90:
      g.filters.push_back("transpose=clock");
      std::swap(upright_w, upright_h);
      break;
    case 180:
      g.filters.push_back("hflip");
      g.filters.push_back("vflip");
      break;
    case 270:
      g.filters.push_back("transpose=cclock");
      std::swap(upright_w, upright_h);
      break;
    default:
      break;
  }
  int dw = 0, dh = 0;
  DisplaySize(f, &dw, &dh);
  // Size of the frames entering the final scale, and whether they are
  // already square-pixel display frames.
  int cur_w = upright_w, cur_h = upright_h;
  bool cur_is_display = sar_square && upright_w == dw && upright_h == dh;
  int shape_w = dw, shape_h = dh;  // the picture's shape in display space

  if (d.aspect_num > 0 && d.aspect_den > 0) {
    if (!cur_is_display) {
      g.filters.push_back("scale=" + std::to_string(dw) + ":" + std::to_string(dh));
      cur_w = dw;
      cur_h = dh;
      cur_is_display = true;
    }
    int cw = dw, ch = dh;
    if (int64_t(dw) * d.aspect_den > int64_t(dh) * d.aspect_num) {
      cw = std::min(RoundEven(double(dh) * d.aspect_num / d.aspect_den), dw);
    } else {
      ch = std::min(RoundEven(double(dw) * d.aspect_den / d.aspect_num), dh);
    }
    double fx = std::clamp(d.focus_x, 0.0, 1.0), fy = std::clamp(d.focus_y, 0.0, 1.0);
    // Even offsets keep 4:2:0 chroma aligned, so the crop is exactly this.
    int x = std::clamp(NearestEven((dw - cw) * fx), 0, dw - cw);
    int y = std::clamp(NearestEven((dh - ch) * fy), 0, dh - ch);
    if (cw != dw || ch != dh) {
      g.filters.push_back("crop=" + std::to_string(cw) + ":" + std::to_string(ch) + ":" +
                          std::to_string(x) + ":" + std::to_string(y));
    }
    cur_w = shape_w = cw;
    cur_h = shape_h = ch;
  }

  int out_w = shape_w, out_h = shape_h;
  if (d.height > 0) {
    out_h = d.height;
    out_w = RoundEven(double(shape_w) * d.height / shape_h);
  }
  if (!cur_is_display || cur_w != out_w || cur_h != out_h) {
    g.filters.push_back("scale=" + std::to_string(out_w) + ":" + std::to_string(out_h));
  }
  g.filters.push_back("setsar=1");
  g.width = out_w;
  g.height = out_h;
  return g;
}

struct PresetArgs {
  std::string kind;
  std::string muxer;
  std::string format_name;  // ffprobe's format_name contains this
  std::vector<std::string> video_args;
  std::vector<std::string> audio_args;
  std::vector<std::string> container_args;
  std::string video_encoder, audio_encoder;
  std::string video_codec, video_profile, pix_fmt;  // as ffprobe names them
  std::string audio_codec;
  bool stereo = false;  // downmix to two channels
};

PresetArgs ArgsFor(const std::string& preset) {
  PresetArgs a;
  if (preset == "master-prores") {
    a.kind = "encode";
    a.muxer = "mov";
    a.format_name = "mov";
    a.video_args = {"-c:v",    "prores_ks", "-profile:v", "3",
                    "-vendor", "apl0",      "-pix_fmt",   "yuv422p10le"};
    a.audio_args = {"-c:a", "pcm_s24le", "-ar", "48000"};
    a.video_encoder = "prores_ks";
    a.audio_encoder = "pcm_s24le";
    a.video_codec = "prores";
    a.video_profile = "HQ";
    a.pix_fmt = "yuv422p10le";
    a.audio_codec = "pcm_s24le";
  } else if (preset == "master-dnxhr") {
    a.kind = "encode";
    a.muxer = "mxf";
    a.format_name = "mxf";
    a.video_args = {"-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"};
    a.audio_args = {"-c:a", "pcm_s24le", "-ar", "48000"};
    a.video_encoder = "dnxhd";
    a.audio_encoder = "pcm_s24le";
    a.video_codec = "dnxhd";
    a.video_profile = "DNXHR HQ";
    a.pix_fmt = "yuv422p";
    a.audio_codec = "pcm_s24le";
  } else if (preset == "web-h264" || preset == "social-h264") {
    a.kind = "encode";
    a.muxer = "mp4";
    a.format_name = "mp4";
    a.video_args = {"-c:v",    "libx264", "-profile:v", "high",
                    "-preset", "medium",  "-crf",       preset == "web-h264" ? "20" : "21"};
    if (preset == "social-h264") {
      for (const char* s : {"-maxrate", "8M", "-bufsize", "16M"}) a.video_args.push_back(s);
    }
    for (const char* s : {"-pix_fmt", "yuv420p"}) a.video_args.push_back(s);
    a.audio_args = {"-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"};
    a.container_args = {"-movflags", "+faststart"};
    a.video_encoder = "libx264";
    a.audio_encoder = "aac";
    a.video_codec = "h264";
    a.video_profile = "High";
    a.pix_fmt = "yuv420p";
    a.audio_codec = "aac";
    a.stereo = true;
  } else if (preset == "web-hevc") {
    a.kind = "encode";
    a.muxer = "mp4";
    a.format_name = "mp4";
    a.video_args = {"-c:v",   "libx265", "-preset",  "medium",  "-crf",         "24",
                    "-tag:v", "hvc1",    "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"};
    a.audio_args = {"-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"};
    a.container_args = {"-movflags", "+faststart"};
    a.video_encoder = "libx265";
    a.audio_encoder = "aac";
    a.video_codec = "hevc";
    a.video_profile = "Main";
    a.pix_fmt = "yuv420p";
    a.audio_codec = "aac";
    a.stereo = true;
  } else if (preset == "thumbnail-jpg") {
    // ffprobe names a .jpg "image2" but the worker's temporary name
    // "jpeg_pipe": the format is left unchecked, the codec is.
    a.kind = "thumbnail";
    a.muxer = "image2";
    a.format_name = "";
    a.video_args = {"-frames:v", "1", "-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"};
    a.container_args = {"-update", "1"};
    a.video_encoder = "mjpeg";
    a.video_codec = "mjpeg";
    a.pix_fmt = "yuvj420p";
  } else if (preset == "audio-wav") {
    a.kind = "audio";
    a.muxer = "wav";
    a.format_name = "wav";
    a.audio_args = {"-c:a", "pcm_s24le", "-ar", "48000"};
    a.audio_encoder = "pcm_s24le";
    a.audio_codec = "pcm_s24le";
  }
  return a;
}

// Frame rates MXF (SMPTE) knows; others need -strict unofficial.
bool MxfKnowsRate(int num, int den) {
  static constexpr int kRates[][2] = {{24000, 1001}, {24, 1}, {25, 1},  {30000, 1001}, {30, 1},
                                      {48000, 1001}, {48, 1}, {50, 1},  {60000, 1001}, {60, 1},
                                      {72, 1},       {96, 1}, {100, 1}, {120, 1}};
  for (const auto& r : kRates) {
    if (int64_t(r[0]) * den == int64_t(num) * r[1]) return true;
  }
  return false;
}

void Append(std::vector<std::string>* argv, std::initializer_list<std::string> items) {
  argv->insert(argv->end(), items.begin(), items.end());
}

void Append(std::vector<std::string>* argv, const std::vector<std::string>& items) {
  argv->insert(argv->end(), items.begin(), items.end());
}

}  // namespace

PlanResult PlanDelivery(const DeliverySpec& spec, const pb::SourceFacts& source,
                        const PlannerOptions& options) {
  PlanResult result;
  pb::Plan& plan = result.plan;
  plan.set_name(spec.name);
  plan.set_output_dir(spec.output_dir);
  plan.set_priority(spec.priority);
  *plan.mutable_source() = source;

  const double fps = FrameRate(source);
  const std::string fps_arg =
      std::to_string(source.fps_num()) + "/" + std::to_string(source.fps_den());

  for (size_t i = 0; i < spec.deliverables.size(); ++i) {
    const DeliverableSpec& d = spec.deliverables[i];
    const PresetInfo* preset = FindPreset(d.preset);
    const std::string ext = preset != nullptr ? preset->extension : "";
    const std::string relative = d.name + ext;
    const std::string final_path = JoinPath(spec.output_dir, relative);

    auto fail = [&](const std::string& reason) {
      pb::PlannedFailure* f = plan.add_failures();
      f->set_deliverable(d.name);
      f->set_preset(d.preset);
      f->set_relative_path(relative);
      f->set_reason(reason);
    };

    if (preset == nullptr) {
      fail("the preset '" + d.preset + "' is unknown.");
      continue;
    }
    if (preset->has_video && !source.has_video()) {
      fail("the source has no video stream, and " + d.preset + " needs a picture.");
      continue;
    }
    if (!preset->has_video && preset->has_audio && !source.has_audio()) {
      fail("the source has no audio track, so there is no sound to put in " + relative + ".");
      continue;
    }
    std::string subtitle_path;
    if (d.subtitles) {
      auto it = spec.subtitles.find(d.subtitles->language);
      if (it == spec.subtitles.end()) {
        fail("the subtitle language '" + d.subtitles->language + "' is not declared in the spec.");
        continue;
      }
      subtitle_path = it->second;
      if (d.subtitles->mode == "soft" && !preset->soft_subtitles) {
        fail(d.preset + " cannot carry a soft subtitle track.");
        continue;
      }
      if (d.subtitles->mode != "soft" && d.subtitles->mode != "burn") {
        fail("the subtitle mode '" + d.subtitles->mode + "' is neither burn nor soft.");
        continue;
      }
      if (!preset->has_video) {
        fail(d.preset + " has no picture to put subtitles on.");
        continue;
      }
    }
    const bool burn = d.subtitles && d.subtitles->mode == "burn";
    const bool soft = d.subtitles && d.subtitles->mode == "soft";

    // Thumbnail time: checked against the facts, then kept clear of the end
    // (an input seek past the last frame's start yields no frame at all).
    double seek_s = 0;
    if (preset->still) {
      if (d.at_s) {
        if (*d.at_s >= source.duration_s()) {
          SpecError e;
          e.file = spec.spec_file;
          auto line = d.field_lines.find("at");
          e.line = line != d.field_lines.end() ? line->second : d.line;
          e.field = "deliverables[" + std::to_string(i) + "].at";
          e.message = "is " + FormatDouble(*d.at_s, 3) +
                      " s, at or beyond the end of the source (" +
                      FormatDouble(source.duration_s(), 3) +
                      " s long); use a time from 0 to less than that.";
          result.errors.push_back(std::move(e));
          continue;
        }
        seek_s = *d.at_s;
      } else {
        seek_s = source.duration_s() * 0.1;
      }
      double last_safe = source.duration_s() - (fps > 0 ? 2.0 / fps : 0.1);
      seek_s = std::max(0.0, std::min(seek_s, last_safe));
    }

    PresetArgs args = ArgsFor(d.preset);
    Geometry geometry;
    if (preset->has_video) {
      geometry = PlanGeometry(d, source);
      if (d.preset == "master-dnxhr" &&
          (geometry.width < kDnxhrMinWidth || geometry.height < kDnxhrMinHeight)) {
        fail("DNxHR needs a picture of at least " + std::to_string(kDnxhrMinWidth) + "x" +
             std::to_string(kDnxhrMinHeight) + " pixels, and this one would be " +
             std::to_string(geometry.width) + "x" + std::to_string(geometry.height) + ".");
        continue;
      }
    }
    const bool with_audio = preset->has_audio && source.has_audio();

    pb::Job* job = plan.add_jobs();
    job->set_id("j" + std::to_string(plan.jobs_size() - 1));
    job->set_kind(args.kind);
    job->add_inputs(spec.source);
    if (!subtitle_path.empty()) job->add_inputs(subtitle_path);

    std::vector<std::string> argv = {options.ffmpeg, "-hide_banner", "-nostdin",
                                     "-y",           "-loglevel",    "warning",
                                     "-nostats",     "-progress",    "pipe:1"};
    if (preset->has_video) argv.push_back("-noautorotate");
    Append(&argv, {"-protocol_whitelist", "file", "-f", source.format_name()});
    if (preset->still) Append(&argv, {"-ss", FormatDouble(seek_s, 3)});
    Append(&argv, {"-i", spec.source});
    if (soft) {
      argv.push_back("-protocol_whitelist");
      argv.push_back("file");
      std::string demuxer = SubtitleDemuxer(subtitle_path);
      if (!demuxer.empty()) Append(&argv, {"-f", demuxer});
      Append(&argv, {"-i", subtitle_path});
    }

    if (preset->has_video) {
      std::vector<std::string> chain = geometry.filters;
      if (burn) {
        if (preset->still) {
          // Input seeking restarts timestamps at 0; subtitles need the
          // source's clock to pick the cue shown at `at`.
          chain.push_back("setpts=PTS+" + FormatDouble(seek_s, 3) + "/TB");
        }
        chain.push_back("subtitles=filename=" + EscapeFilterPath(subtitle_path));
      }
      std::string graph = "[0:v:0]";
      for (size_t k = 0; k < chain.size(); ++k) graph += (k ? "," : "") + chain[k];
      graph += "[v]";
      if (source.rotation() != 0) graph += ";[0:v:0]nullsink";
      Append(&argv, {"-filter_complex", graph, "-map", "[v]"});
    }
    if (with_audio) Append(&argv, {"-map", "0:a:0"});
    if (soft) Append(&argv, {"-map", "1:s:0"});
    Append(&argv, {"-map_metadata", "-1", "-map_chapters", "-1"});
    if (preset->has_video) {
      Append(&argv, args.video_args);
      if (!preset->still) Append(&argv, {"-fps_mode", "cfr", "-r", fps_arg});
    } else {
      argv.push_back("-vn");
    }
    if (with_audio) Append(&argv, args.audio_args);
    if (soft) Append(&argv, {"-c:s", "mov_text"});
    if (args.muxer == "mxf" && !MxfKnowsRate(source.fps_num(), source.fps_den())) {
      Append(&argv, {"-strict", "unofficial"});
    }
    Append(&argv, args.container_args);
    Append(&argv, {"-f", args.muxer, final_path});
    for (auto& a : argv) job->add_argv(a);

    pb::JobOutput* out = job->add_outputs();
    out->set_deliverable(d.name);
    out->set_preset(d.preset);
    out->set_path(final_path);
    out->set_relative_path(relative);
    pb::MediaInfo* expect = out->mutable_expect();
    expect->set_format_name(args.format_name);
    expect->set_rotation(0);
    if (preset->has_video) {
      expect->set_has_video(true);
      expect->set_video_codec(args.video_codec);
      expect->set_width(geometry.width);
      expect->set_height(geometry.height);
      expect->set_pix_fmt(args.pix_fmt);
      expect->set_video_profile(args.video_profile);
      if (!preset->still) {
        expect->set_fps_num(source.fps_num());
        expect->set_fps_den(source.fps_den());
      }
    }
    if (!preset->still) expect->set_duration_s(source.duration_s());
    if (with_audio) {
      expect->set_has_audio(true);
      expect->set_audio_codec(args.audio_codec);
      expect->set_audio_channels(args.stereo ? 2 : source.audio_channels());
      expect->set_audio_sample_rate(48000);
    }
    if (soft) {
      expect->set_has_subtitle(true);
      expect->set_subtitle_codec("mov_text");
    }

    if (!args.video_encoder.empty() && preset->has_video) {
      job->mutable_needs()->add_encoders(args.video_encoder);
    }
    if (with_audio) job->mutable_needs()->add_encoders(args.audio_encoder);
    if (soft) job->mutable_needs()->add_encoders("mov_text");
    job->mutable_needs()->set_gpu(false);

    double media_s = preset->still ? (fps > 0 ? 1.0 / fps : 0.04) : source.duration_s();
    job->set_media_duration_s(media_s);
    job->set_timeout_s(options.timeout_base_s + options.timeout_per_media_s * media_s);
  }
  return result;
}

}  // namespace reelfarm
