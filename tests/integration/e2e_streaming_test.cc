// Streaming ladders end to end (issue 13): `reelfarm run` makes an hls-h264
// deliverable with a 4-rung ladder from an 8 s source: its costliest
// rendition cut into time chunks on segment borders, one made alone, the two
// cheapest from one decode. Checked here with
// ffprobe and this test's own reading of the files: every rendition plays
// through the HLS demuxer with the source's frame count, segments align
// across renditions and start on key frames, the master playlist names
// every rendition with its figures, and the manifest lists every file of
// the package with its sha256; nothing half-made is left beside it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "common/output_cache.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

nlohmann::json Probe(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ffprobe", "-v", "error", "-of", "json"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  EXPECT_EQ(RunArgv(argv, &out), 0) << args.back();
  return nlohmann::json::parse(out, nullptr, false);
}

// The EXTINF durations of a media playlist, as written.
std::vector<std::string> Durations(const std::string& playlist) {
  std::vector<std::string> out;
  std::istringstream in(ReadFileBytes(playlist));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("#EXTINF:", 0) == 0) out.push_back(line.substr(8));
  }
  return out;
}

TEST(E2eStreaming, AFourRungLadderPlaysAlignedAndIsListedFileByFile) {
  const std::string dir = MakeTempDir("reelfarm-hls");
  ASSERT_EQ(
      RunArgv(LavfiArgv({"testsrc2=s=640x360:r=25:d=8", "sine=f=440:r=48000:d=8"},
                        {"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
                         "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", dir + "/film.mov"})),
      0);
  std::ofstream(dir + "/spec.yaml") << R"(version: 1
name: stream
source: film.mov
output_dir: out
deliverables:
  - name: web
    preset: hls-h264
    ladder: [360, 240, 180, 144]
    segment_s: 2
)";
  std::string log;
  // Pieces of 1.2 (costs 1.8, 0.8, 0.5, 0.3): the 360 rendition in two
  // time chunks, 240 alone, 180 and 144 from one decode.
  ASSERT_EQ(RunArgv({kReelfarm, "run", dir + "/spec.yaml", "--workers", "2", "--piece-cost", "1.2",
                     "--min-chunk-s", "2"},
                    &log),
            0)
      << log;
  const std::string out = dir + "/out";
  const std::string pkg = out + "/web";

  // Every rendition plays through with the source's 200 frames at its size.
  const std::map<std::string, std::pair<int, int>> sizes = {
      {"v360", {640, 360}}, {"v240", {426, 240}}, {"v180", {320, 180}}, {"v144", {256, 144}}};
  for (const auto& [name, size] : sizes) {
    nlohmann::json p =
        Probe({"-protocol_whitelist", "file", "-f", "hls", "-count_frames", "-show_entries",
               "stream=nb_read_frames,width,height,codec_name", pkg + "/" + name + "/index.m3u8"});
    ASSERT_EQ(p["streams"].size(), 1u) << name << p.dump();
    const nlohmann::json& s = p["streams"][0];
    EXPECT_EQ(s.value("codec_name", ""), "h264") << name;
    EXPECT_EQ(s.value("nb_read_frames", ""), "200") << name;
    EXPECT_EQ(s.value("width", 0), size.first) << name;
    EXPECT_EQ(s.value("height", 0), size.second) << name;
  }
  nlohmann::json sound =
      Probe({"-protocol_whitelist", "file", "-f", "hls", "-show_entries",
             "format=duration:stream=codec_name,channels", pkg + "/audio/index.m3u8"});
  EXPECT_EQ(sound["streams"][0].value("codec_name", ""), "aac");
  EXPECT_EQ(sound["streams"][0].value("channels", 0), 2);
  EXPECT_NEAR(std::stod(sound["format"].value("duration", "0")), 8, 0.1);

  // Aligned: the same four 2 s segments in every rendition, each starting
  // on a key frame (its first packet).
  for (const auto& [name, size] : sizes) {
    EXPECT_EQ(Durations(pkg + "/" + name + "/index.m3u8"),
              (std::vector<std::string>{"2.000000,", "2.000000,", "2.000000,", "2.000000,"}))
        << name;
    std::string init;
    for (const auto& e : fs::directory_iterator(pkg + "/" + name)) {
      if (e.path().filename().string().rfind("init", 0) == 0) init = e.path().string();
    }
    ASSERT_FALSE(init.empty()) << name;
    for (int k = 0; k < 4; ++k) {
      char seg[32];
      std::snprintf(seg, sizeof(seg), "/seg_%05d.m4s", k);
      // The init segment and one media segment make a playable file.
      const std::string joined = dir + "/joined.mp4";
      std::ofstream(joined, std::ios::binary)
          << ReadFileBytes(init) << ReadFileBytes(pkg + "/" + name + seg);
      nlohmann::json first = Probe({"-select_streams", "v", "-show_entries", "packet=flags",
                                    "-read_intervals", "%+#1", joined});
      ASSERT_FALSE(first["packets"].empty()) << name << seg;
      EXPECT_EQ(first["packets"][0].value("flags", "").substr(0, 1), "K") << name << seg;
    }
  }

  // The master names every rendition with its size, codecs and rates, and
  // plays.
  const std::string master = ReadFileBytes(pkg + "/master.m3u8");
  EXPECT_TRUE(std::regex_search(master, std::regex("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\"")));
  for (const auto& [name, size] : sizes) {
    const std::regex entry(
        "#EXT-X-STREAM-INF:BANDWIDTH=[0-9]+,AVERAGE-BANDWIDTH=[0-9]+,"
        "CODECS=\"avc1\\.64[0-9a-f]{4},mp4a\\.40\\.2\",RESOLUTION=" +
        std::to_string(size.first) + "x" + std::to_string(size.second) +
        ",FRAME-RATE=25\\.000,AUDIO=\"audio\"\n" + name + "/index\\.m3u8\n");
    EXPECT_TRUE(std::regex_search(master, entry)) << name << "\n" << master;
  }
  nlohmann::json whole = Probe({"-protocol_whitelist", "file", "-f", "hls", "-show_entries",
                                "stream=codec_type", pkg + "/master.m3u8"});
  EXPECT_GE(whole["streams"].size(), 5u);

  // The manifest lists exactly the package's files, each with its sha256.
  nlohmann::json manifest =
      nlohmann::json::parse(ReadFileBytes(out + "/manifest.json"), nullptr, false);
  ASSERT_EQ(manifest["deliverables"].size(), 1u);
  const nlohmann::json& item = manifest["deliverables"][0];
  EXPECT_EQ(item.value("status", ""), "delivered") << item.dump(2);
  EXPECT_EQ(item.value("path", ""), "web");
  ASSERT_EQ(item["renditions"].size(), 5u);
  // Normalised to the web's -16 LUFS (in its sound rendition) and gated
  // through the master playlist like any web deliverable.
  ASSERT_TRUE(item.contains("qc")) << item.dump(2);
  EXPECT_TRUE(item["qc"].value("passed", false)) << item["qc"].dump(2);
  EXPECT_NEAR(item["qc"].value("integrated_lufs", 0.0), -16, 0.5);
  EXPECT_LE(item["qc"].value("true_peak_db", 0.0), -1);
  std::set<std::string> on_disk;
  for (const auto& e : fs::recursive_directory_iterator(pkg)) {
    if (e.is_regular_file()) on_disk.insert(fs::relative(e.path(), pkg).string());
  }
  std::set<std::string> listed;
  for (const auto& f : item["files"]) {
    const std::string path = f.value("path", "");
    listed.insert(path);
    std::string sum;
    ASSERT_EQ(RunArgv({"sha256sum", pkg + "/" + path}, &sum), 0);
    EXPECT_EQ(sum.substr(0, 64), f.value("sha256", "")) << path;
  }
  EXPECT_EQ(listed, on_disk);
  EXPECT_TRUE(on_disk.count("master.m3u8"));
  // Nothing half-made beside it: no temporary folder, no parts.
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename() == kDeliveryCacheFolder) continue;  // kept on purpose
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

}  // namespace
}  // namespace reelfarm::testing
