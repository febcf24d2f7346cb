// A ProcessRunner for unit tests of probing: answers every probe with the
// ffprobe JSON of a 2 s 320x180 H.264 mov (or, with `fail`, ffprobe's
// refusal), `-version` with version 5.1.9-test, every key-frame listing with a key frame a second,
// every idet pass with progressive frames, and counts them.
#ifndef REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_
#define REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_

#include <algorithm>
#include <string>
#include <vector>

#include "common/process_runner.h"

namespace reelfarm::testing {

class FakeProbeRunner final : public ProcessRunner {
 public:
  StatusOr<ProcessResult> Run(const ProcessOptions& options) override {
    ProcessResult r;
    if (std::find(options.argv.begin(), options.argv.end(), "-read_intervals") !=
        options.argv.end()) {
      // The key-frame listing that follows a probe of a long-GOP source:
      // a key frame every second.
      ++keyframe_runs;
      r.stdout_data = R"({"packets": [{"pts_time": "0.000000", "flags": "K_"},
                                      {"pts_time": "1.000000", "flags": "K_"},
                                      {"pts_time": "1.960000", "flags": "__"}]})";
      return r;
    }
    if (std::find(options.argv.begin(), options.argv.end(), "idet") != options.argv.end()) {
      // ffmpeg's idet over the 2 s source: progressive, as flagged.
      ++idet_runs;
      r.stderr_tail =
          "[Parsed_idet_0 @ 0x1] Multi frame detection: TFF: 0 BFF: 0 "
          "Progressive: 48 Undetermined: 2\n";
      return r;
    }
    if (std::find(options.argv.begin(), options.argv.end(), "-version") != options.argv.end()) {
      ++version_runs;
      r.stdout_data = "ffprobe version 5.1.9-test Copyright (c) 2007-2026 the FFmpeg developers\n";
      return r;
    }
    ++runs;
    last_argv = options.argv;
    r.exit_code = fail ? 1 : 0;
    r.stdout_data = fail ? "" : R"({
      "streams": [{"index": 0, "codec_name": "h264", "codec_type": "video", "width": 320,
                   "height": 180, "sample_aspect_ratio": "1:1", "pix_fmt": "yuv420p",
                   "r_frame_rate": "25/1", "avg_frame_rate": "25/1", "duration": "2.0",
                   "nb_frames": "50", "disposition": {"default": 1, "attached_pic": 0}}],
      "format": {"filename": "x", "nb_streams": 1, "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
                 "duration": "2.0", "size": "1000", "bit_rate": "4000"}})";
    r.stderr_tail = fail ? "Invalid data found when processing input" : "";
    return r;
  }
  int runs = 0;           // probes (-show_format -show_streams)
  int keyframe_runs = 0;  // key-frame listings
  int idet_runs = 0;      // ffmpeg idet passes
  int version_runs = 0;   // -version (answered 5.1.9-test)
  bool fail = false;
  std::vector<std::string> last_argv;
};

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_
