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

#include "planning/planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/hls.h"
#include "common/probe.h"
#include "common/qc.h"

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
    if (!cur_is_display) {  // square pixels first: the crop is in display space
      g.filters.push_back("scale=" + std::to_string(dw) + ":" + std::to_string(dh));
    }
    // The output size is the request's alone: its height by the aspect,
    // rounded to even once. Without a height, the largest window of that
    // aspect at the picture's own resolution: its full height (or width),
    // the other side rounded to even once. The crop window takes that exact
    // shape from the display frame; its own rounding to whole even pixels is
    // absorbed by the final scale (a fraction of a pixel of shape), never by
    // the output size.
    const double aspect = double(d.aspect_num) / d.aspect_den;
    int out_w = 0, out_h = 0;
    if (d.height > 0) {
      out_h = RoundEven(d.height);
      out_w = RoundEven(out_h * aspect);
    } else if (int64_t(dw) * d.aspect_den > int64_t(dh) * d.aspect_num) {
      out_h = dh;
      out_w = RoundEven(dh * aspect);
    } else {
      out_w = dw;
      out_h = RoundEven(dw / aspect);
    }
    int cw = dw, ch = dh;
    if (int64_t(dw) * out_h > int64_t(dh) * out_w) {
      cw = std::clamp(RoundEven(double(dh) * out_w / out_h), 2, dw);
    } else {
      ch = std::clamp(RoundEven(double(dw) * out_h / out_w), 2, dh);
    }
    double fx = std::clamp(d.focus_x, 0.0, 1.0), fy = std::clamp(d.focus_y, 0.0, 1.0);
    // Even offsets keep 4:2:0 chroma aligned, so the crop is exactly this.
    int x = std::clamp(NearestEven((dw - cw) * fx), 0, dw - cw);
    int y = std::clamp(NearestEven((dh - ch) * fy), 0, dh - ch);
    if (cw != dw || ch != dh) {
      g.filters.push_back("crop=" + std::to_string(cw) + ":" + std::to_string(ch) + ":" +
                          std::to_string(x) + ":" + std::to_string(y));
    }
    if (cw != out_w || ch != out_h) {
      g.filters.push_back("scale=" + std::to_string(out_w) + ":" + std::to_string(out_h));
    }
    g.filters.push_back("setsar=1");
    g.width = out_w;
    g.height = out_h;
    return g;
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

// MiB one FFmpeg needs: 768 for libraries, demuxer, decoder and muxer, plus
// the frames in flight at the largest frame size (4 bytes a pixel, enough
// for 4:2:2 10-bit): 120 for long-GOP encoders (lookahead, B-frames,
// references, frame threads), 32 for intra-only ones and stills, none for
// audio. Measured VmPeak at 1080p on 2 cores: 1.14 GiB for libx264/libx265,
// 0.95 GiB for DNxHR, 0.76 GiB for ProRes (docs/reliability.md).
// `video` is the preset whose picture the process encodes (its long_gop
// column), nullptr when it encodes none.
constexpr uint32_t kMemoryBaseMb = 768;
uint32_t MemoryNeedMb(const PresetInfo* video, int64_t max_pixels) {
  const int64_t frames = video == nullptr ? 0 : video->long_gop ? 120 : 32;
  return static_cast<uint32_t>(kMemoryBaseMb + frames * max_pixels * 4 / (1 << 20));
}

// A process that decodes the picture and encodes none (the analyse job):
// for MemoryNeedMb and MemoryPerThreadMb, an intra-only "encoder" that adds
// nothing per thread, so what counts is the decoder's frames in flight and
// its frame threads.
const PresetInfo kDecodeOnly{};

// MiB one more thread of budget adds to an FFmpeg encoding `video` (nullptr:
// no picture) at `max_pixels`: 8 for the thread itself, the decoder's frame
// threads (6 per megapixel of the largest frame) and the encoder's
// (thread_mb_per_mpx). Measured 1 to 64 threads, 480p to 4K (docs/memory.md).
uint32_t MemoryPerThreadMb(const PresetInfo* video, int64_t max_pixels) {
  const double mpx = double(max_pixels) / 1e6;
  const double encoder = video == nullptr ? 0 : video->thread_mb_per_mpx;
  return static_cast<uint32_t>(std::ceil(8 + (video == nullptr ? 0 : 6 + encoder) * mpx));
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

// How a deliverable's picture is scanned and coloured from this source
// (issue 17): filters before the geometry (deinterlacing), after it (tone
// map), the tags set last, the encoder's arguments, and what ffprobe must
// find.
struct Picture {
  std::vector<std::string> before;
  std::vector<std::string> after;
  std::vector<std::string> tags;        // setparams, last in the chain
  std::vector<std::string> video_args;  // the preset's, for this source
  std::vector<std::string> tag_args;    // -color_primaries ... output options
  bool keeps_interlace = false;
  std::string pix_fmt, profile;
  std::string field_order;  // expected; "" for stills
  std::string primaries, transfer, matrix, range;
};

// Colours a source is taken to have where its stream says nothing, as
// players and FFmpeg's own conversions assume: BT.709 from 720 lines up,
// BT.601 below (525-line primaries up to 486 lines, else 625-line).
struct Colours {
  std::string primaries, transfer, matrix, range;
};
Colours SourceColours(const pb::SourceFacts& f) {
  const bool sd = f.height() < 720;
  const std::string sd_prim = f.height() <= 486 ? "smpte170m" : "bt470bg";
  Colours c;
  c.primaries = !f.color_primaries().empty() ? f.color_primaries() : sd ? sd_prim : "bt709";
  c.transfer = !f.color_transfer().empty() ? f.color_transfer() : sd ? "smpte170m" : "bt709";
  c.matrix = !f.color_space().empty() ? f.color_space() : sd ? sd_prim : "bt709";
  c.range = !f.color_range().empty() ? f.color_range() : "tv";
  return c;
}

// The x265 parameters of an HDR deliverable: the source's colours, and for
// PQ its HDR10 metadata (mastering display, light levels) when known.
std::string HdrX265Params(const pb::SourceFacts& f, const std::string& primaries,
                          const std::string& transfer, const std::string& matrix) {
  std::string params = "log-level=error:repeat-headers=1:colorprim=" + primaries +
                       ":transfer=" + transfer + ":colormatrix=" + matrix;
  if (transfer == "smpte2084") {
    params += ":hdr10=1";
    if (!f.mastering_display().empty()) params += ":master-display=" + f.mastering_display();
    if (f.max_cll() > 0) {
      params += ":max-cll=" + std::to_string(f.max_cll()) + "," + std::to_string(f.max_fall());
    }
  }
  return params;
}

// The picture plan of `preset` from `f` (`dynamic_range` "sdr" or "hdr"), or
// why it cannot be made.
StatusOr<Picture> PlanPicture(const PresetInfo& preset, const pb::SourceFacts& f,
                              const std::string& dynamic_range) {
  Picture p;
  const bool deep = f.bit_depth() > 8 && !preset.deep_video_args.empty() && preset.master;
  p.video_args = deep ? preset.deep_video_args : preset.video_args;
  p.pix_fmt = deep ? preset.deep_pix_fmt : preset.pix_fmt;
  p.profile = deep ? preset.deep_video_profile : preset.video_profile;

  const bool interlaced = IsInterlacedOrder(f.field_order());
  const bool top_first = f.field_order() == "tt" || f.field_order() == "tb";
  if (interlaced && preset.master && !preset.interlaced_coding) {
    return Status::InvalidArgument(
        "the source is interlaced (" + f.field_order() + ") and " + preset.name +
        " cannot keep its fields (FFmpeg 5.1 codes DNxHR progressive only); use master-prores "
        "for an interlaced master.");
  }
  if (interlaced && preset.master) {
    // The fields stay as they are, coded as fields, and tagged.
    p.keeps_interlace = true;
    Append(&p.video_args, {"-flags", "+ildct+ilme", "-top", top_first ? "1" : "0"});
    p.field_order = top_first ? "tt" : "bb";
  } else {
    if (interlaced) {
      // One progressive frame per frame (not per field): the deliverable
      // keeps the source's frame rate (1080i50 -> 25p).
      p.before.push_back(std::string("bwdif=mode=send_frame:parity=") +
                         (top_first ? "tff" : "bff") + ":deint=all");
    }
    p.field_order = preset.still ? "" : "progressive";
  }

  const Colours src = SourceColours(f);
  const bool hdr = IsHdrTransfer(src.transfer);
  Colours out = src;
  if (dynamic_range == "hdr") {
    if (!hdr) {
      return Status::InvalidArgument(
          "dynamic_range hdr needs a PQ or HLG source, and this one is SDR "
          "(transfer " +
          src.transfer + ").");
    }
    // Kept HDR: 10-bit, the source's colours, HDR10 metadata for PQ.
    p.video_args = preset.hdr_video_args;
    Append(&p.video_args,
           {"-x265-params", HdrX265Params(f, src.primaries, src.transfer, src.matrix)});
    p.pix_fmt = preset.hdr_pix_fmt;
    p.profile = preset.hdr_video_profile;
  } else if (hdr && !preset.master) {
    // Tone map to SDR BT.709: linear light, BT.709 primaries, Hable's curve
    // (highlights rolled off, not clipped), then BT.709 gamma and matrix.
    out = {"bt709", "bt709", "bt709", "tv"};
    p.after = {"zscale=tin=" + src.transfer + ":min=" + src.matrix + ":pin=" + src.primaries +
                   ":rin=" + src.range + ":t=linear:npl=100",
               "format=gbrpf32le",
               "zscale=p=bt709",
               "tonemap=tonemap=hable:desat=0",
               "zscale=t=bt709:m=bt709:r=tv",
               "format=" + p.pix_fmt};
  }
  if (preset.has_video && !preset.still) {
    p.primaries = out.primaries;
    p.transfer = out.transfer;
    p.matrix = out.matrix;
    p.range = out.range;
    p.tags = {"setparams=range=" + out.range + ":color_primaries=" + out.primaries +
              ":color_trc=" + out.transfer + ":colorspace=" + out.matrix};
    p.tag_args = {"-color_primaries", out.primaries, "-color_trc",   out.transfer,
                  "-colorspace",      out.matrix,    "-color_range", out.range};
  }
  return p;
}

// One deliverable, validated, with everything its jobs are made from.
struct Branch {
  const DeliverableSpec* d = nullptr;
  const PresetInfo* preset = nullptr;
  Geometry geometry;
  Picture picture;
  bool with_audio = false;
  bool burn = false;
  bool soft = false;
  std::string subtitle_path;
  std::string relative;
  std::string final_path;
  double seek_s = 0;  // thumbnails: where the frame is taken
  // Its sound is normalised to this (the audio encoder's margin under the
  // ceiling taken off); its output checked by these gates.
  std::optional<pb::LoudnessTarget> normalise;
  std::optional<pb::QcGates> qc;
  // Streaming presets: the ladder's renditions, highest first, and every
  // segment's length in frames (each rendition's GOP).
  struct Rung {
    std::string name;  // "v720": its subfolder and parts' stem
    Geometry geometry;
    int maxrate_kbps = 0;
  };
  std::vector<Rung> rungs;
  int64_t segment_frames = 0;
};

struct PlanContext {
  const DeliverySpec& spec;
  const pb::SourceFacts& source;
  const PlannerOptions& options;
};

std::string FpsArg(const pb::SourceFacts& f) {
  return std::to_string(f.fps_num()) + "/" + std::to_string(f.fps_den());
}

// The start of every FFmpeg command: quiet, no stdin, machine progress.
std::vector<std::string> CommandPrefix(const PlanContext& ctx, bool video) {
  std::vector<std::string> argv = {
      ctx.options.ffmpeg, "-hide_banner", "-nostdin",  "-y",    "-loglevel",
      "warning",          "-nostats",     "-progress", "pipe:1"};
  if (video) argv.push_back("-noautorotate");
  return argv;
}

// The source as an input: file protocol only, its demuxer pinned.
void AppendSourceInput(const PlanContext& ctx, const std::string& seek,
                       std::vector<std::string>* argv) {
  Append(argv, {"-protocol_whitelist", "file", "-f", ctx.source.format_name()});
  if (!seek.empty()) Append(argv, {"-ss", seek});
  Append(argv, {"-i", ctx.spec.source});
}

// Geometry, then burned subtitles. `offset` (seconds, as text): where the
// frames' timestamps start in the source; input seeking restarts them at 0
// and the subtitles filter needs the source's clock.
std::vector<std::string> VideoChain(const Branch& b, const std::string& offset) {
  std::vector<std::string> chain = b.picture.before;
  Append(&chain, b.geometry.filters);
  Append(&chain, b.picture.after);
  if (b.burn) {
    if (!offset.empty()) chain.push_back("setpts=PTS+" + offset + "/TB");
    chain.push_back("subtitles=filename=" + EscapeFilterPath(b.subtitle_path));
  }
  Append(&chain, b.picture.tags);
  return chain;
}

std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) out += (k ? sep : "") + items[k];
  return out;
}

// The audio encoder's arguments, and the loudness normalisation the worker
// fills in from the source's measurement (common/qc.h).
void AppendAudioArgs(const Branch& b, int index, std::vector<std::string>* argv) {
  Append(argv, b.preset->audio_args);
  if (b.normalise) Append(argv, {"-af", LoudnormPlaceholder(index)});
}

// Everything after an output's -map options: codecs, rate, container, path.
// `index`: the output's place in its job (for the loudness placeholder).
void AppendOutputArgs(const Branch& b, const PlanContext& ctx, const std::string& path, int index,
                      std::vector<std::string>* argv) {
  Append(argv, {"-map_metadata", "-1", "-map_chapters", "-1"});
  if (b.preset->has_video) {
    Append(argv, b.picture.video_args);
    Append(argv, b.picture.tag_args);
    if (!b.preset->still) Append(argv, {"-fps_mode", "cfr", "-r", FpsArg(ctx.source)});
  } else {
    argv->push_back("-vn");
  }
  if (b.with_audio) AppendAudioArgs(b, index, argv);
  if (b.soft) {
    // Copied (already mov_text), every cue ended by the end of the source
    // and none starting after it: a cue past the end would make the file
    // longer than its picture.
    const std::string end = FormatDouble(ctx.source.duration_s(), 6);
    Append(argv, {"-c:s", "copy", "-bsf:s",
                  "setts=duration=min(DURATION\\,max(1\\," + end + "/TB-PTS))", "-t", end});
  }
  if (b.preset->muxer == "mxf" && !MxfKnowsRate(ctx.source.fps_num(), ctx.source.fps_den())) {
    Append(argv, {"-strict", "unofficial"});
  }
  Append(argv, b.preset->container_args);
  Append(argv, {"-f", b.preset->muxer, path});
}

// What `b`'s sound must probe as: its codec, its channels (two when the
// preset downmixes, else the source's), 48 kHz.
void ExpectSound(const Branch& b, const pb::SourceFacts& source, pb::MediaInfo* expect) {
  expect->set_has_audio(true);
  expect->set_audio_codec(b.preset->audio_codec);
  expect->set_audio_channels(b.preset->stereo ? 2 : source.audio_channels());
  expect->set_audio_sample_rate(48000);
}

// The deliverable's final output and what verification expects of it.
pb::JobOutput OutputFor(const Branch& b, const pb::SourceFacts& source) {
  pb::JobOutput out;
  out.set_deliverable(b.d->name);
  out.set_preset(b.d->preset);
  out.set_path(b.final_path);
  out.set_relative_path(b.relative);
  pb::MediaInfo* expect = out.mutable_expect();
  expect->set_format_name(b.preset->format_name);
  expect->set_rotation(0);
  if (b.preset->has_video) {
    expect->set_has_video(true);
    expect->set_video_codec(b.preset->video_codec);
    expect->set_width(b.geometry.width);
    expect->set_height(b.geometry.height);
    expect->set_pix_fmt(b.picture.pix_fmt);
    expect->set_video_profile(b.picture.profile);
    expect->set_field_order(b.picture.field_order);
    expect->set_color_primaries(b.picture.primaries);
    expect->set_color_transfer(b.picture.transfer);
    expect->set_color_space(b.picture.matrix);
    expect->set_color_range(b.picture.range);
    if (!b.preset->still) {
      expect->set_fps_num(source.fps_num());
      expect->set_fps_den(source.fps_den());
    }
  }
  if (!b.preset->still) expect->set_duration_s(source.duration_s());
  if (b.with_audio) ExpectSound(b, source, expect);
  if (b.soft) {
    expect->set_has_subtitle(true);
    expect->set_subtitle_codec("mov_text");
  }
  if (b.normalise) *out.mutable_normalise() = *b.normalise;
  if (b.qc) *out.mutable_qc() = *b.qc;
  return out;
}

void AddNeeds(const Branch& b, bool video, bool audio, pb::Job* job) {
  auto add = [&](const std::string& encoder) {
    for (const auto& e : job->needs().encoders()) {
      if (e == encoder) return;
    }
    job->mutable_needs()->add_encoders(encoder);
  };
  if (video && !b.preset->video_encoder.empty() && b.preset->has_video)
    add(b.preset->video_encoder);
  if (audio && b.with_audio) add(b.preset->audio_encoder);
  if (b.soft) add("mov_text");
  job->mutable_needs()->set_gpu(false);
}

int64_t MaxPixels(const Branch& b, const pb::SourceFacts& source) {
  return std::max<int64_t>(int64_t{source.width()} * source.height(),
                           int64_t{b.geometry.width} * b.geometry.height);
}

void SetLimits(const PlanContext& ctx, double media_s, double work_factor, pb::Job* job) {
  job->set_media_duration_s(media_s);
  job->set_timeout_s(ctx.options.timeout_base_s +
                     ctx.options.timeout_per_media_s * media_s * work_factor);
}

// Relative encoding cost of a deliverable (pixel-seconds x the encoder's
// weight); groups and chunks are balanced on it.
double Cost(const Branch& b, const pb::SourceFacts& source) {
  if (!b.preset->has_video) return 0.001 * source.duration_s();
  if (b.preset->still) return 0.001;
  // The preset's cost_weight: CPU seconds per pixel against libx264's
  // medium preset (common/presets.cc).
  return b.preset->cost_weight * double(b.geometry.width) * b.geometry.height / 1e6 *
         source.duration_s();
}

// A part of `b` (a time chunk, its audio, its subtitle track, a concat
// list) named `file`: relative to the delivery's output_dir, and absolute.
std::string PartRelativePath(const Branch& b, const std::string& file) {
  return JoinPath(JoinPath(kPartsFolder, b.d->name), file);
}
std::string PartPath(const Branch& b, const PlanContext& ctx, const std::string& file) {
  return JoinPath(ctx.spec.output_dir, PartRelativePath(b, file));
}

// Adds the part `file` of `b` to `job`'s outputs (intermediate: not a
// deliverable); the caller sets what it must probe as.
pb::JobOutput* AddPartOutput(const Branch& b, const PlanContext& ctx, const std::string& file,
                             pb::Job* job) {
  pb::JobOutput* out = job->add_outputs();
  out->set_deliverable(b.d->name);
  out->set_preset(b.d->preset);
  out->set_path(PartPath(b, ctx, file));
  out->set_relative_path(PartRelativePath(b, file));
  out->set_intermediate(true);
  return out;
}

// Where a soft-subtitle deliverable's track is made (a part).
constexpr char kSubtitleTrackFile[] = "subtitles.mp4";

// The subtitle file made into a mov_text track (a part) for a soft-subtitle
// deliverable, which copies it in and clips it to the source's length:
// FFmpeg 5.1 cannot clip cue durations while encoding subtitles (a bit-stream
// filter there drops every duration), only while copying them.
pb::Job SubtitleTrackJob(const Branch& b, const PlanContext& ctx) {
  pb::Job job;
  job.set_kind("subtitles");
  job.add_inputs(b.subtitle_path);
  std::vector<std::string> argv = CommandPrefix(ctx, false);
  Append(&argv, {"-protocol_whitelist", "file"});
  std::string demuxer = SubtitleDemuxer(b.subtitle_path);
  if (!demuxer.empty()) Append(&argv, {"-f", demuxer});
  Append(&argv, {"-i", b.subtitle_path, "-map", "0:s:0", "-c:s", "mov_text", "-map_metadata", "-1",
                 "-f", "mp4", PartPath(b, ctx, kSubtitleTrackFile)});
  for (auto& a : argv) job.add_argv(a);
  pb::JobOutput* out = AddPartOutput(b, ctx, kSubtitleTrackFile, &job);
  out->mutable_expect()->set_has_subtitle(true);
  out->mutable_expect()->set_subtitle_codec("mov_text");
  job.mutable_needs()->add_encoders("mov_text");
  SetLimits(ctx, 1, 0.1, &job);
  job.set_memory_mb(MemoryNeedMb(nullptr, 0));
  job.set_memory_per_thread_mb(MemoryPerThreadMb(nullptr, 0));
  job.set_cost(0.001);
  return job;
}

// One FFmpeg process, one deliverable. A soft-subtitle deliverable reads its
// track from SubtitleTrackJob's part (the caller sets the dependency).
pb::Job SingleJob(const Branch& b, const PlanContext& ctx) {
  const pb::SourceFacts& source = ctx.source;
  const double fps = FrameRate(source);
  pb::Job job;
  job.set_kind(b.preset->kind);
  job.add_inputs(ctx.spec.source);
  if (b.burn) job.add_inputs(b.subtitle_path);

  std::vector<std::string> argv = CommandPrefix(ctx, b.preset->has_video);
  AppendSourceInput(ctx, b.preset->still ? FormatDouble(b.seek_s, 3) : "", &argv);
  if (b.soft) {
    const std::string track = PartPath(b, ctx, kSubtitleTrackFile);
    job.add_inputs(track);
    job.add_remove_after(track);
    Append(&argv, {"-protocol_whitelist", "file", "-f", "mp4", "-i", track});
  }
  if (b.preset->has_video) {
    std::vector<std::string> chain =
        VideoChain(b, b.preset->still ? FormatDouble(b.seek_s, 3) : "");
    std::string graph = "[0:v:0]" + Join(chain, ",") + "[v]";
    if (source.rotation() != 0) graph += ";[0:v:0]nullsink";
    Append(&argv, {"-filter_complex", graph, "-map", "[v]"});
  }
  if (b.with_audio) Append(&argv, {"-map", "0:a:0"});
  if (b.soft) Append(&argv, {"-map", "1:s:0"});
  AppendOutputArgs(b, ctx, b.final_path, 0, &argv);
  for (auto& a : argv) job.add_argv(a);

  *job.add_outputs() = OutputFor(b, source);
  AddNeeds(b, true, true, &job);
  double media_s = b.preset->still ? (fps > 0 ? 1.0 / fps : 0.04) : source.duration_s();
  SetLimits(ctx, media_s, 1, &job);
  const PresetInfo* video = b.preset->has_video ? b.preset : nullptr;
  job.set_memory_mb(MemoryNeedMb(video, MaxPixels(b, source)));
  job.set_memory_per_thread_mb(MemoryPerThreadMb(video, MaxPixels(b, source)));
  job.set_cost(Cost(b, source));
  return job;
}

// Whether a GPU encoder can make `b` (docs/gpu.md): a preset with one, not
// `encoder: cpu`, and the preset's own 8-bit SDR picture (no HDR or deep
// variant, which NVENC here is not set up for).
bool GpuCapable(const Branch& b) {
  return b.d != nullptr && b.d->encoder != "cpu" && !b.preset->gpu_video_encoder.empty() &&
         b.picture.video_args == b.preset->video_args;
}

// Late binding: the job `build` makes of `b`, made again with the preset's
// GPU encoder, becomes `job`'s GPU variant; for `encoder: gpu` it becomes
// the job itself (GPU slots only).
void AddGpuVariant(const Branch& b, const std::function<pb::Job(const Branch&)>& build,
                   pb::Job* job) {
  if (!GpuCapable(b)) return;
  PresetInfo gpu_preset = *b.preset;
  gpu_preset.video_args = b.preset->gpu_video_args;
  gpu_preset.video_encoder = b.preset->gpu_video_encoder;
  Branch gb = b;
  gb.preset = &gpu_preset;
  gb.picture.video_args = gpu_preset.video_args;
  pb::Job made = build(gb);
  pb::GpuVariant* v = job->mutable_gpu();
  v->mutable_argv()->Swap(made.mutable_argv());
  *v->mutable_needs() = made.needs();
  v->mutable_needs()->set_gpu(true);
  if (b.d->encoder == "gpu") {
    job->mutable_argv()->Swap(v->mutable_argv());
    *job->mutable_needs() = v->needs();
    job->clear_gpu();
  }
}

// "%lld.%06lld" seconds of frame `frame`, rounded down to the microsecond,
// so an input seek there keeps that frame and drops the one before it.
std::string FrameTime(int64_t frame, const pb::SourceFacts& source) {
  int64_t us = frame * source.fps_den() * 1000000 / source.fps_num();
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lld.%06lld", static_cast<long long>(us / 1000000),
                static_cast<long long>(us % 1000000));
  return buf;
}

// A deliverable in `chunks` time chunks: video-only chunk jobs (each an
// input seek to its first frame and an exact frame count, so each starts on
// a keyframe), one whole-length audio job, and an assemble job that joins
// the chunks without re-encoding (concat demuxer, stream copy) and muxes the
// audio in. Parts live in <output_dir>/.reelfarm-parts/<deliverable>/.
// How long the source's picture and its sound are: their streams' own
// durations where known, else the container's (the longest stream's).
double VideoSeconds(const pb::SourceFacts& source) {
  return source.video_duration_s() > 0 ? source.video_duration_s() : source.duration_s();
}
double AudioSeconds(const pb::SourceFacts& source) {
  return source.audio_duration_s() > 0 ? source.audio_duration_s() : source.duration_s();
}

int64_t FrameCount(const pb::SourceFacts& source) {
  const int64_t by_time =
      std::llround(VideoSeconds(source) * source.fps_num() / double(source.fps_den()));
  // A stream duration, when known, bounds the estimate from the container.
  return source.video_duration_s() > 0 ? by_time : std::max<int64_t>(source.frame_count(), by_time);
}

// Each of `chunks` time chunks' first frame: equal shares, moved to the
// nearest multiple of `align` frames (> 1: the source's fixed GOP, so a
// seek decodes nothing it throws away, or a streaming segment). Fewer when
// shares would collide.
std::vector<int64_t> ChunkStarts(int64_t frames, int chunks, int64_t align) {
  std::vector<int64_t> starts;
  for (int k = 0; k < chunks; ++k) {
    int64_t first = frames * k / chunks;
    if (align > 1) first = std::llround(double(first) / align) * align;
    if (k == 0) first = 0;
    if (first >= frames || (!starts.empty() && first <= starts.back())) continue;
    starts.push_back(first);
  }
  return starts;
}

// The video-only part `name` of `b`: `count` frames from frame `first`
// (an input seek there and an exact frame count; the last part runs to the
// end), as a .mov part.
// The output options of `b`'s video-only part at `path`, after its -map:
// `frames` frames (0: to the end of the input).
void AppendVideoPartArgs(const Branch& b, const PlanContext& ctx, int64_t frames,
                         const std::string& path, std::vector<std::string>* argv) {
  Append(argv, {"-an", "-map_metadata", "-1", "-map_chapters", "-1"});
  Append(argv, b.picture.video_args);
  Append(argv, b.picture.tag_args);
  Append(argv, {"-fps_mode", "cfr", "-r", FpsArg(ctx.source)});
  if (frames > 0) Append(argv, {"-frames:v", std::to_string(frames)});
  Append(argv, {"-f", "mov", path});
}

// Adds `b`'s video-only part `name` to `job`'s outputs with what it must
// probe as (its duration: the caller's).
pb::MediaInfo* AddVideoPartOutput(const Branch& b, const PlanContext& ctx, const std::string& name,
                                  pb::Job* job) {
  pb::MediaInfo* expect = AddPartOutput(b, ctx, name, job)->mutable_expect();
  expect->set_has_video(true);
  expect->set_video_codec(b.preset->video_codec);
  expect->set_width(b.geometry.width);
  expect->set_height(b.geometry.height);
  expect->set_pix_fmt(b.picture.pix_fmt);
  expect->set_field_order(b.picture.field_order);
  expect->set_color_primaries(b.picture.primaries);
  expect->set_color_transfer(b.picture.transfer);
  expect->set_color_space(b.picture.matrix);
  expect->set_color_range(b.picture.range);
  expect->set_fps_num(ctx.source.fps_num());
  expect->set_fps_den(ctx.source.fps_den());
  return expect;
}

// The video-only part `name` of `b`: `count` frames from frame `first`
// (an input seek there and an exact frame count; the last part runs to the
// end), as a .mov part.
pb::Job ChunkJob(const Branch& b, const PlanContext& ctx, int64_t first, int64_t count, bool last,
                 const std::string& name) {
  const pb::SourceFacts& source = ctx.source;
  pb::Job job;
  job.set_kind("chunk");
  job.add_inputs(ctx.spec.source);
  if (!b.subtitle_path.empty()) job.add_inputs(b.subtitle_path);
  std::vector<std::string> argv = CommandPrefix(ctx, true);
  const std::string start = FrameTime(first, source);
  AppendSourceInput(ctx, first > 0 ? start : "", &argv);
  std::vector<std::string> chain = VideoChain(b, b.burn && first > 0 ? start : "");
  if (b.burn && first > 0) chain.push_back("setpts=PTS-STARTPTS");
  std::string graph = "[0:v:0]" + Join(chain, ",") + "[v]";
  if (source.rotation() != 0) graph += ";[0:v:0]nullsink";
  Append(&argv, {"-filter_complex", graph, "-map", "[v]"});
  AppendVideoPartArgs(b, ctx, last ? 0 : count, PartPath(b, ctx, name), &argv);
  for (auto& a : argv) job.add_argv(a);

  pb::MediaInfo* expect = AddVideoPartOutput(b, ctx, name, &job);
  if (!last) expect->set_duration_s(double(count) * source.fps_den() / source.fps_num());
  AddNeeds(b, true, false, &job);
  const double media_s =
      last ? VideoSeconds(source) - double(first) * source.fps_den() / source.fps_num()
           : double(count) * source.fps_den() / source.fps_num();
  SetLimits(ctx, media_s, 1, &job);
  job.set_memory_mb(MemoryNeedMb(b.preset, MaxPixels(b, source)));
  job.set_memory_per_thread_mb(MemoryPerThreadMb(b.preset, MaxPixels(b, source)));
  job.set_cost(Cost(b, source) * media_s / std::max(source.duration_s(), 1e-6));
  return job;
}

// Decode once, encode many: one FFmpeg whose graph splits the decoded
// source into each member's chain; every member keeps its own output
// options. Without `parts`, each member makes its deliverable and the job
// carries their single jobs to fall back on (Job.members); with `parts`
// (a streaming package's renditions), each makes the video-only part of
// that name and the job runs and retries as a whole. REQUIRES: members are
// moving-picture deliverables without soft subtitles, at least two.
pb::Job GroupJob(const std::vector<const Branch*>& members, const PlanContext& ctx,
                 const std::vector<std::string>& parts = {}) {
  const pb::SourceFacts& source = ctx.source;
  pb::Job job;
  job.set_kind(parts.empty() ? "group" : "renditions");
  job.add_inputs(ctx.spec.source);
  for (const Branch* b : members) {
    if (!b->subtitle_path.empty()) job.add_inputs(b->subtitle_path);
  }
  std::vector<std::string> argv = CommandPrefix(ctx, true);
  AppendSourceInput(ctx, "", &argv);
  std::string graph = "[0:v:0]split=" + std::to_string(members.size());
  for (size_t k = 0; k < members.size(); ++k) graph += "[s" + std::to_string(k) + "]";
  for (size_t k = 0; k < members.size(); ++k) {
    graph += ";[s" + std::to_string(k) + "]" + Join(VideoChain(*members[k], ""), ",") + "[v" +
             std::to_string(k) + "]";
  }
  if (source.rotation() != 0) graph += ";[0:v:0]nullsink";
  Append(&argv, {"-filter_complex", graph});
  uint64_t memory = 0;
  uint64_t per_thread = 0;
  double cost = 0;
  for (size_t k = 0; k < members.size(); ++k) {
    const Branch& b = *members[k];
    Append(&argv, {"-map", "[v" + std::to_string(k) + "]"});
    if (!parts.empty()) {
      AppendVideoPartArgs(b, ctx, 0, PartPath(b, ctx, parts[k]), &argv);
      AddVideoPartOutput(b, ctx, parts[k], &job)->set_duration_s(VideoSeconds(source));
      AddNeeds(b, true, false, &job);
    } else {
      if (b.with_audio) Append(&argv, {"-map", "0:a:0"});
      AppendOutputArgs(b, ctx, b.final_path, static_cast<int>(k), &argv);
      *job.add_outputs() = OutputFor(b, source);
      AddNeeds(b, true, true, &job);
      *job.add_members() = SingleJob(b, ctx);
    }
    memory += MemoryNeedMb(b.preset, MaxPixels(b, source)) - kMemoryBaseMb;
    per_thread += MemoryPerThreadMb(b.preset, MaxPixels(b, source));
    cost += Cost(b, source);
  }
  for (auto& a : argv) job.add_argv(a);
  SetLimits(ctx, source.duration_s(), static_cast<double>(members.size()), &job);
  job.set_memory_mb(static_cast<uint32_t>(kMemoryBaseMb + memory));
  job.set_memory_per_thread_mb(static_cast<uint32_t>(per_thread));
  job.set_cost(cost);
  return job;
}

// Where a chunked or streaming deliverable's sound is made (a part).
constexpr char kAudioFile[] = "audio.mov";

// The whole-length sound of `b` as a part (normalised as `b` says).
pb::Job AudioPartJob(const Branch& b, const PlanContext& ctx) {
  const pb::SourceFacts& source = ctx.source;
  pb::Job job;
  job.set_kind("audio");
  job.add_inputs(ctx.spec.source);
  std::vector<std::string> argv = CommandPrefix(ctx, false);
  AppendSourceInput(ctx, "", &argv);
  Append(&argv, {"-map", "0:a:0", "-vn", "-map_metadata", "-1", "-map_chapters", "-1"});
  AppendAudioArgs(b, 0, &argv);
  Append(&argv, {"-f", "mov", PartPath(b, ctx, kAudioFile)});
  for (auto& a : argv) job.add_argv(a);
  pb::JobOutput* out = AddPartOutput(b, ctx, kAudioFile, &job);
  if (b.normalise) *out->mutable_normalise() = *b.normalise;
  pb::MediaInfo* expect = out->mutable_expect();
  ExpectSound(b, source, expect);
  expect->set_duration_s(AudioSeconds(source));
  AddNeeds(b, false, true, &job);
  SetLimits(ctx, source.duration_s(), 0.1, &job);
  job.set_memory_mb(MemoryNeedMb(nullptr, 0));
  job.set_memory_per_thread_mb(MemoryPerThreadMb(nullptr, 0));
  job.set_cost(0.001 * source.duration_s());
  return job;
}

// The concat list joining `names` (parts beside it, named relative to it:
// the concat demuxer's safe mode refuses anything else).
std::string ConcatList(const std::vector<std::string>& names) {
  std::string list = "ffconcat version 1.0\n";
  for (const auto& n : names) list += "file " + n + "\n";
  return list;
}

// The input options reading `b`'s video parts `names` in order: the part
// itself when there is one, else a concat list of them that `job` writes.
void AppendPartsInput(const Branch& b, const PlanContext& ctx,
                      const std::vector<std::string>& names, const std::string& list_name,
                      pb::Job* job, std::vector<std::string>* argv) {
  if (names.size() == 1) {
    Append(argv, {"-protocol_whitelist", "file", "-f", "mov", "-i", PartPath(b, ctx, names[0])});
    return;
  }
  const std::string list_path = PartPath(b, ctx, list_name);
  pb::GeneratedFile* file = job->add_write_files();
  file->set_path(list_path);
  file->set_content(ConcatList(names));
  job->add_remove_after(list_path);
  Append(argv, {"-protocol_whitelist", "file", "-f", "concat", "-safe", "1", "-i", list_path});
}

// Arguments that copy the preset's video tag (hvc1) when stream-copying.
void AppendVideoTag(const PresetInfo& preset, std::vector<std::string>* argv) {
  for (size_t k = 0; k + 1 < preset.video_args.size(); ++k) {
    if (preset.video_args[k] == "-tag:v") Append(argv, {"-tag:v", preset.video_args[k + 1]});
  }
}

// Limits, memory and cost of a job that only copies streams (assemble,
// package).
void SetCopyLimits(const PlanContext& ctx, pb::Job* job) {
  SetLimits(ctx, ctx.source.duration_s(), 0.05, job);
  job->set_memory_mb(MemoryNeedMb(nullptr, 0));
  job->set_memory_per_thread_mb(MemoryPerThreadMb(nullptr, 0));
  job->set_cost(0.001 * ctx.source.duration_s());
}

// A deliverable in `chunks` time chunks: video-only chunk jobs (each an
// input seek to its first frame and an exact frame count, so each starts on
// a keyframe), one whole-length audio job, and an assemble job that joins
// the chunks without re-encoding (concat demuxer, stream copy) and muxes the
// audio in. Parts live in <output_dir>/.reelfarm-parts/<deliverable>/.
std::vector<pb::Job> ChunkedJobs(const Branch& b, int chunks, const PlanContext& ctx,
                                 const std::function<std::string()>& next_id) {
  const pb::SourceFacts& source = ctx.source;
  const int64_t frames = FrameCount(source);
  const std::vector<int64_t> starts = ChunkStarts(frames, chunks, source.gop_frames());
  std::vector<pb::Job> jobs;
  std::vector<std::string> names;
  pb::Job assemble;
  for (size_t k = 0; k < starts.size(); ++k) {
    const bool last = k + 1 == starts.size();
    const int64_t count = (last ? frames : starts[k + 1]) - starts[k];
    char name[32];
    std::snprintf(name, sizeof(name), "chunk-%03zu.mov", k);
    pb::Job job = ChunkJob(b, ctx, starts[k], count, last, name);
    job.set_id(next_id());
    names.push_back(name);
    assemble.add_depends_on(job.id());
    assemble.add_remove_after(PartPath(b, ctx, name));
    jobs.push_back(std::move(job));
  }
  const std::string audio_path = PartPath(b, ctx, kAudioFile);
  if (b.with_audio) {
    pb::Job job = AudioPartJob(b, ctx);
    job.set_id(next_id());
    assemble.add_depends_on(job.id());
    assemble.add_remove_after(audio_path);
    jobs.push_back(std::move(job));
  }

  assemble.set_id(next_id());
  assemble.set_kind("assemble");
  // The source, for QC against it (its picture gates).
  assemble.add_inputs(ctx.spec.source);
  for (const auto& part :
       std::vector<std::string>(assemble.remove_after().begin(), assemble.remove_after().end())) {
    assemble.add_inputs(part);
  }
  std::vector<std::string> argv = CommandPrefix(ctx, false);
  // Always a list here (the concat demuxer also for one chunk).
  const std::string list_path = PartPath(b, ctx, "chunks.ffconcat");
  pb::GeneratedFile* file = assemble.add_write_files();
  file->set_path(list_path);
  file->set_content(ConcatList(names));
  assemble.add_remove_after(list_path);
  Append(&argv, {"-protocol_whitelist", "file", "-f", "concat", "-safe", "1", "-i", list_path});
  if (b.with_audio) {
    Append(&argv, {"-protocol_whitelist", "file", "-f", "mov", "-i", audio_path});
  }
  Append(&argv, {"-map", "0:v:0"});
  if (b.with_audio) Append(&argv, {"-map", "1:a:0"});
  Append(&argv, {"-map_metadata", "-1", "-map_chapters", "-1", "-c", "copy"});
  AppendVideoTag(*b.preset, &argv);
  if (b.preset->muxer == "mxf" && !MxfKnowsRate(source.fps_num(), source.fps_den())) {
    Append(&argv, {"-strict", "unofficial"});
  }
  Append(&argv, b.preset->container_args);
  Append(&argv, {"-f", b.preset->muxer, b.final_path});
  for (auto& a : argv) assemble.add_argv(a);
  *assemble.add_outputs() = OutputFor(b, source);
  AddNeeds(b, false, false, &assemble);
  SetCopyLimits(ctx, &assemble);
  jobs.push_back(std::move(assemble));
  return jobs;
}

// The shortest chunk: min_chunk_s, and enough key-frame intervals that what
// a chunk's seek decodes and throws away (the frames from the key frame
// before its first) is a small part of it: one interval when chunks start on
// key frames (a fixed GOP), else four (a quarter at worst, an eighth on
// average). Unknown intervals count as none.
double MinChunkSeconds(const PlannerOptions& o, const pb::SourceFacts& source) {
  const double intervals = source.gop_frames() > 0 ? 1 : 4;
  return std::max(o.min_chunk_s, intervals * source.keyframe_interval_s());
}

// How many time chunks of about a piece a moving picture costing `cost` is
// cut into: none shorter than MinChunkSeconds or `shortest_s`; 1 when
// chunking is off or cannot be frame-exact (a variable or unknown rate).
int ChunkCount(double cost, const PlanContext& ctx, double shortest_s) {
  const PlannerOptions& o = ctx.options;
  const pb::SourceFacts& source = ctx.source;
  if (!o.chunking || o.piece_cost <= 0 || o.min_chunk_s <= 0 || source.variable_frame_rate() ||
      source.fps_num() <= 0 || source.fps_den() <= 0) {
    return 1;
  }
  const int by_length = static_cast<int>(
      std::floor(source.duration_s() / std::max(MinChunkSeconds(o, source), shortest_s)));
  return std::clamp(static_cast<int>(std::lround(cost / o.piece_cost)), 1, std::max(1, by_length));
}

// At most this many outputs in one decode-once job: FFmpeg 5.1 runs a
// process's encoders one after another per frame, so beyond a handful the
// decode saved is small against one long serial job (and a failure splits
// all of them).
constexpr size_t kMaxGroupOutputs = 8;

// Decode-once groups of the `cheap` items (indices into `cost`): first fit,
// costliest first, each group at most `piece` of cost and kMaxGroupOutputs
// items; each group's indices ascending. Groups of one are left to the
// caller.
std::vector<std::vector<int>> FirstFitGroups(std::vector<int> cheap,
                                             const std::vector<double>& cost, double piece) {
  std::stable_sort(cheap.begin(), cheap.end(), [&](int a, int b) { return cost[a] > cost[b]; });
  std::vector<std::vector<int>> groups;
  std::vector<double> load;
  for (int i : cheap) {
    size_t g = 0;
    while (g < groups.size() &&
           (load[g] + cost[i] > piece || groups[g].size() >= kMaxGroupOutputs)) {
      ++g;
    }
    if (g == groups.size()) {
      groups.emplace_back();
      load.push_back(0);
    }
    groups[g].push_back(i);
    load[g] += cost[i];
  }
  for (auto& g : groups) std::sort(g.begin(), g.end());
  return groups;
}

// The arguments that give every rendition of a package the same fixed GOP
// of `gop` frames, closed, with no scene-cut key frames: segments then start
// on the same frames in every rendition.
std::vector<std::string> FixedGopArgs(const PresetInfo& preset, int64_t gop) {
  const std::string g = std::to_string(gop);
  if (preset.video_encoder == "libx265") {
    return {"-x265-params",
            "log-level=error:keyint=" + g + ":min-keyint=" + g + ":scenecut=0:open-gop=0"};
  }
  return {"-g", g, "-keyint_min", g, "-sc_threshold", "0", "-flags", "+cgop"};
}

// The name of the master playlist in a package folder.
constexpr char kMasterPlaylist[] = "master.m3u8";

// A streaming deliverable (docs/spec.md, "Streaming ladders"): each
// rendition of its ladder encoded on its own (one job, or time chunks on
// segment borders when it costs more than a piece), its sound once (a part,
// normalised), and a package job that copies them into CMAF/fMP4 HLS
// segments of one GOP each under the package folder. The worker checks
// every rendition, writes the master playlist and publishes the folder
// whole.
std::vector<pb::Job> StreamingJobs(const Branch& b, const PlanContext& ctx,
                                   const std::function<std::string()>& next_id) {
  const pb::SourceFacts& source = ctx.source;
  const PlannerOptions& o = ctx.options;
  const int64_t frames = FrameCount(source);
  const int64_t gop = b.segment_frames;
  std::vector<pb::Job> jobs;
  pb::Job package;
  package.set_kind("package");
  // The source, for QC against it (its picture gates).
  package.add_inputs(ctx.spec.source);
  std::vector<std::string> argv = CommandPrefix(ctx, false);
  std::string stream_map;
  // Each rung as a branch of its own: its size, its capped rate, the GOP.
  std::vector<Branch> rungs;
  std::vector<double> cost;
  std::vector<int> chunks;
  for (const Branch::Rung& rung : b.rungs) {
    Branch r = b;
    r.geometry = rung.geometry;
    const std::string rate = std::to_string(rung.maxrate_kbps) + "k";
    const std::string buffer = std::to_string(2 * rung.maxrate_kbps) + "k";
    Append(&r.picture.video_args, {"-maxrate", rate, "-bufsize", buffer});
    Append(&r.picture.video_args, FixedGopArgs(*b.preset, gop));
    cost.push_back(Cost(r, source));
    // Chunks of about a piece, on segment borders (ChunkStarts), none shorter
    // than a segment.
    chunks.push_back(
        ChunkCount(cost.back(), ctx, double(gop) * source.fps_den() / source.fps_num()));
    rungs.push_back(std::move(r));
  }
  // Cheap whole rungs share one decode of the source (decoding is most of a
  // small rung's work: bench/RESULTS.md).
  std::vector<int> group_of(rungs.size(), -1);
  std::vector<std::vector<int>> groups;
  if (o.fan_out && o.piece_cost > 0) {
    std::vector<int> cheap;
    for (size_t i = 0; i < rungs.size(); ++i) {
      if (chunks[i] == 1 && cost[i] < o.piece_cost / 2) cheap.push_back(static_cast<int>(i));
    }
    groups = FirstFitGroups(cheap, cost, o.piece_cost);
    for (size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].size() < 2) continue;
      for (int i : groups[g]) group_of[i] = static_cast<int>(g);
    }
  }
  auto whole_part = [&](size_t i) { return b.rungs[i].name + ".mov"; };
  for (size_t i = 0; i < rungs.size(); ++i) {
    const std::string& rung_name = b.rungs[i].name;
    std::vector<std::string> names;
    if (group_of[i] >= 0) {
      const std::vector<int>& members = groups[group_of[i]];
      if (static_cast<size_t>(members.front()) == i) {
        std::vector<const Branch*> ptrs;
        std::vector<std::string> parts;
        for (int m : members) {
          ptrs.push_back(&rungs[m]);
          parts.push_back(whole_part(m));
        }
        pb::Job job = GroupJob(ptrs, ctx, parts);
        job.set_id(next_id());
        package.add_depends_on(job.id());
        jobs.push_back(std::move(job));
      }
      names.push_back(whole_part(i));
    } else {
      const std::vector<int64_t> starts = ChunkStarts(frames, chunks[i], gop);
      for (size_t k = 0; k < starts.size(); ++k) {
        const bool last = k + 1 == starts.size();
        const int64_t count = (last ? frames : starts[k + 1]) - starts[k];
        char name[64];
        std::snprintf(name, sizeof(name), "%s-chunk-%03zu.mov", rung_name.c_str(), k);
        const std::string part = starts.size() == 1 ? whole_part(i) : std::string(name);
        pb::Job job = ChunkJob(rungs[i], ctx, starts[k], count, last, part);
        job.set_id(next_id());
        if (starts.size() == 1) {
          job.set_kind(b.preset->kind);
          job.mutable_outputs(0)->mutable_expect()->set_duration_s(VideoSeconds(source));
        }
        names.push_back(part);
        package.add_depends_on(job.id());
        jobs.push_back(std::move(job));
      }
    }
    for (const auto& name : names) {
      package.add_inputs(PartPath(b, ctx, name));
      package.add_remove_after(PartPath(b, ctx, name));
    }
    AppendPartsInput(b, ctx, names, rung_name + ".ffconcat", &package, &argv);
    stream_map += (stream_map.empty() ? "" : " ") + std::string("v:") + std::to_string(i) +
                  ",name:" + rung_name;
  }
  const int input = static_cast<int>(rungs.size());
  if (b.with_audio) {
    pb::Job job = AudioPartJob(b, ctx);
    job.set_id(next_id());
    const std::string audio_path = PartPath(b, ctx, kAudioFile);
    package.add_depends_on(job.id());
    package.add_inputs(audio_path);
    package.add_remove_after(audio_path);
    jobs.push_back(std::move(job));
    Append(&argv, {"-protocol_whitelist", "file", "-f", "mov", "-i", audio_path});
    stream_map += " a:0,name:audio";
  }
  for (int k = 0; k < input; ++k) Append(&argv, {"-map", std::to_string(k) + ":v:0"});
  if (b.with_audio) Append(&argv, {"-map", std::to_string(input) + ":a:0"});
  Append(&argv, {"-map_metadata", "-1", "-map_chapters", "-1", "-c", "copy"});
  AppendVideoTag(*b.preset, &argv);
  // One segment per GOP: the segment length is the GOP's, rounded down to
  // the microsecond so that every key frame starts a segment.
  Append(&argv, {"-f", "hls", "-hls_time", FrameTime(gop, source), "-hls_playlist_type", "vod",
                 "-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
                 "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
                 JoinPath(b.final_path, "%v/seg_%05d.m4s"), "-var_stream_map", stream_map,
                 JoinPath(b.final_path, "%v/index.m3u8")});
  for (auto& a : argv) package.add_argv(a);

  pb::JobOutput* out = package.add_outputs();
  out->set_deliverable(b.d->name);
  out->set_preset(b.d->preset);
  out->set_path(b.final_path);
  out->set_relative_path(b.relative);
  out->mutable_expect()->set_format_name("hls");
  // Checked through its master playlist (the top rendition and the sound);
  // its sound normalised in the audio part, by this gain.
  if (b.qc) *out->mutable_qc() = *b.qc;
  if (b.normalise) *out->mutable_normalise() = *b.normalise;
  pb::StreamingPackage* pkg = out->mutable_package();
  pkg->set_master(kMasterPlaylist);
  pkg->set_segment_s(double(gop) * source.fps_den() / source.fps_num());
  for (const Branch::Rung& rung : b.rungs) {
    pb::Rendition* rendition = pkg->add_renditions();
    rendition->set_name(rung.name);
    rendition->set_playlist(rung.name + "/index.m3u8");
    pb::MediaInfo* expect = rendition->mutable_expect();
    expect->set_format_name("hls");
    expect->set_has_video(true);
    expect->set_video_codec(b.preset->video_codec);
    expect->set_video_profile(b.picture.profile);
    expect->set_width(rung.geometry.width);
    expect->set_height(rung.geometry.height);
    expect->set_pix_fmt(b.picture.pix_fmt);
    expect->set_fps_num(source.fps_num());
    expect->set_fps_den(source.fps_den());
    expect->set_duration_s(VideoSeconds(source));
  }
  if (b.with_audio) {
    pb::Rendition* rendition = pkg->add_renditions();
    rendition->set_name("audio");
    rendition->set_playlist("audio/index.m3u8");
    rendition->set_audio(true);
    pb::MediaInfo* expect = rendition->mutable_expect();
    expect->set_format_name("hls");
    ExpectSound(b, source, expect);
    expect->set_duration_s(AudioSeconds(source));
  }
  package.set_id(next_id());
  AddNeeds(b, false, false, &package);
  SetCopyLimits(ctx, &package);
  jobs.push_back(std::move(package));
  return jobs;
}

pb::LoudnessTarget TargetOf(const LoudnessChoice& c) {
  pb::LoudnessTarget t;
  t.set_standard(c.standard);
  t.set_integrated_lufs(c.target_lufs);
  t.set_true_peak_db(c.true_peak_db);
  t.set_lra(c.lra);
  return t;
}

// The deliverable's loudness normalisation and QC gates from its spec and
// its preset's defaults (docs/spec.md, "Loudness and QC").
void ResolveLoudnessAndQc(Branch* b) {
  const DeliverableSpec& d = *b->d;
  const PresetInfo& preset = *b->preset;
  std::optional<pb::LoudnessTarget> ceiling;  // what the sound must reach
  if (b->with_audio) {
    if (d.loudness) {
      if (*d.loudness) ceiling = TargetOf(**d.loudness);
    } else if (!preset.default_loudness.empty()) {
      ceiling = LoudnessStandard(preset.default_loudness);
    }
  }
  if (ceiling) {
    b->normalise = *ceiling;
    // A lossy encoder's output overshoots the peaks it was given by up to
    // about a decibel (AAC): normalised under the ceiling by that much.
    if (preset.audio_codec == "aac") b->normalise->set_true_peak_db(ceiling->true_peak_db() - 1);
  }

  const bool moving = preset.has_video && !preset.still;
  if (preset.still || (d.qc && d.qc->none)) return;
  pb::QcGates gates;
  const QcChoice q = d.qc.value_or(QcChoice{});
  const bool defaults = preset.default_qc;
  gates.set_allow_in_source(q.allow_in_source.value_or(true));
  if (moving) {
    gates.set_black_max_s(q.black_max_s.value_or(defaults ? kDefaultBlackMaxS : 0));
    gates.set_freeze_max_s(q.freeze_max_s.value_or(defaults ? kDefaultFreezeMaxS : 0));
    gates.set_ssim_min(q.ssim_min.value_or(0));
    gates.set_psnr_min_db(q.psnr_min_db.value_or(0));
  }
  if (b->with_audio) {
    gates.set_silence_max_s(q.silence_max_s.value_or(defaults ? kDefaultSilenceMaxS : 0));
    if (q.loudness_target) {
      *gates.mutable_loudness() = TargetOf(*q.loudness_target);
      gates.set_check_loudness(true);
    } else if (ceiling && q.loudness.value_or(defaults || d.qc.has_value())) {
      *gates.mutable_loudness() = *ceiling;
      gates.set_check_loudness(true);
    }
    gates.set_loudness_tolerance_lu(q.loudness_tolerance_lu.value_or(1.0));
  }
  if (gates.check_loudness() || gates.black_max_s() > 0 || gates.freeze_max_s() > 0 ||
      gates.silence_max_s() > 0 || gates.ssim_min() > 0 || gates.psnr_min_db() > 0) {
    b->qc = gates;
  }
}

// The renditions of streaming deliverable `index` of `spec` into `b` (its
// geometry and picture planned): each rung's size, bit rate and segment
// length; an error naming the ladder when a rung is above the picture (a
// ladder only scales down).
std::optional<SpecError> PlanLadder(const DeliverySpec& spec, size_t index,
                                    const pb::SourceFacts& source, Branch* b) {
  const DeliverableSpec& d = *b->d;
  DeliverableSpec full = d;
  full.height = 0;
  const int top = PlanGeometry(full, source).height;  // the picture's own height
  std::vector<int> ladder = d.ladder.empty() ? DefaultLadder(top) : d.ladder;
  if (ladder.front() > top) {
    SpecError e;
    e.file = spec.spec_file;
    auto line = d.field_lines.find("ladder");
    e.line = line != d.field_lines.end() ? line->second : d.line;
    e.field = "deliverables[" + std::to_string(index) + "].ladder";
    e.message = "rung " + std::to_string(ladder.front()) + " is above the picture's " +
                std::to_string(top) + " lines; a ladder only scales down: use rungs up to " +
                std::to_string(top);
    return e;
  }
  const double fps = FrameRate(source);
  for (int height : ladder) {
    DeliverableSpec rung = d;
    rung.height = height;
    Branch::Rung r;
    r.name = "v" + std::to_string(height);
    r.geometry = PlanGeometry(rung, source);
    r.maxrate_kbps =
        RungMaxrateKbps(b->preset->video_codec, r.geometry.width, r.geometry.height, fps);
    b->rungs.push_back(std::move(r));
  }
  const double segment_s = d.segment_s > 0 ? d.segment_s : kDefaultSegmentS;
  b->segment_frames = std::max<int64_t>(1, std::llround(segment_s * fps));
  return std::nullopt;
}

// Local id of the delivery's analyse job.
constexpr char kAnalyseId[] = "analyse";

// The job that measures the source once for the whole delivery (loudness
// for every normalised deliverable; black, frozen and silent segments that
// QC gates excuse), or nullopt when no deliverable needs it.
std::optional<pb::Job> AnalyseJob(const std::vector<Branch>& branches, const PlanContext& ctx) {
  const pb::SourceFacts& source = ctx.source;
  DetectorOptions o;
  bool needed = false;
  double black = 0, freeze = 0, silence = 0;  // the smallest limits to excuse
  auto smaller = [](double have, double limit) {
    return limit <= 0 ? have : have <= 0 ? limit : std::min(have, limit);
  };
  for (const Branch& b : branches) {
    if (b.normalise) needed = o.loudness = true;
    if (!b.qc) continue;
    if (b.qc->check_loudness()) needed = o.loudness = true;  // "silent, as the source"
    if (!b.qc->allow_in_source()) continue;
    black = smaller(black, b.qc->black_max_s());
    freeze = smaller(freeze, b.qc->freeze_max_s());
    silence = smaller(silence, b.qc->silence_max_s());
  }
  o.loudness = o.loudness && source.has_audio();
  o.video = source.has_video() && (black > 0 || freeze > 0);
  o.audio = source.has_audio() && silence > 0;
  // Reported from half the smallest limit: the source's part of a longer
  // output segment is measured whole.
  if (black > 0) o.black_min_s = black / 2;
  if (freeze > 0) o.freeze_min_s = freeze / 2;
  if (silence > 0) o.silence_min_s = silence / 2;
  if (!needed && !o.video && !o.audio) return std::nullopt;
  if (!o.any()) return std::nullopt;

  pb::Job job;
  job.set_id(kAnalyseId);
  job.set_kind("analyse");
  job.add_inputs(ctx.spec.source);
  // The detectors log at info level; the worker reads them as they come.
  std::vector<std::string> argv = {ctx.options.ffmpeg, "-hide_banner", "-nostdin",
                                   "-loglevel",        "info",         "-nostats",
                                   "-progress",        "pipe:1"};
  AppendSourceInput(ctx, "", &argv);
  Append(&argv, DetectorArgs(o));
  for (auto& a : argv) job.add_argv(a);
  SetLimits(ctx, source.duration_s(), o.video ? 0.5 : 0.1, &job);
  // Decoding only: a picture with no encoder of its own (kDecodeOnly).
  const int64_t pixels = o.video ? int64_t{source.width()} * source.height() : 0;
  const PresetInfo* video = o.video ? &kDecodeOnly : nullptr;
  job.set_memory_mb(MemoryNeedMb(video, pixels));
  job.set_memory_per_thread_mb(MemoryPerThreadMb(video, pixels));
  // Decoding costs about a fifth of libx264 medium per pixel
  // (bench/RESULTS.md); sound alone next to nothing.
  job.set_cost(o.video ? 0.2 * double(pixels) / 1e6 * source.duration_s()
                       : 0.001 * source.duration_s());
  return job;
}

// Whether `job` reads the analyse job's measurement: it normalises sound or
// checks a deliverable.
bool UsesAnalysis(const pb::Job& job) {
  for (const auto& out : job.outputs()) {
    if (out.has_normalise() || (out.has_qc() && !out.intermediate())) return true;
  }
  return false;
}

// Decides how the deliverables become jobs from their cost alone, never
// from the workers connected at submit: a delivery's shape is the same
// whoever is there, and the dispatcher spreads its pieces over whoever is,
// an idle slot taking the next piece (docs/architecture.md):
//  - a moving picture that costs more than one piece is cut into time
//    chunks of about piece_cost each (frame-exact; none shorter than
//    MinChunkSeconds, on key frames when the GOP is fixed; never for VFR
//    sources or soft subtitles);
//  - cheap moving pictures (under half a piece each) that can share a
//    decode are grouped into decode-once jobs of at most one piece and
//    kMaxGroupOutputs outputs (first fit, costliest first): many cheap
//    outputs decode the source once;
//  - everything else (stills, audio, soft subtitles) is one job each.
std::vector<pb::Job> ShapeJobs(const std::vector<Branch>& branches, const PlanContext& ctx) {
  const PlannerOptions& o = ctx.options;
  const pb::SourceFacts& source = ctx.source;
  const int n = static_cast<int>(branches.size());
  std::vector<int> group_of(n, -1);  // index into groups
  std::vector<std::vector<int>> groups;
  std::vector<int> chunks(n, 1);
  std::vector<double> cost(n);
  for (int i = 0; i < n; ++i) cost[i] = Cost(branches[i], source);

  auto moving = [&](const Branch& b) { return b.preset->has_video && !b.preset->still; };
  const double piece = o.piece_cost;
  // A deliverable for GPU slots only is one job: NVENC makes a picture many
  // times faster than a CPU slot, and time chunks from different encoders
  // could not be joined (each has its own parameter sets). On a GPU farm so
  // is an auto one, whose single job may then run on either (chunks and
  // groups run on CPU slots only).
  auto gpu_only = [&](const Branch& b) {
    return GpuCapable(b) && (b.d->encoder == "gpu" || o.gpu_farm);
  };
  for (int i = 0; i < n; ++i) {
    if (!moving(branches[i]) || branches[i].soft || branches[i].preset->streaming ||
        gpu_only(branches[i])) {
      continue;
    }
    chunks[i] = ChunkCount(cost[i], ctx, 0);
  }
  if (o.fan_out && piece > 0) {
    std::vector<int> cheap;
    for (int i = 0; i < n; ++i) {
      if (moving(branches[i]) && !branches[i].soft && !branches[i].preset->streaming &&
          !gpu_only(branches[i]) && chunks[i] == 1 && cost[i] < piece / 2) {
        cheap.push_back(i);
      }
    }
    groups = FirstFitGroups(cheap, cost, piece);
    for (size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].size() >= 2) {
        for (int i : groups[g]) group_of[i] = static_cast<int>(g);
      }
    }
  }

  std::vector<pb::Job> jobs;
  int next = 0;
  auto next_id = [&] { return "j" + std::to_string(next++); };
  for (int i = 0; i < n; ++i) {
    const Branch& b = branches[i];
    if (group_of[i] >= 0) {
      const std::vector<int>& members = groups[group_of[i]];
      if (members.front() != i) continue;  // emitted with its first member
      std::vector<const Branch*> ptrs;
      for (int m : members) ptrs.push_back(&branches[m]);
      pb::Job job = GroupJob(ptrs, ctx);
      job.set_id(next_id());
      for (int k = 0; k < job.members_size(); ++k) {
        job.mutable_members(k)->set_id(job.id() + "m" + std::to_string(k));
      }
      jobs.push_back(std::move(job));
    } else if (b.preset->streaming) {
      for (auto& job : StreamingJobs(b, ctx, next_id)) jobs.push_back(std::move(job));
    } else if (chunks[i] > 1) {
      for (auto& job : ChunkedJobs(b, chunks[i], ctx, next_id)) jobs.push_back(std::move(job));
    } else {
      std::string track_id;
      if (b.soft) {
        pb::Job track = SubtitleTrackJob(b, ctx);
        track.set_id(track_id = next_id());
        jobs.push_back(std::move(track));
      }
      pb::Job job = SingleJob(b, ctx);
      AddGpuVariant(
          b, [&ctx](const Branch& gb) { return SingleJob(gb, ctx); }, &job);
      job.set_id(next_id());
      if (!track_id.empty()) job.add_depends_on(track_id);
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
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

  std::vector<Branch> branches;
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
    // Publishing renames over the final path (a package: replaces the
    // folder): an input there would be lost.
    auto under_output = [&](const std::string& input) {
      return input == final_path || input.rfind(final_path + "/", 0) == 0;
    };
    if (under_output(spec.source)) {
      fail("the source " + spec.source + " is where " + relative +
           " would be published, and publishing would replace it; choose another name or "
           "output_dir.");
      continue;
    }
    if (d.subtitles) {
      auto it = spec.subtitles.find(d.subtitles->language);
      if (it != spec.subtitles.end() && under_output(it->second)) {
        fail("the subtitle file " + it->second + " is where " + relative +
             " would be published, and publishing would replace it; choose another name or "
             "output_dir.");
        continue;
      }
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

    Branch b;
    b.d = &d;
    b.preset = preset;
    if (preset->has_video) {
      StatusOr<Picture> picture = PlanPicture(*preset, source, d.dynamic_range);
      if (!picture.ok()) {
        fail(picture.status().message());
        continue;
      }
      b.picture = *std::move(picture);
      b.geometry = PlanGeometry(d, source);
      if (b.picture.keeps_interlace) {
        // Scaling an interlaced picture scales each field on its own.
        for (auto& f : b.geometry.filters) {
          if (f.rfind("scale=", 0) == 0) f += ":interl=1";
        }
      }
      if (d.preset == "master-dnxhr" &&
          (b.geometry.width < kDnxhrMinWidth || b.geometry.height < kDnxhrMinHeight)) {
        fail("DNxHR needs a picture of at least " + std::to_string(kDnxhrMinWidth) + "x" +
             std::to_string(kDnxhrMinHeight) + " pixels, and this one would be " +
             std::to_string(b.geometry.width) + "x" + std::to_string(b.geometry.height) + ".");
        continue;
      }
    }
    if (preset->streaming) {
      std::optional<SpecError> bad = PlanLadder(spec, i, source, &b);
      if (bad) {
        result.errors.push_back(*std::move(bad));
        continue;
      }
    }
    b.with_audio = preset->has_audio && source.has_audio();
    ResolveLoudnessAndQc(&b);
    b.burn = burn;
    b.soft = soft;
    b.subtitle_path = subtitle_path;
    b.seek_s = seek_s;
    b.relative = relative;
    b.final_path = final_path;
    if (b.qc && (b.qc->ssim_min() > 0 || b.qc->psnr_min_db() > 0)) {
      if (source.variable_frame_rate()) {
        // Frames are compared by number; a CFR output of a VFR source has
        // other frames at those numbers.
        b.qc->set_ssim_min(0);
        b.qc->set_psnr_min_db(0);
        plan.add_notes(d.name +
                       ": the source has a variable frame rate, so its SSIM/PSNR gates "
                       "(which compare frame by frame) are not applied");
      } else {
        // The source through the output's own chain (a package: its top
        // rendition's), one frame a second.
        Branch reference = b;
        if (!b.rungs.empty()) reference.geometry = b.rungs.front().geometry;
        b.qc->set_reference_filter(Join(VideoChain(reference, ""), ",") +
                                   ",format=" + b.picture.pix_fmt);
        b.qc->set_reference_format(source.format_name());
        b.qc->set_reference_path(spec.source);
        b.qc->set_sample_every(std::max(1, static_cast<int>(std::lround(fps))));
      }
    }
    branches.push_back(std::move(b));
  }

  // HDR10 figures that live only in the source's SEI reach no master (only
  // x265 could write them again): said, not lost silently.
  const bool sei_only_hdr10 = IsHdrTransfer(source.color_transfer()) &&
                              !source.hdr_metadata_in_container() &&
                              (!source.mastering_display().empty() || source.max_cll() > 0);
  for (const Branch& b : branches) {
    if (sei_only_hdr10 && b.preset->master) {
      plan.add_notes(b.d->name + " (" + b.preset->name +
                     "): the source's HDR10 mastering display and light levels are only in its "
                     "HEVC SEI messages, which FFmpeg 5.1 cannot write into " +
                     b.preset->video_codec +
                     "; the master keeps the source's transfer, primaries and matrix without them");
    }
  }
  const PlanContext ctx{spec, source, options};
  std::optional<pb::Job> analyse = AnalyseJob(branches, ctx);
  if (analyse) *plan.add_jobs() = *std::move(analyse);
  for (auto& job : ShapeJobs(branches, ctx)) {
    if (analyse) {
      if (UsesAnalysis(job)) job.add_depends_on(kAnalyseId);
      for (auto& member : *job.mutable_members()) {
        if (UsesAnalysis(member)) member.add_depends_on(kAnalyseId);
      }
    }
    *plan.add_jobs() = std::move(job);
  }
  return result;
}

}  // namespace reelfarm
