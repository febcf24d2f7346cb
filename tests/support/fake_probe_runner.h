// A ProcessRunner for unit tests of probing: answers every run with the
// ffprobe JSON of a 2 s 320x180 H.264 mov (or, with `fail`, ffprobe's
// refusal) and counts the runs.
#ifndef REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_
#define REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_

#include <string>
#include <vector>

#include "common/process_runner.h"

namespace reelfarm::testing {

class FakeProbeRunner final : public ProcessRunner {
 public:
  StatusOr<ProcessResult> Run(const ProcessOptions& options) override {
    ++runs;
    last_argv = options.argv;
    ProcessResult r;
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
  int runs = 0;
  bool fail = false;
  std::vector<std::string> last_argv;
};

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_FAKE_PROBE_RUNNER_H_
