// Issue 12, items 12-13, as a user runs it (`reelfarm run`): soft subtitles
// whose cues run past the end of the source are clipped to it, and a
// subtitle file FFmpeg cannot read is named in the error, not the source.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/probe.h"
#include "common/process_runner.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

TEST(E2eSubtitles, SoftCuesPastTheEndOfTheSourceAreClippedToIt) {
  const std::string dir = MakeTempDir("reelfarm-subs");
  GenerateSource(SourceKind::kPlain, dir + "/film.mov", 2.0);
  // One cue inside, one running past the end (2 s), one starting after it.
  std::ofstream(dir + "/long_en.srt") << "1\n00:00:00,200 --> 00:00:00,800\nInside.\n\n"
                                         "2\n00:00:01,500 --> 00:00:05,000\nPast the end.\n\n"
                                         "3\n00:00:04,000 --> 00:00:06,000\nAfter the end.\n";
  std::ofstream(dir + "/spec.yaml") << R"(version: 1
name: subs
source: film.mov
output_dir: out
subtitles:
  en: long_en.srt
deliverables:
  - {name: soft, preset: web-h264, height: 90, subtitles: {language: en, mode: soft}}
)";
  std::string log;
  int rc = RunArgv({kReelfarm, "run", dir + "/spec.yaml", "--workers", "1"}, &log);
  ASSERT_EQ(rc, 0) << log;
  std::ifstream in(dir + "/out/manifest.json");
  auto manifest = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(manifest.is_object()) << log;
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& d : manifest["deliverables"]) by_name[d.value("name", "")] = d;

  // Before: verification failed for good ("duration 5.000 s, expected 2").
  ASSERT_EQ(by_name["soft"].value("status", ""), "delivered") << by_name["soft"].dump(2);
  PosixProcessRunner runner;
  auto json = RunProbe(runner, "ffprobe", dir + "/out/soft.mp4");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  auto info = MediaInfoFromProbeJson(*json);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subtitle_codec(), "mov_text");
  EXPECT_NEAR(info->duration_s(), 2.0, 0.05) << "the file is as long as its picture";
  // Every cue ends by the end of the source; the one after it is gone.
  std::string packets;
  ASSERT_EQ(RunArgv({"ffprobe", "-v", "error", "-select_streams", "s", "-show_entries",
                     "packet=pts_time,duration_time", "-of", "csv=p=0", dir + "/out/soft.mp4"},
                    &packets),
            0);
  std::istringstream lines(packets);
  std::string line;
  double last_end = 0;
  int cues = 0;
  while (std::getline(lines, line)) {
    double pts = 0, duration = 0;
    if (std::sscanf(line.c_str(), "%lf,%lf", &pts, &duration) != 2) continue;
    EXPECT_LT(pts, 2.0) << line;
    last_end = std::max(last_end, pts + duration);
    ++cues;
  }
  EXPECT_GT(cues, 0) << packets;
  EXPECT_NEAR(last_end, 2.0, 0.001) << "the cue past the end is cut at it:\n" << packets;

  fs::remove_all(dir);
}

// Every subtitle file passes the spec's checks (UTF-8 text) and FFmpeg
// reads any such text; what fails is a file replaced after planning, read
// by the subtitles filter (burned). (FFmpeg's SRT demuxer, pinned for soft
// subtitles, reads even binary noise without an error.)
TEST(E2eSubtitles, ASubtitleFileThatCannotBeReadIsNamedNotTheSource) {
  LocalFarmOptions opts;
  opts.workers = 1;  // started after the file is replaced
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  GenerateSource(SourceKind::kPlain, farm.dir() + "/film.mov", 1.0);
  const std::string subs = farm.dir() + "/film_fr.srt";
  WriteSrt(subs);
  std::ofstream(farm.dir() + "/spec.yaml")
      << "version: 1\nname: badsubs\nsource: film.mov\noutput_dir: out\n"
         "subtitles:\n  fr: film_fr.srt\ndeliverables:\n"
         "  - {name: burned, preset: web-h264, height: 90, subtitles: {language: fr, mode: "
         "burn}}\n";
  auto id = farm.Submit(farm.dir() + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  // Binary noise in its place.
  std::string noise(4096, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 7919 + 13) % 251);
  std::ofstream(subs, std::ios::binary | std::ios::trunc) << noise;
  ASSERT_TRUE(farm.StartWorker(0).ok());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 120))
      << farm.Delivery(*id).dump(2);
  auto d = farm.Delivery(*id);
  ASSERT_EQ(d["items"].size(), 1u) << d.dump(2);
  for (const auto& item : d["items"]) {
    // Before: "source .../film.mov cannot be decoded".
    EXPECT_EQ(item.value("state", ""), "failed") << item.dump(2);
    const std::string error = item.value("error", "");
    EXPECT_NE(error.find("subtitle file " + subs + " cannot be decoded"), std::string::npos)
        << error;
    EXPECT_EQ(error.find("source"), std::string::npos) << error;
    EXPECT_LE(item.value("attempts", 0), 1) << "the same file fails the same way anywhere";
  }
}

}  // namespace
}  // namespace reelfarm::testing
