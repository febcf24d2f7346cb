// End to end as a user runs it: `reelfarm run SPEC` (private Redis,
// coordinator, workers, all real processes) on every preset, crops and
// subtitles; every camera source kind through a running farm; invalid specs
// exiting 2 with nothing written. Outputs are checked with ffprobe and the
// manifest's checksums against the files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/output_cache.h"
#include "common/probe.h"
#include "common/process_runner.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

pb::MediaInfo Probe(const std::string& path) {
  PosixProcessRunner runner;
  auto json = RunProbe(runner, "ffprobe", path);
  EXPECT_TRUE(json.ok()) << path << ": " << json.status().ToString();
  if (!json.ok()) return {};
  auto info = MediaInfoFromProbeJson(*json);
  EXPECT_TRUE(info.ok());
  return info.ok() ? *info : pb::MediaInfo();
}

nlohmann::json ReadManifest(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  EXPECT_TRUE(in.good()) << "no manifest in " << dir;
  return nlohmann::json::parse(in, nullptr, false);
}

std::map<std::string, nlohmann::json> ByName(const nlohmann::json& manifest) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& d : manifest["deliverables"]) out[d.value("name", "")] = d;
  return out;
}

void ExpectChecksumsMatch(const std::string& dir, const nlohmann::json& manifest) {
  for (const auto& d : manifest["deliverables"]) {
    if (d.value("status", "") != "delivered") continue;
    std::string path = dir + "/" + d.value("path", "");
    auto sha = Sha256File(path);
    ASSERT_TRUE(sha.ok()) << path;
    EXPECT_EQ(d.value("sha256", ""), *sha) << path;
    EXPECT_EQ(d.value("bytes", int64_t{0}), static_cast<int64_t>(fs::file_size(path)));
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == kDeliveryCacheFolder) continue;  // kept on purpose
    EXPECT_NE(e.path().filename().string()[0], '.') << "temporary file left: " << e.path();
  }
}

TEST(E2eRun, EveryPresetCropAndSubtitleModeDeliversWithMatchingChecksums) {
  std::string dir = MakeTempDir("reelfarm-run");
  GenerateSource(SourceKind::kPlain, dir + "/film.mov", 2.0);
  WriteSrt(dir + "/film_en.srt", /*bom=*/true);
  std::ofstream(dir + "/spec.yaml") << R"(version: 1
name: every-preset
source: film.mov
output_dir: out
subtitles:
  en: film_en.srt
deliverables:
  - {name: master, preset: master-prores}
  - {name: mxf, preset: master-dnxhr}
  - {name: web, preset: web-h264, height: 120}
  - {name: hevc, preset: web-hevc, height: 120}
  - {name: reel, preset: social-h264, aspect: "9:16", height: 160}
  - {name: square, preset: social-h264, aspect: "1:1", height: 120, focus: {x: 0.2, y: 0.5}}
  - {name: portrait, preset: social-h264, aspect: "4:5", height: 150}
  - {name: burned, preset: web-h264, height: 180, subtitles: {language: en, mode: burn}}
  - {name: soft, preset: web-h264, subtitles: {language: en, mode: soft}}
  - {name: poster, preset: thumbnail-jpg, at: "00:00:01"}
  - {name: sound, preset: audio-wav}
)";
  std::string log;
  int rc = RunArgv({kReelfarm, "run", dir + "/spec.yaml", "--workers", "2"}, &log);
  ASSERT_EQ(rc, 0) << log;
  std::string out = dir + "/out";
  auto manifest = ReadManifest(out);
  ASSERT_EQ(manifest["deliverables"].size(), 11u);
  for (const auto& d : manifest["deliverables"]) {
    EXPECT_EQ(d.value("status", ""), "delivered") << d.dump();
  }
  ExpectChecksumsMatch(out, manifest);

  auto master = Probe(out + "/master.mov");
  EXPECT_EQ(master.video_codec(), "prores");
  EXPECT_EQ(master.pix_fmt(), "yuv422p10le");
  EXPECT_EQ(master.width(), 320);
  EXPECT_EQ(master.audio_codec(), "pcm_s24le");
  EXPECT_EQ(Probe(out + "/mxf.mxf").video_codec(), "dnxhd");
  auto web = Probe(out + "/web.mp4");
  EXPECT_EQ(web.video_codec(), "h264");
  EXPECT_EQ(web.height(), 120);
  EXPECT_EQ(web.audio_channels(), 2);
  EXPECT_EQ(Probe(out + "/hevc.mp4").video_codec(), "hevc");
  auto reel = Probe(out + "/reel.mp4");
  EXPECT_EQ(reel.height(), 160);
  EXPECT_EQ(reel.width(), 90);
  auto square = Probe(out + "/square.mp4");
  EXPECT_EQ(square.width(), square.height());
  auto portrait = Probe(out + "/portrait.mp4");
  EXPECT_EQ(portrait.height(), 150);
  EXPECT_EQ(portrait.width(), 120);
  EXPECT_EQ(Probe(out + "/soft.mp4").subtitle_codec(), "mov_text");
  EXPECT_FALSE(Probe(out + "/burned.mp4").has_subtitle());
  EXPECT_EQ(Probe(out + "/poster.jpg").video_codec(), "mjpeg");
  auto wav = Probe(out + "/sound.wav");
  EXPECT_FALSE(wav.has_video());
  EXPECT_EQ(wav.audio_codec(), "pcm_s24le");
  EXPECT_EQ(wav.audio_sample_rate(), 48000);
}

TEST(E2eRun, InvalidSpecExitsTwoNamingTheFieldAndWritesNothing) {
  std::string dir = MakeTempDir("reelfarm-run-bad");
  GenerateSource(SourceKind::kPlain, dir + "/film.mov", 1.0);
  std::ofstream(dir + "/bad.yaml") << "version: 1\n"
                                      "name: bad\n"
                                      "source: film.mov\n"
                                      "output_dir: out\n"
                                      "deliverables:\n"
                                      "  - name: web\n"
                                      "    preset: web-h264\n"
                                      "    height: 721\n";
  std::string log;
  int rc = RunArgv({kReelfarm, "run", dir + "/bad.yaml"}, &log);
  EXPECT_EQ(rc, 2);
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

// Every kind of source a camera makes, through one running farm.
TEST(E2eRun, EverySourceKindDeliversUprightEvenConstantRate) {
  LocalFarmOptions opts;
  opts.workers = 2;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");

  const std::vector<std::pair<std::string, SourceKind>> kinds = {
      {"rotated", SourceKind::kRotated},
      {"odd", SourceKind::kOddSize},
      {"vfr", SourceKind::kVfr},
      {"ntsc", SourceKind::kFps23976},
      {"surround", SourceKind::kSurround51},
      {"silent", SourceKind::kNoAudio}};
  std::map<std::string, std::string> ids;
  for (const auto& [name, kind] : kinds) {
    std::string sub = farm.dir() + "/" + name;
    fs::create_directories(sub);
    GenerateSource(kind, sub + "/src.mov", 2.0);
    std::ofstream(sub + "/spec.yaml") << "version: 1\nname: " << name
                                      << "\nsource: src.mov\noutput_dir: out\ndeliverables:\n"
                                         "  - {name: master, preset: master-prores}\n"
                                         "  - {name: web, preset: web-h264, height: 120}\n"
                                         "  - {name: poster, preset: thumbnail-jpg}\n"
                                         "  - {name: sound, preset: audio-wav}\n";
    auto id = farm.Submit(sub + "/spec.yaml");
    ASSERT_TRUE(id.ok()) << name << ": " << id.status().ToString();
    ids[name] = *id;
  }
  for (const auto& [name, id] : ids) {
    ASSERT_TRUE(LocalFarm::WaitFor(
        [&] {
          auto d = farm.Delivery(id);
          std::string s = d.is_object() ? d.value("state", "") : "";
          return s == "delivered" || s == "failed";
        },
        240))
        << name << farm.LogTail("coordinator");
  }
  for (const auto& [name, kind] : kinds) {
    SCOPED_TRACE(name);
    std::string out = farm.dir() + "/" + name + "/out";
    auto manifest = ReadManifest(out);
    ExpectChecksumsMatch(out, manifest);
    auto items = ByName(manifest);
    EXPECT_EQ(items["master"].value("status", ""), "delivered");
    EXPECT_EQ(items["web"].value("status", ""), "delivered");
    EXPECT_EQ(items["poster"].value("status", ""), "delivered");
    auto master = Probe(out + "/master.mov");
    auto web = Probe(out + "/web.mp4");
    EXPECT_EQ(master.rotation(), 0);
    EXPECT_EQ(web.rotation(), 0);
    EXPECT_EQ(master.width() % 2, 0);
    EXPECT_EQ(master.height() % 2, 0);
    EXPECT_EQ(web.height(), 120);
    if (kind == SourceKind::kRotated) {
      EXPECT_GT(master.height(), master.width()) << "a phone clip is published upright";
      EXPECT_LT(web.width(), web.height());
    }
    if (kind == SourceKind::kFps23976) {
      EXPECT_EQ(master.fps_num(), 24000);
      EXPECT_EQ(master.fps_den(), 1001);
    }
    if (kind == SourceKind::kSurround51) {
      EXPECT_EQ(master.audio_channels(), 6);
      EXPECT_EQ(web.audio_channels(), 2);
      EXPECT_EQ(Probe(out + "/sound.wav").audio_channels(), 6);
    }
    if (kind == SourceKind::kNoAudio) {
      EXPECT_FALSE(master.has_audio());
      EXPECT_FALSE(web.has_audio());
      EXPECT_EQ(items["sound"].value("status", ""), "failed");
      EXPECT_NE(items["sound"].value("error", "").find("audio"), std::string::npos);
      EXPECT_FALSE(fs::exists(out + "/sound.wav"));
      EXPECT_EQ(farm.Delivery(ids["silent"]).value("state", ""), "failed");
    } else {
      EXPECT_EQ(items["sound"].value("status", ""), "delivered");
    }
  }
}

}  // namespace
}  // namespace reelfarm::testing
