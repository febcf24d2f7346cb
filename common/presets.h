// The preset table (docs/spec.md): one row per preset, data only. Spec
// validation reads what a preset may carry; the planner reads its FFmpeg
// arguments, what the output must probe as, its cost and memory class.
#ifndef REELFARM_COMMON_PRESETS_H_
#define REELFARM_COMMON_PRESETS_H_

#include <span>
#include <string>
#include <vector>

namespace reelfarm {

// Every member has a default (`{}` keeps -Wmissing-field-initializers quiet),
// so a row of the table names only what it sets.
struct PresetInfo {
  // What a deliverable of this preset is (spec validation and the planner).
  std::string name{};       // "master-prores"
  std::string extension{};  // ".mov"
  bool has_video = false;
  bool has_audio = false;
  bool soft_subtitles = false;  // the container can carry a mov_text track
  bool still = false;           // one frame (thumbnail)

  // How the planner makes it.
  std::string kind{};         // job kind of a single job: "encode", "thumbnail", "audio"
  std::string muxer{};        // -f
  std::string format_name{};  // ffprobe's format_name contains this; empty: unchecked
  std::vector<std::string> video_args{};
  std::vector<std::string> audio_args{};
  std::vector<std::string> container_args{};
  std::string video_encoder{};  // what a worker must have (Job.needs)
  // The same picture from a GPU encoder (NVENC; docs/gpu.md): its arguments
  // in place of video_args (same codec, profile, pixel format and tag, so
  // the same expectations verify it) and its name; empty: CPU only.
  std::vector<std::string> gpu_video_args{};
  std::string gpu_video_encoder{};
  std::string audio_encoder{};
  // What the output must probe as, as ffprobe names it.
  std::string video_codec{};
  std::string video_profile{};
  std::string pix_fmt{};
  std::string audio_codec{};
  bool stereo = false;  // downmix to two channels

  // CPU seconds per pixel against libx264's medium preset, measured one
  // thread each on 1080p25 (bench/RESULTS.md); groups and chunks are
  // balanced on it. Unused for stills and audio (a flat small cost).
  double cost_weight = 0;
  // Long-GOP encoder (lookahead, B-frames, references, frame threads): more
  // frames in flight, so more memory, than an intra-only one.
  bool long_gop = false;
  // MiB of memory in use that one more thread of budget adds to its
  // encoder, per megapixel of the largest frame: measured from 1 to 64
  // threads, 480p to 4K (docs/memory.md: x264 16, x265 ~18, ProRes 9-13,
  // DNxHR 38-42, MJPEG 5), with margin.
  double thread_mb_per_mpx = 0;

  // A master keeps the source's scan and colour (interlaced stays
  // interlaced, HDR stays HDR); other pictures are progressive SDR
  // (docs/spec.md, "Interlaced and HDR sources").
  bool master = false;
  // The encoder codes interlaced pictures (field order kept and tagged).
  bool interlaced_coding = false;
  // For sources deeper than 8 bits (HDR, graded masters): the video
  // arguments, profile and pixel format to use instead; empty: as above.
  std::vector<std::string> deep_video_args{};
  std::string deep_video_profile{};
  std::string deep_pix_fmt{};
  // For `dynamic_range: hdr` from a PQ or HLG source: the video arguments
  // (10-bit, the source's colours; the planner adds the HDR10 metadata),
  // profile and pixel format; empty: the preset makes SDR only.
  std::vector<std::string> hdr_video_args{};
  std::string hdr_video_profile{};
  std::string hdr_pix_fmt{};

  // Loudness and QC (docs/spec.md): the loudness standard its sound is
  // normalised to unless the spec says otherwise ("" = untouched, as masters
  // are), and whether it gets the default QC gates (loudness when
  // normalised, black, freeze and silence beyond what the source has).
  std::string default_loudness{};
  bool default_qc = false;

  // A streaming package (docs/spec.md, "Streaming ladders"): the output is a
  // folder of renditions, one per rung of the deliverable's `ladder`, each
  // encoded with video_args plus a fixed GOP of one segment and a capped
  // bit rate (RungMaxrateKbps, common/hls.h), packaged as CMAF/fMP4 HLS with
  // an audio rendition of audio_args and a master playlist.
  bool streaming = false;
};

// The default QC gates' limits, seconds (docs/spec.md, "Loudness and QC").
inline constexpr double kDefaultBlackMaxS = 2;
inline constexpr double kDefaultFreezeMaxS = 5;
inline constexpr double kDefaultSilenceMaxS = 2;

// Every preset, in documentation order.
std::span<const PresetInfo> Presets();
// nullptr when unknown.
const PresetInfo* FindPreset(const std::string& name);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PRESETS_H_
