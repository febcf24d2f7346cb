// Probing a source with ffprobe into SourceFacts.
#ifndef REELFARM_COMMON_PROBE_H_
#define REELFARM_COMMON_PROBE_H_

#include <string>

#include "common/process_runner.h"
#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// Pure: builds SourceFacts from ffprobe's JSON
// (`-show_format -show_streams -of json`). Refuses what is not a real media
// file: playlist and list demuxers (hls, concat, image2, lavfi, ...), files
// with neither video nor audio. InvalidArgument says why in a sentence.
StatusOr<pb::SourceFacts> SourceFactsFromProbeJson(const std::string& json,
                                                   const std::string& path);

// Pure: MediaInfo (what an output really holds) from ffprobe's JSON.
StatusOr<pb::MediaInfo> MediaInfoFromProbeJson(const std::string& json);

// The ffprobe argv used for `path`: file protocol only.
std::vector<std::string> ProbeArgv(const std::string& ffprobe, const std::string& path);

// Pure: the version in `ffmpeg -version`'s first line ("ffmpeg version
// 5.1.9-0+deb12u1 Copyright ..." -> "5.1.9-0+deb12u1"); ffprobe's says the
// same of the build it comes with. "" when the text is not such a line.
std::string VersionFromBanner(const std::string& text);
// Runs `program -version` and returns VersionFromBanner of what it prints.
StatusOr<std::string> ProgramVersion(ProcessRunner& runner, const std::string& program);

// Runs ffprobe on a local file and returns its JSON.
StatusOr<std::string> RunProbe(ProcessRunner& runner, const std::string& ffprobe,
                               const std::string& path, double timeout_s = 60);

// Runs the ffprobe `argv` (about `path`, for messages) and returns its JSON:
// InvalidArgument when ffprobe could not read it, other codes for ffprobe
// itself failing.
StatusOr<std::string> RunProbeArgv(ProcessRunner& runner, std::vector<std::string> argv,
                                   const std::string& path, double timeout_s = 60);

// The ffprobe argv for a playlist of one of our own streaming packages,
// with each stream's decoder configuration (-show_data): the HLS demuxer,
// which sources never get (it opens what a playlist names), allowed here
// for the files our package holds only (file protocol, fMP4 segments).
std::vector<std::string> PackageProbeArgv(const std::string& ffprobe, const std::string& playlist);

// Reads the first 4 KiB of `path` (never blocking: a FIFO is refused, not
// opened for a writer) and says why it is not a source reelfarm may hand to
// ffprobe: not a regular file, empty, or a playlist/list by its content (HLS
// "#EXTM3U", "ffconcat", concat `file` lines, XML such as DASH, SDP,
// ffmetadata), whatever its name. "" when none applies. See docs/security.md.
std::string SourceContentProblem(const std::string& path);

// Seconds from the start of a source in which its key frames are read.
inline constexpr int kKeyFrameProbeSeconds = 30;

// The ffprobe argv listing the first video stream's packets (time and
// flags) over the first kKeyFrameProbeSeconds: demuxing only, no decoding.
std::vector<std::string> KeyFrameProbeArgv(const std::string& ffprobe, const std::string& path,
                                           const std::string& format_name);

// Whether every frame of `codec` is a key frame (ProRes, DNxHD/HR, MJPEG...).
bool IsIntraOnlyCodec(const std::string& codec);

// Pure: sets facts->keyframe_interval_s and gop_frames from the JSON of
// KeyFrameProbeArgv (`{"packets": [{"pts_time": "0.0", "flags": "K_"}...]}`),
// with facts' frame rate and duration. Leaves them 0 when the JSON says
// nothing usable.
void ApplyKeyFramesFromProbeJson(const std::string& json, pb::SourceFacts* facts);

// Whether a transfer (ffprobe's name) is high dynamic range: PQ or HLG.
bool IsHdrTransfer(const std::string& transfer);

// Whether a field order (ffprobe's name: "tt", "bb", "tb", "bt",
// "progressive" or "") is interlaced.
bool IsInterlacedOrder(const std::string& field_order);

// The ffprobe argv showing the first video frame's side data (mastering
// display, content light level): decodes one frame.
std::vector<std::string> HdrProbeArgv(const std::string& ffprobe, const std::string& path,
                                      const std::string& format_name);

// Pure: sets facts' mastering_display (x265's syntax) and max_cll/max_fall
// from the JSON of HdrProbeArgv (`{"frames": [{"side_data_list": [...]}]}`);
// leaves them when it holds none.
void ApplyHdrFromProbeJson(const std::string& json, pb::SourceFacts* facts);

// The ffmpeg argv running the `idet` filter over `frames` frames of the first
// video stream from `start_s` (decoding only, no output).
std::vector<std::string> IdetArgv(const std::string& ffmpeg, const std::string& path,
                                  const std::string& format_name, double start_s, int frames);

// Pure: what idet's log (its "Multi frame detection: TFF: a BFF: b
// Progressive: c" line) says of the field order: "tt" or "bb" when most
// decided frames show fields (at least 10 of them), "progressive" when
// most show none, "" when it cannot tell. `against_flag`: to overrule a
// field order the stream declares, nine decided frames in ten must agree.
std::string FieldOrderFromIdet(const std::string& log, bool against_flag = false);

// SourceContentProblem, then RunProbe (killed after `timeout_s`), then
// SourceFactsFromProbeJson; then, for a long-GOP video stream, its key frames
// (KeyFrameProbeArgv; a failure there only leaves them unknown), and for a
// PQ or HLG one its HDR metadata (HdrProbeArgv, likewise). A refused source
// is InvalidArgument.
// With `ffmpeg` (a path; empty: not run), the field order the stream declares
// is checked with idet on 60 frames from 30 % in, for pictures of at least
// 640x480 (broadcast sizes; idet misreads small synthetic ones): where the
// flag is missing, or idet sees otherwise on nine frames in ten, idet's answer is taken
// (`field_order_from_idet`).
StatusOr<pb::SourceFacts> ProbeSource(ProcessRunner& runner, const std::string& ffprobe,
                                      const std::string& path, double timeout_s = 60,
                                      const std::string& ffmpeg = "");

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PROBE_H_
