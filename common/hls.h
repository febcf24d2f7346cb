// Streaming packages (HLS with CMAF/fMP4 segments): the ladder's rungs and
// their bit rates, reading the media playlists our own FFmpeg writes, codec
// strings, and the master playlist. Pure: no I/O (docs/spec.md, "Streaming
// ladders").
#ifndef REELFARM_COMMON_HLS_H_
#define REELFARM_COMMON_HLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// Seconds per segment unless the spec says otherwise: the Apple HLS
// Authoring Specification's target duration.
inline constexpr double kDefaultSegmentS = 6;
// The rungs (picture heights) a default ladder takes, highest first.
inline constexpr int kLadderHeights[] = {2160, 1440, 1080, 720, 480, 360};

// The default ladder of a source `source_height` lines high (upright): the
// rungs of kLadderHeights at or under it; a source under the lowest rung
// gets one rung of its own (even) height.
std::vector<int> DefaultLadder(int source_height);

// The peak bit rate (kbit/s, -maxrate; the VBV buffer is twice it) of a rung
// `width` x `height` at `fps` for `video_codec` ("h264" or "hevc"): the
// table in docs/spec.md (after Apple's HLS authoring table), by the number
// of pixels against the nearest 16:9 rung, 1.5x above 30 frames a second.
int RungMaxrateKbps(const std::string& video_codec, int width, int height, double fps);

// One segment of a media playlist.
struct MediaSegment {
  std::string uri;  // a plain file name beside the playlist
  double duration_s = 0;
};

struct MediaPlaylist {
  std::string map_uri;  // EXT-X-MAP (the fMP4 init segment)
  std::vector<MediaSegment> segments;
  bool ended = false;  // EXT-X-ENDLIST
};

// Reads a media playlist written by FFmpeg's hls muxer for one of our own
// packages. Refuses anything that is not a plain file name beside the
// playlist (a path, a URL), so the package can never point outside itself.
StatusOr<MediaPlaylist> ReadMediaPlaylist(const std::string& text);

// BANDWIDTH (the largest segment's bit rate; a last segment under half the
// longest left out) and AVERAGE-BANDWIDTH (all
// segments' bits over their duration) of a rendition whose segments have
// `bytes` (same order as playlist.segments).
struct Bandwidth {
  int64_t peak_bps = 0;
  int64_t average_bps = 0;
};
Bandwidth MeasureBandwidth(const MediaPlaylist& playlist, const std::vector<int64_t>& bytes);

// The bytes of an ffprobe `-show_data` hex dump ("00000000: 0164 001f ...").
std::vector<uint8_t> ParseHexDump(const std::string& dump);

// The RFC 6381 codec string of a stream: "avc1.640028" (avcC), "hvc1.1.6.L93.B0"
// (hvcC, ISO/IEC 14496-15 annex E), "mp4a.40.2" (AAC-LC). `extradata`: the
// stream's decoder configuration record.
StatusOr<std::string> CodecString(const std::string& codec_name,
                                  const std::vector<uint8_t>& extradata);

// The master playlist of a package: one EXT-X-STREAM-INF per picture
// rendition (highest first, as given), each with the audio rendition's
// figures added and its AUDIO group; the audio rendition (if any) as an
// EXT-X-MEDIA entry. `fps`: the picture's frame rate.
std::string MasterPlaylist(const std::vector<pb::RenditionResult>& video,
                           const pb::RenditionResult* audio, double fps, int audio_channels);

// The package's file list as `sha256sum` prints it ("<hex>  <relative
// path>\n", sorted by path; `files` in any order): its SHA-256 is the
// package's sha256.
std::string PackageListing(std::vector<pb::PackageFile> files);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_HLS_H_
