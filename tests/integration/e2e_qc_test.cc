// Loudness and QC end to end (issue 13): `reelfarm run` on a source with
// known levels and faults (a tone at about -30 LUFS, 3 s of black, a held
// frame, 4 s of silence). A web deliverable is normalised to -16 LUFS in one
// linear pass from one measurement of the source, whole or in chunks, and
// an independent loudness measurement of the published file agrees; a
// deliverable whose gate fails is not published and says which gate and
// what was measured; the manifest carries the figures.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/output_cache.h"
#include "common/process_runner.h"
#include "common/qc.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

// 14 s at 320x180, 25 fps: picture 0-3 s, black 3-6 s, moving 6-8 s, one
// frame held 8-11 s, moving 11-14 s; a 1 kHz stereo tone at about -30 LUFS,
// silent from 8 to 12 s.
void MakeQcSource(const std::string& path) {
  const std::string pic = "testsrc2=s=320x180:r=25:d=";
  ASSERT_EQ(RunArgv(LavfiArgv({pic + "3", "color=c=black:s=320x180:r=25:d=3",
                               pic + "2,tpad=stop_mode=clone:stop_duration=3", pic + "3",
                               "sine=f=1000:r=48000:d=14"},
                              {"-filter_complex",
                               "[0:v][1:v][2:v][3:v]concat=n=4:v=1:a=0,format=yuv420p[v];"
                               "[4:a]volume=-8.7dB,volume=enable='between(t,8,12)':volume=0,"
                               "aformat=channel_layouts=stereo[a]",
                               "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset",
                               "ultrafast", "-g", "25", "-c:a", "pcm_s16le", path})),
            0);
}

// Integrated loudness and true peak of `path`, measured here with FFmpeg's
// loudnorm (BS.1770), independently of the farm.
pb::MediaAnalysis MeasureLoudness(const std::string& path) {
  DetectorOptions o;
  o.loudness = true;
  ProcessOptions popts;
  popts.argv = {"ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", path};
  for (const auto& a : DetectorArgs(o)) popts.argv.push_back(a);
  popts.timeout_s = 60;
  AnalysisParser parser(o);
  popts.on_stderr_line = [&](std::string_view line) { parser.Feed(line); };
  PosixProcessRunner runner;
  auto ran = runner.Run(popts);
  EXPECT_TRUE(ran.ok() && ran->Succeeded()) << path;
  return parser.Finish(0);
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in, nullptr, false);
}

const nlohmann::json* GateOf(const nlohmann::json& item, const std::string& gate) {
  if (!item.contains("qc")) return nullptr;
  for (const auto& g : item["qc"]["gates"]) {
    if (g.value("gate", "") == gate) return &g;
  }
  return nullptr;
}

TEST(E2eQc, LoudnessIsNormalisedGatesRefuseWhatFailsAndTheManifestCarriesTheFigures) {
  std::string dir = MakeTempDir("reelfarm-qc");
  MakeQcSource(dir + "/film.mov");
  pb::MediaAnalysis source = MeasureLoudness(dir + "/film.mov");
  ASSERT_TRUE(source.loudness_measured());
  EXPECT_NEAR(source.integrated_lufs(), -30, 1);

  std::ofstream(dir + "/spec.yaml") << R"(version: 1
name: qc
source: film.mov
output_dir: out
deliverables:
  - name: web
    preset: web-h264
    qc: {black_max_s: 2, freeze_max_s: 2, silence_max_s: 2}
  - name: web720
    preset: web-h264
    height: 720
    qc: {ssim_min: 0.9, psnr_min_db: 30}
  - name: strict
    preset: social-h264
    aspect: "1:1"
    height: 180
    qc: {black_max_s: 2, silence_max_s: 0, allow_in_source: false}
  - name: master
    preset: master-prores
    qc: {loudness: ebu-r128}
)";
  std::string log;
  // Two deliverables fail their gates: exit 3, the others delivered.
  ASSERT_EQ(RunArgv({kReelfarm, "run", dir + "/spec.yaml", "--workers", "2"}, &log), 3) << log;
  const std::string out = dir + "/out";
  nlohmann::json manifest = ReadJson(out + "/manifest.json");
  std::map<std::string, nlohmann::json> items;
  for (const auto& d : manifest["deliverables"]) items[d.value("name", "")] = d;
  ASSERT_EQ(items.size(), 4u) << manifest.dump(2);

  // The source was measured once, for everyone.
  ASSERT_TRUE(manifest.contains("source_analysis")) << manifest.dump(2);
  EXPECT_NEAR(manifest["source_analysis"].value("integrated_lufs", 0.0), -30, 1);
  ASSERT_EQ(manifest["source_analysis"]["black"].size(), 1u);
  EXPECT_NEAR(manifest["source_analysis"]["black"][0].value("start_s", 0.0), 3, 0.1);

  // Normalised to the web's -16 LUFS under -1 dBTP, whole (web) and with its
  // sound made once for its chunks (web720); measured again here.
  for (const char* name : {"web", "web720"}) {
    const nlohmann::json& item = items[name];
    ASSERT_EQ(item.value("status", ""), "delivered") << item.dump(2);
    pb::MediaAnalysis got = MeasureLoudness(out + "/" + item.value("path", ""));
    EXPECT_NEAR(got.integrated_lufs(), -16, 0.5) << name;
    EXPECT_LE(got.true_peak_db(), -1) << name;
    EXPECT_NEAR(item["qc"].value("integrated_lufs", 0.0), got.integrated_lufs(), 0.05) << name;
    EXPECT_TRUE(item["qc"].value("passed", false)) << name;
    EXPECT_NEAR(item["qc"].value("gain_db", 0.0), 14, 1) << name;
    ASSERT_NE(GateOf(item, "loudness"), nullptr) << name;
    EXPECT_TRUE((*GateOf(item, "loudness")).value("passed", false));
  }
  // web720 (made in time chunks) is compared with the source scaled as it
  // was: well above its floors, and the figures are in the manifest.
  for (const char* gate : {"ssim", "psnr"}) {
    const nlohmann::json* g = GateOf(items["web720"], gate);
    ASSERT_NE(g, nullptr) << gate;
    EXPECT_TRUE(g->value("passed", false)) << g->dump();
  }
  EXPECT_GT(items["web720"]["qc"].value("ssim", 0.0), 0.95);
  EXPECT_GT(items["web720"]["qc"].value("psnr_db", 0.0), 35);
  EXPECT_LT(items["web720"]["qc"].value("psnr_db", 100.0), 100) << "not compared with itself";

  // The source's black, held frame and silence are excused (they are its own).
  for (const char* gate : {"black", "freeze", "silence"}) {
    const nlohmann::json* g = GateOf(items["web"], gate);
    ASSERT_NE(g, nullptr) << gate;
    EXPECT_TRUE(g->value("passed", false)) << g->dump();
    EXPECT_NE(g->value("measured", "").find("as in the source"), std::string::npos) << g->dump();
  }

  // The strict crop allows no black at all beyond 2 s: refused, not published.
  const nlohmann::json& strict = items["strict"];
  EXPECT_EQ(strict.value("status", ""), "failed");
  EXPECT_FALSE(fs::exists(out + "/strict.mp4"));
  EXPECT_NE(strict.value("error", "").find("QC gate black failed: 3.0"), std::string::npos)
      << strict.dump(2);
  ASSERT_NE(GateOf(strict, "black"), nullptr) << strict.dump(2);
  EXPECT_FALSE((*GateOf(strict, "black")).value("passed", true));
  EXPECT_LE(strict.value("attempts", 0), 1) << "a QC failure is not retried";

  // The master is left as it is and checked against EBU R128: -30 is not -23.
  const nlohmann::json& master = items["master"];
  EXPECT_EQ(master.value("status", ""), "failed");
  EXPECT_FALSE(fs::exists(out + "/master.mov"));
  EXPECT_NE(master.value("error", "").find("QC gate loudness failed: -30."), std::string::npos)
      << master.dump(2);
  EXPECT_NEAR(master["qc"].value("integrated_lufs", 0.0), -30, 1);
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename() == kDeliveryCacheFolder) continue;  // kept on purpose
    EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();
  }
}

}  // namespace
}  // namespace reelfarm::testing
