// Decode-once groups and chunked encodes (issue 5) with real FFmpeg: a
// chunked deliverable is frame-exact against the same deliverable encoded
// whole (frame count, durations, A/V start, no shifted frame at a boundary,
// keyframes at the chunk starts); a group publishes what verifies and
// reports the rest; both run end to end through `reelfarm run`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/output_cache.h"
#include "common/probe.h"
#include "common/process_runner.h"
#include "planning/planner.h"
#include "tests/support/cli_run.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kSeconds = 6;
constexpr int kFrames = kSeconds * 25;

// ffprobe -show_entries ... of one stream, as "key=value" pairs.
std::map<std::string, std::string> StreamFacts(const std::string& file, const std::string& stream,
                                               bool count_frames = false) {
  std::vector<std::string> argv = {"ffprobe", "-v", "error", "-select_streams", stream};
  if (count_frames) argv.push_back("-count_frames");
  for (const char* a : {"-show_entries", "stream=nb_read_frames,duration,start_time,codec_name",
                        "-of", "default=noprint_wrappers=1"}) {
    argv.push_back(a);
  }
  argv.push_back(file);
  std::string out;
  EXPECT_EQ(RunArgv(argv, &out), 0) << out;
  std::map<std::string, std::string> facts;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) facts[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return facts;
}

// Indexes of the key frames of the video stream.
std::vector<int> KeyFrames(const std::string& file) {
  std::string out;
  EXPECT_EQ(RunArgv({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                     "frame=key_frame", "-of", "csv=p=0", file},
                    &out),
            0);
  std::vector<int> keys;
  std::istringstream in(out);
  int index = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || !std::isdigit(static_cast<unsigned char>(line[0]))) continue;  // side data
    if (line[0] == '1') keys.push_back(index);
    ++index;
  }
  return keys;
}

// Per-frame PSNR (dB) of `a` against `b`, frame by frame in order.
std::vector<double> FramePsnr(const std::string& a, const std::string& b) {
  std::string out;
  EXPECT_EQ(RunArgv({"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", a, "-i", b,
                     "-lavfi", "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"},
                    &out),
            0)
      << out;
  std::vector<double> psnr;
  std::regex re(R"(psnr_avg:(inf|[0-9.]+))");
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, re)) psnr.push_back(m[1] == "inf" ? 100.0 : std::stod(m[1]));
  }
  return psnr;
}

class FanOutChunkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("reelfarm-chunks");
    source_ = MakeTestSource(dir_, "320x180", kSeconds);
    auto facts = ProbeSource(runner_, "ffprobe", source_);
    ASSERT_TRUE(facts.ok()) << facts.status().ToString();
    facts_ = *facts;
  }
  void TearDown() override { fs::remove_all(dir_); }

  DeliverySpec Spec(const std::string& out, std::vector<DeliverableSpec> ds) const {
    DeliverySpec spec;
    spec.spec_file = "test.yaml";
    spec.name = "chunks";
    spec.source = source_;
    spec.output_dir = dir_ + "/" + out;
    spec.deliverables = std::move(ds);
    return spec;
  }
  static DeliverableSpec Deliverable(const std::string& name, const std::string& preset,
                                     int height = 0) {
    DeliverableSpec d;
    d.name = name;
    d.preset = preset;
    d.height = height;
    // Pictures alone: no loudness normalisation or QC (e2e_qc_test).
    d.loudness = std::optional<LoudnessChoice>();
    d.qc = QcChoice{.none = true};
    return d;
  }
  // Runs every job of the plan in order (parts before what joins them).
  void RunPlan(const pb::Plan& plan) {
    JobExecutor executor(&runner_, JobExecutorOptions(), &clock_);
    uint64_t token = 1;
    for (const auto& job : plan.jobs()) {
      pb::Assign a;
      *a.mutable_job() = job;
      a.set_token(token++);
      pb::JobResult r = executor.Execute(a, nullptr, nullptr);
      ASSERT_TRUE(r.ok()) << job.id() << " (" << job.kind() << "): " << r.error() << "\n"
                          << r.log_tail();
    }
  }

  PosixProcessRunner runner_;
  RealClock clock_;
  std::string dir_;
  std::string source_;
  pb::SourceFacts facts_;
};

TEST_F(FanOutChunkTest, ChunkedEncodeIsFrameExactAgainstTheWholeEncode) {
  // The probe read the source's fixed GOP from its packets.
  EXPECT_EQ(facts_.gop_frames(), 12);
  EXPECT_NEAR(facts_.keyframe_interval_s(), 0.48, 1e-6);
  for (const std::string preset : {"web-h264", "master-prores"}) {
    SCOPED_TRACE(preset);
    PlannerOptions whole_options;
    whole_options.piece_cost = 0;  // one job
    pb::Plan whole =
        PlanDelivery(Spec("whole-" + preset, {Deliverable("film", preset)}), facts_, whole_options)
            .plan;
    PlannerOptions chunk_options;
    chunk_options.piece_cost = 0.01;  // tiny pieces ...
    chunk_options.min_chunk_s = 2;    // ... but none under 2 s: 3 chunks of about 50 frames
    pb::Plan chunked = PlanDelivery(Spec("chunked-" + preset, {Deliverable("film", preset)}),
                                    facts_, chunk_options)
                           .plan;
    ASSERT_EQ(whole.jobs_size(), 1);
    ASSERT_EQ(chunked.jobs_size(), 5) << "3 chunks, the audio, the assemble job";
    RunPlan(whole);
    RunPlan(chunked);
    const std::string a = whole.jobs(0).outputs(0).path();
    const std::string b = chunked.jobs(4).outputs(0).path();

    auto va = StreamFacts(a, "v:0", true), vb = StreamFacts(b, "v:0", true);
    EXPECT_EQ(va["nb_read_frames"], std::to_string(kFrames));
    EXPECT_EQ(vb["nb_read_frames"], va["nb_read_frames"]) << "same frame count";
    EXPECT_EQ(vb["codec_name"], va["codec_name"]);
    EXPECT_NEAR(std::stod(vb["duration"]), std::stod(va["duration"]), 0.001);
    EXPECT_NEAR(std::stod(vb["start_time"]), std::stod(va["start_time"]), 0.001);
    auto aa = StreamFacts(a, "a:0"), ab = StreamFacts(b, "a:0");
    EXPECT_NEAR(std::stod(ab["duration"]), std::stod(aa["duration"]), 0.001);
    EXPECT_NEAR(std::stod(ab["start_time"]), std::stod(aa["start_time"]), 0.001) << "A/V sync";

    // Every frame matches its counterpart: a duplicated or missing frame at
    // a boundary would shift the moving picture and drop PSNR far down.
    std::vector<double> psnr = FramePsnr(b, a);
    ASSERT_EQ(psnr.size(), static_cast<size_t>(kFrames));
    double worst = *std::min_element(psnr.begin(), psnr.end());
    EXPECT_GT(worst, 30.0) << "frame "
                           << (std::min_element(psnr.begin(), psnr.end()) - psnr.begin());
    std::vector<int> keys = KeyFrames(b);
    // Chunks start on the source's key frames (every 12 frames) nearest to
    // the equal shares 50 and 100: 48 and 96.
    for (int start : {0, 48, 96}) {
      EXPECT_NE(std::find(keys.begin(), keys.end(), start), keys.end()) << "key frame at " << start;
    }
    std::cout << "[ figures ] " << preset << ": " << vb["nb_read_frames"]
              << " frames in 3 chunks vs " << va["nb_read_frames"] << " whole; worst frame PSNR "
              << worst << " dB\n";
    // The parts are gone once joined.
    EXPECT_FALSE(fs::exists(dir_ + "/chunked-" + preset + "/.reelfarm-parts/film/chunk-000.mov"));
  }
}

TEST_F(FanOutChunkTest, AGroupPublishesTheOutputsThatVerifyAndReportsTheOthers) {
  PlannerOptions options;
  options.piece_cost = 1000;  // every picture is cheap: one decode-once group
  pb::Plan plan = PlanDelivery(Spec("group", {Deliverable("a", "web-h264", 180),
                                              Deliverable("b", "web-h264", 120),
                                              Deliverable("c", "master-prores", 90)}),
                               facts_, options)
                      .plan;
  ASSERT_EQ(plan.jobs_size(), 1);
  pb::Assign assign;
  *assign.mutable_job() = plan.jobs(0);
  assign.set_token(7);
  ASSERT_EQ(assign.job().kind(), "group");
  // b's expectation cannot hold: its file is refused, a's and c's publish.
  assign.mutable_job()->mutable_outputs(1)->mutable_expect()->set_width(1000);
  JobExecutor executor(&runner_, JobExecutorOptions(), &clock_);
  pb::JobResult r = executor.Execute(assign, nullptr, nullptr);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_THAT(r.error(), HasSubstr("verification failed for b"));
  ASSERT_EQ(r.outputs_size(), 2);
  EXPECT_EQ(r.outputs(0).deliverable(), "a");
  EXPECT_EQ(r.outputs(1).deliverable(), "c");
  EXPECT_TRUE(fs::exists(dir_ + "/group/a.mp4"));
  EXPECT_TRUE(fs::exists(dir_ + "/group/c.mov"));
  EXPECT_FALSE(fs::exists(dir_ + "/group/b.mp4"));
  for (const auto& e : fs::directory_iterator(dir_ + "/group")) {
    EXPECT_NE(e.path().filename().string()[0], '.') << "temporary left: " << e.path();
  }
}

TEST_F(FanOutChunkTest, ReelfarmRunGroupsOnOneWorkerAndChunksOnSeveral) {
  std::ofstream(dir_ + "/group.yaml")
      << "version: 1\nname: grouped\nsource: source.mov\noutput_dir: grouped\ndeliverables:\n"
         "  - {name: a, preset: web-h264, height: 180}\n"
         "  - {name: b, preset: social-h264, aspect: \"1:1\", height: 120}\n"
         "  - {name: poster, preset: thumbnail-jpg}\n";
  CliRun grouped = RunCli({"run", "--workers", "1", dir_ + "/group.yaml"});
  ASSERT_EQ(grouped.rc, 0) << grouped.err;
  std::ifstream gm(dir_ + "/grouped/manifest.json");
  auto manifest = nlohmann::json::parse(gm);
  ASSERT_EQ(manifest["deliverables"].size(), 3u);

  std::ofstream(dir_ + "/chunk.yaml")
      << "version: 1\nname: chunked\nsource: source.mov\noutput_dir: chunked\ndeliverables:\n"
         "  - {name: film, preset: web-h264}\n";
  CliRun chunked = RunCli({"run", "--workers", "3", "--piece-cost", "0.01", "--min-chunk-s", "2",
                           dir_ + "/chunk.yaml"});
  ASSERT_EQ(chunked.rc, 0) << chunked.err;
  std::ifstream cm(dir_ + "/chunked/manifest.json");
  manifest = nlohmann::json::parse(cm);
  ASSERT_EQ(manifest["deliverables"].size(), 1u) << "parts are not deliverables";
  EXPECT_EQ(manifest["deliverables"][0].value("status", ""), "delivered");
  EXPECT_EQ(StreamFacts(dir_ + "/chunked/film.mp4", "v:0", true)["nb_read_frames"],
            std::to_string(kFrames));
  EXPECT_FALSE(fs::exists(dir_ + "/chunked/.reelfarm-parts")) << "parts removed at the end";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_ + "/chunked")) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("film.mp4", "manifest.json", "manifests",
                                                     kDeliveryCacheFolder));
}

}  // namespace
}  // namespace reelfarm::testing
