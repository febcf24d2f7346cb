#include "common/hls.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace reelfarm {
namespace {

// Peak bit rates (kbit/s) of 16:9 rungs at up to 30 frames a second, after
// Apple's HLS Authoring Specification (its higher entry where it lists two
// at one size); HEVC about 70 % of H.264 for the same quality.
struct RungRate {
  int height;
  int h264_kbps;
  int hevc_kbps;
};
constexpr RungRate kRungRates[] = {
    {2160, 16800, 11600}, {1440, 10000, 8100}, {1080, 7800, 5800}, {720, 4500, 3400},
    {540, 2000, 1600},    {480, 1500, 1100},   {360, 730, 550},    {234, 145, 145},
};

std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// A file name our package may name: letters, digits, '_', '-', '.', no
// leading dot, no path, no scheme.
bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string Hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%02x", v & 0xff);
  return buf;
}

}  // namespace

std::vector<int> DefaultLadder(int source_height) {
  std::vector<int> rungs;
  for (int h : kLadderHeights) {
    if (h <= source_height) rungs.push_back(h);
  }
  if (rungs.empty()) rungs.push_back(std::max(2, source_height / 2 * 2));
  return rungs;
}

int RungMaxrateKbps(const std::string& video_codec, int width, int height, double fps) {
  // The nearest tabled rung by pixel count (a 9:16 rung of height h has the
  // pixels of a 16:9 rung of height 9h/16).
  const double pixels = double(width) * height;
  const RungRate* best = &kRungRates[0];
  double best_gap = 1e300;
  for (const RungRate& r : kRungRates) {
    const double tabled = double(r.height) * r.height * 16 / 9;
    const double gap = std::fabs(std::log(pixels / tabled));
    if (gap < best_gap) {
      best_gap = gap;
      best = &r;
    }
  }
  const double tabled = double(best->height) * best->height * 16 / 9;
  double kbps = (video_codec == "hevc" ? best->hevc_kbps : best->h264_kbps) * pixels / tabled;
  if (fps > 31) kbps *= 1.5;
  return std::max(100, static_cast<int>(std::lround(kbps / 10) * 10));
}

StatusOr<MediaPlaylist> ReadMediaPlaylist(const std::string& text) {
  MediaPlaylist p;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  bool header = false;
  double pending = -1;  // an EXTINF waiting for its URI
  while (std::getline(in, line)) {
    ++n;
    line = Trim(line);
    if (line.empty()) continue;
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("playlist line " + std::to_string(n) + ": " + why);
    };
    if (!header) {
      if (line != "#EXTM3U") return bad("does not start with #EXTM3U");
      header = true;
      continue;
    }
    if (line.rfind("#EXTINF:", 0) == 0) {
      const std::string value = line.substr(8, line.find(',') - 8);
      char* end = nullptr;
      const double d = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || !(d > 0) || d > 3600) return bad("bad EXTINF " + value);
      pending = d;
    } else if (line.rfind("#EXT-X-MAP:", 0) == 0) {
      const std::string key = "URI=\"";
      size_t at = line.find(key);
      size_t close = at == std::string::npos ? at : line.find('"', at + key.size());
      if (close == std::string::npos) return bad("EXT-X-MAP without a URI");
      p.map_uri = line.substr(at + key.size(), close - at - key.size());
      if (!PlainName(p.map_uri)) return bad("EXT-X-MAP names " + p.map_uri);
    } else if (line == "#EXT-X-ENDLIST") {
      p.ended = true;
    } else if (line[0] == '#') {
      continue;  // other tags (version, target duration, ...)
    } else {
      if (pending < 0) return bad("a segment without EXTINF");
      if (!PlainName(line)) return bad("segment " + line + " is not a file beside the playlist");
      p.segments.push_back({line, pending});
      pending = -1;
    }
  }
  if (!header) return Status::InvalidArgument("the playlist is empty");
  if (p.segments.empty()) return Status::InvalidArgument("the playlist lists no segment");
  return p;
}

Bandwidth MeasureBandwidth(const MediaPlaylist& playlist, const std::vector<int64_t>& bytes) {
  Bandwidth b;
  double total_s = 0;
  int64_t total_bytes = 0;
  double longest = 0;
  for (const auto& seg : playlist.segments) longest = std::max(longest, seg.duration_s);
  for (size_t k = 0; k < playlist.segments.size() && k < bytes.size(); ++k) {
    const double d = playlist.segments[k].duration_s;
    total_s += d;
    total_bytes += bytes[k];
    // A last segment under half the others' length is not a fair sample of
    // the stream's peak (its rate swings with a few frames).
    if (k + 1 < playlist.segments.size() || d >= longest / 2) {
      b.peak_bps = std::max<int64_t>(b.peak_bps, std::llround(bytes[k] * 8.0 / d));
    }
  }
  if (total_s > 0) b.average_bps = std::llround(total_bytes * 8.0 / total_s);
  b.peak_bps = std::max(b.peak_bps, b.average_bps);
  return b;
}

std::vector<uint8_t> ParseHexDump(const std::string& dump) {
  std::vector<uint8_t> out;
  std::istringstream in(dump);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    // 16 bytes as 8 groups of 4 hex digits, then two spaces and the text.
    std::string hex = line.substr(colon + 2, 40);
    std::string digits;
    for (char c : hex) {
      if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(c);
    }
    for (size_t k = 0; k + 1 < digits.size(); k += 2) {
      out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(k, 2), nullptr, 16)));
    }
  }
  return out;
}

StatusOr<std::string> CodecString(const std::string& codec_name, const std::vector<uint8_t>& x) {
  if (codec_name == "aac") return std::string("mp4a.40.2");
  if (codec_name == "h264") {
    if (x.size() < 4 || x[0] != 1) {
      return Status::InvalidArgument("the H.264 stream has no avcC configuration record");
    }
    return "avc1." + Hex2(x[1]) + Hex2(x[2]) + Hex2(x[3]);
  }
  if (codec_name == "hevc") {
    if (x.size() < 13 || x[0] != 1) {
      return Status::InvalidArgument("the HEVC stream has no hvcC configuration record");
    }
    const unsigned space = x[1] >> 6, tier = (x[1] >> 5) & 1, profile = x[1] & 0x1f;
    uint32_t compat =
        (uint32_t(x[2]) << 24) | (uint32_t(x[3]) << 16) | (uint32_t(x[4]) << 8) | x[5];
    uint32_t reversed = 0;
    for (int bit = 0; bit < 32; ++bit) {
      if (compat & (1u << bit)) reversed |= 1u << (31 - bit);
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s%u.%X.%c%u",
                  space == 0 ? "" : std::string(1, char('A' + space - 1)).c_str(), profile,
                  reversed, tier ? 'H' : 'L', unsigned(x[12]));
    std::string out = std::string("hvc1.") + buf;
    // The six constraint bytes, trailing zero bytes left out.
    int last = 5;
    while (last >= 0 && x[6 + last] == 0) --last;
    for (int k = 0; k <= last; ++k) {
      char b[4];
      std::snprintf(b, sizeof(b), "%X", unsigned(x[6 + k]));
      out += std::string(".") + b;
    }
    return out;
  }
  return Status::InvalidArgument("no codec string for " + codec_name);
}

std::string MasterPlaylist(const std::vector<pb::RenditionResult>& video,
                           const pb::RenditionResult* audio, double fps, int audio_channels) {
  std::ostringstream m;
  m << "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  if (audio != nullptr) {
    m << "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES,"
      << "CHANNELS=\"" << audio_channels << "\",URI=\"" << audio->playlist() << "\"\n";
  }
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%.3f", fps);
  for (const auto& v : video) {
    const int64_t peak = v.peak_bps() + (audio ? audio->peak_bps() : 0);
    const int64_t average = v.average_bps() + (audio ? audio->average_bps() : 0);
    m << "#EXT-X-STREAM-INF:BANDWIDTH=" << peak << ",AVERAGE-BANDWIDTH=" << average << ",CODECS=\""
      << v.codecs() << (audio ? "," + audio->codecs() : "") << "\",RESOLUTION=" << v.width() << "x"
      << v.height() << ",FRAME-RATE=" << rate;
    if (audio != nullptr) m << ",AUDIO=\"audio\"";
    m << "\n" << v.playlist() << "\n";
  }
  return m.str();
}

std::string PackageListing(std::vector<pb::PackageFile> files) {
  std::sort(files.begin(), files.end(), [](const pb::PackageFile& a, const pb::PackageFile& b) {
    return a.relative_path() < b.relative_path();
  });
  std::string out;
  for (const auto& f : files) out += f.sha256() + "  " + f.relative_path() + "\n";
  return out;
}

}  // namespace reelfarm
