#include "worker/progress_parser.h"

#include <charconv>
#include <cstdlib>
#include <string>

namespace reelfarm {
namespace {

double ParseDouble(std::string_view v) {
  std::string s(v);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  return (end == s.c_str()) ? 0.0 : d;
}

int64_t ParseInt(std::string_view v) {
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() ? out : 0;
}

}  // namespace

std::optional<ProgressSample> ProgressParser::Feed(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  auto eq = line.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  std::string_view key = line.substr(0, eq);
  std::string_view value = line.substr(eq + 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);

  if (key == "frame") {
    current_.frame = ParseInt(value);
  } else if (key == "fps") {
    current_.fps = ParseDouble(value);
  } else if (key == "out_time_us" || key == "out_time_ms") {
    // Both keys are microseconds in FFmpeg (out_time_ms is misnamed).
    if (value != "N/A") current_.out_time_s = static_cast<double>(ParseInt(value)) / 1e6;
  } else if (key == "speed") {
    // "1.23x" or "N/A"
    current_.speed = (value == "N/A") ? 0.0 : ParseDouble(value);
  } else if (key == "total_size") {
    current_.total_size = ParseInt(value);
  } else if (key == "progress") {
    ProgressSample out = current_;
    out.end = (value == "end");
    return out;
  }
  return std::nullopt;
}

}  // namespace reelfarm
