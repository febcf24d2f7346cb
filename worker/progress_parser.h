// Parses `ffmpeg -progress pipe:1` output: key=value lines in blocks that end
// with progress=continue|end.
#ifndef REELFARM_WORKER_PROGRESS_PARSER_H_
#define REELFARM_WORKER_PROGRESS_PARSER_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace reelfarm {

struct ProgressSample {
  int64_t frame = 0;
  double fps = 0;
  double out_time_s = 0;
  double speed = 0;  // x realtime; 0 when ffmpeg says N/A
  int64_t total_size = 0;
  bool end = false;  // progress=end
};

// Not thread-safe; one per FFmpeg process.
class ProgressParser {
 public:
  // Feed one line (without '\n'). Returns a sample when the line closes a
  // block (progress=...), nothing otherwise. Malformed lines are ignored.
  std::optional<ProgressSample> Feed(std::string_view line);

 private:
  ProgressSample current_;
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_PROGRESS_PARSER_H_
