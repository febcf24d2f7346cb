// Every preset, from every kind of source, through real FFmpeg: probe the
// generated source, plan, run the job's exact argv (writing to a temporary
// name without the extension, as the worker does), probe the result and
// check it against the plan's expectation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/probe.h"
#include "common/process_runner.h"
#include "planning/planner.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm {
namespace {

namespace fs = std::filesystem;
using testing::LavfiArgv;
using testing::MakeTempDir;
using testing::RunArgv;
using testing::SourceKind;

const char* KindName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kPlain:
      return "plain";
    case SourceKind::kRotated:
      return "rotated";
    case SourceKind::kOddSize:
      return "odd";
    case SourceKind::kVfr:
      return "vfr";
    case SourceKind::kFps23976:
      return "fps23976";
    case SourceKind::kSurround51:
      return "surround51";
    case SourceKind::kNoAudio:
      return "noaudio";
  }
  return "unknown";
}

class MediaEnv {
 public:
  static MediaEnv& Get() {
    static MediaEnv* env = new MediaEnv();
    return *env;
  }
  const std::string& dir() const { return dir_; }

  // Generated once per binary, on first use.
  const std::string& Source(SourceKind kind) {
    auto it = sources_.find(kind);
    if (it != sources_.end()) return it->second;
    std::string path = dir_ + "/src-" + KindName(kind) + ".mov";
    return sources_[kind] = testing::GenerateSource(kind, path);
  }

  // A sidecar whose path has every character filtergraphs treat specially.
  const std::string& Subtitles() {
    if (subs_.empty()) {
      fs::create_directories(dir_ + "/subs [en], v2");
      subs_ = testing::WriteSrt(dir_ + "/subs [en], v2/it's: launch; en.srt", /*bom=*/true);
    }
    return subs_;
  }

  ~MediaEnv() = default;

 private:
  MediaEnv() : dir_(MakeTempDir("reelfarm-preset")) {}
  std::string dir_;
  std::string subs_;
  std::map<SourceKind, std::string> sources_;
};

class CleanupEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    if (::testing::UnitTest::GetInstance()->Passed()) fs::remove_all(MediaEnv::Get().dir(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

StatusOr<pb::SourceFacts> Probe(const std::string& path) {
  PosixProcessRunner runner;
  return ProbeSource(runner, "ffprobe", path);
}

StatusOr<pb::MediaInfo> ProbeMedia(const std::string& path) {
  PosixProcessRunner runner;
  StatusOr<std::string> json = RunProbe(runner, "ffprobe", path);
  if (!json.ok()) return json.status();
  return MediaInfoFromProbeJson(*json);
}

double Rate(int num, int den) { return den > 0 ? static_cast<double>(num) / den : 0; }

// What the worker checks, with the tolerances; empty when it holds.
std::string Mismatches(const pb::MediaInfo& want, const pb::MediaInfo& got) {
  std::ostringstream out;
  auto check = [&](bool ok, const std::string& what, const std::string& w, const std::string& g) {
    if (!ok) out << what << ": want " << w << ", got " << g << "; ";
  };
  if (!want.format_name().empty()) {
    check(got.format_name().find(want.format_name()) != std::string::npos, "format",
          want.format_name(), got.format_name());
  }
  check(want.has_video() == got.has_video(), "has_video", std::to_string(want.has_video()),
        std::to_string(got.has_video()));
  if (!want.video_codec().empty()) {
    check(want.video_codec() == got.video_codec(), "video codec", want.video_codec(),
          got.video_codec());
  }
  if (!want.video_profile().empty()) {
    check(want.video_profile() == got.video_profile(), "profile", want.video_profile(),
          got.video_profile());
  }
  if (want.width() > 0) {
    check(want.width() == got.width() && want.height() == got.height(), "size",
          std::to_string(want.width()) + "x" + std::to_string(want.height()),
          std::to_string(got.width()) + "x" + std::to_string(got.height()));
  }
  if (!want.pix_fmt().empty()) {
    check(want.pix_fmt() == got.pix_fmt(), "pix_fmt", want.pix_fmt(), got.pix_fmt());
  }
  double want_fps = Rate(want.fps_num(), want.fps_den());
  if (want_fps > 0) {
    double got_fps = Rate(got.fps_num(), got.fps_den());
    check(std::fabs(got_fps - want_fps) <= want_fps * 0.002, "fps",
          std::to_string(want.fps_num()) + "/" + std::to_string(want.fps_den()),
          std::to_string(got.fps_num()) + "/" + std::to_string(got.fps_den()));
  }
  if (want.duration_s() > 0) {
    double frame = want_fps > 0 ? 1.0 / want_fps : 0.05;
    check(std::fabs(got.duration_s() - want.duration_s()) <= 2 * frame + 1e-3, "duration",
          std::to_string(want.duration_s()), std::to_string(got.duration_s()));
  }
  check(want.has_audio() == got.has_audio(), "has_audio", std::to_string(want.has_audio()),
        std::to_string(got.has_audio()));
  if (!want.audio_codec().empty()) {
    check(want.audio_codec() == got.audio_codec(), "audio codec", want.audio_codec(),
          got.audio_codec());
  }
  if (want.audio_channels() > 0) {
    check(want.audio_channels() == got.audio_channels(), "channels",
          std::to_string(want.audio_channels()), std::to_string(got.audio_channels()));
  }
  if (want.audio_sample_rate() > 0) {
    check(want.audio_sample_rate() == got.audio_sample_rate(), "sample rate",
          std::to_string(want.audio_sample_rate()), std::to_string(got.audio_sample_rate()));
  }
  check(want.has_subtitle() == got.has_subtitle(), "has_subtitle",
        std::to_string(want.has_subtitle()), std::to_string(got.has_subtitle()));
  if (!want.subtitle_codec().empty()) {
    check(want.subtitle_codec() == got.subtitle_codec(), "subtitle codec", want.subtitle_codec(),
          got.subtitle_codec());
  }
  check(got.rotation() == 0, "rotation", "0", std::to_string(got.rotation()));
  return out.str();
}

struct Case {
  std::string name;  // deliverable name, unique across cases
  std::string preset;
  SourceKind kind = SourceKind::kPlain;
  int height = 0;
  int aspect_num = 0, aspect_den = 0;
  double focus_x = 0.5;
  std::string subtitles;  // "", "burn" or "soft"
  double at_s = -1;
  std::string dynamic_range = "sdr";

  Case H(int h) const {
    Case c = *this;
    c.height = h;
    return c;
  }
  Case Crop(int num, int den, double fx = 0.5) const {
    Case c = *this;
    c.aspect_num = num;
    c.aspect_den = den;
    c.focus_x = fx;
    return c;
  }
  Case Subs(const std::string& mode) const {
    Case c = *this;
    c.subtitles = mode;
    return c;
  }
  Case At(double s) const {
    Case c = *this;
    c.at_s = s;
    return c;
  }
};

Case C(const std::string& name, const std::string& preset, SourceKind kind) {
  Case c;
  c.name = name;
  c.preset = preset;
  c.kind = kind;
  return c;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

DeliverySpec SpecFor(const Case& c, const std::string& source, const std::string& out_dir) {
  DeliverySpec spec;
  spec.spec_file = "preset_encode_test.yaml";
  spec.name = "preset-encode";
  spec.source = source;
  spec.output_dir = out_dir;
  spec.subtitles["en"] = MediaEnv::Get().Subtitles();
  DeliverableSpec d;
  d.name = c.name;
  d.preset = c.preset;
  d.height = c.height;
  d.aspect_num = c.aspect_num;
  d.aspect_den = c.aspect_den;
  d.focus_x = c.focus_x;
  if (!c.subtitles.empty()) d.subtitles = SubtitleChoice{"en", c.subtitles};
  if (c.at_s >= 0) d.at_s = c.at_s;
  d.dynamic_range = c.dynamic_range;
  // The encode alone: no loudness normalisation or QC gates, whose analyse
  // job and worker-side passes e2e_qc_test runs through a farm.
  d.loudness = std::optional<LoudnessChoice>();
  d.qc = QcChoice{.none = true};
  spec.deliverables.push_back(d);
  return spec;
}

// Runs `job` as the worker would: the final path swapped for a temporary
// name without extension, verified there, then renamed.
std::string RunJob(const pb::Job& job, pb::MediaInfo* media) {
  if (job.outputs_size() != 1) return "expected one output";
  const std::string final_path = job.outputs(0).path();
  const std::string temp_path =
      fs::path(final_path).parent_path().string() + "/." + job.outputs(0).deliverable() + ".part-1";
  ProcessOptions opts;
  int swapped = 0;
  for (const std::string& a : job.argv()) {
    if (a == final_path) {
      opts.argv.push_back(temp_path);
      ++swapped;
    } else {
      opts.argv.push_back(a);
    }
  }
  if (swapped != 1) return "the final path is not exactly one argv element";
  opts.timeout_s = job.timeout_s();
  PosixProcessRunner runner;
  StatusOr<ProcessResult> run = runner.Run(opts);
  if (!run.ok()) return "could not start ffmpeg: " + run.status().ToString();
  if (!run->Succeeded()) return "ffmpeg " + run->Describe() + ": " + run->stderr_tail;
  if (run->stdout_data.find("progress=end") == std::string::npos) {
    return "no -progress output on stdout";
  }
  StatusOr<pb::MediaInfo> probed = ProbeMedia(temp_path);
  if (!probed.ok()) return probed.status().ToString();
  *media = *probed;
  if (std::rename(temp_path.c_str(), final_path.c_str()) != 0) return "rename failed";
  return "";
}

class PresetEncodeTest : public ::testing::TestWithParam<Case> {};

TEST_P(PresetEncodeTest, OutputMatchesThePlan) {
  const Case& c = GetParam();
  const std::string& source = MediaEnv::Get().Source(c.kind);
  ASSERT_FALSE(source.empty());
  StatusOr<pb::SourceFacts> facts = Probe(source);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();

  const std::string out_dir = MediaEnv::Get().dir() + "/out-" + c.name;
  fs::create_directories(out_dir);
  PlannerOptions options;
  PlanResult plan = PlanDelivery(SpecFor(c, source, out_dir), *facts, options);
  ASSERT_TRUE(plan.errors.empty()) << plan.errors[0].ToString();
  ASSERT_EQ(plan.plan.failures_size(), 0) << plan.plan.failures(0).reason();
  // One job, or (soft subtitles) the subtitle track's part, then the job
  // that copies it in.
  ASSERT_EQ(plan.plan.jobs_size(), c.subtitles == "soft" ? 2 : 1);
  for (int k = 0; k + 1 < plan.plan.jobs_size(); ++k) {
    const pb::Job& part = plan.plan.jobs(k);
    ASSERT_TRUE(part.outputs(0).intermediate());
    fs::create_directories(fs::path(part.outputs(0).path()).parent_path());
    pb::MediaInfo part_media;
    ASSERT_EQ(RunJob(part, &part_media), "");
    EXPECT_EQ(CompareMedia(part.outputs(0).expect(), part_media), "");
  }
  const pb::Job& job = plan.plan.jobs(plan.plan.jobs_size() - 1);

  pb::MediaInfo media;
  std::string error = RunJob(job, &media);
  ASSERT_EQ(error, "");
  for (const auto& path : job.remove_after()) fs::remove(path);
  fs::remove_all(out_dir + "/" + kPartsFolder);
  const pb::MediaInfo& expect = job.outputs(0).expect();
  EXPECT_EQ(Mismatches(expect, media), "") << "argv: " << ::testing::PrintToString(job.argv());
  // And the worker's own verification accepts it.
  EXPECT_EQ(CompareMedia(expect, media), "");
  // Only the final file is left in the output folder.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out_dir)) names.push_back(e.path().filename());
  EXPECT_THAT(names, ::testing::ElementsAre(job.outputs(0).relative_path()));
}

INSTANTIATE_TEST_SUITE_P(
    Presets, PresetEncodeTest,
    ::testing::Values(C("prores_plain", "master-prores", SourceKind::kPlain),
                      C("prores_rotated", "master-prores", SourceKind::kRotated),
                      C("prores_surround", "master-prores", SourceKind::kSurround51),
                      C("prores_soft", "master-prores", SourceKind::kPlain).Subs("soft"),
                      C("dnxhr_plain", "master-dnxhr", SourceKind::kPlain),
                      C("dnxhr_surround", "master-dnxhr", SourceKind::kSurround51),
                      C("dnxhr_23976", "master-dnxhr", SourceKind::kFps23976),
                      C("dnxhr_vfr", "master-dnxhr", SourceKind::kVfr),
                      C("dnxhr_odd", "master-dnxhr", SourceKind::kOddSize),
                      C("h264_plain", "web-h264", SourceKind::kPlain).H(120),
                      C("h264_rotated", "web-h264", SourceKind::kRotated),
                      C("h264_odd", "web-h264", SourceKind::kOddSize),
                      C("h264_vfr", "web-h264", SourceKind::kVfr),
                      C("h264_23976", "web-h264", SourceKind::kFps23976),
                      C("h264_surround", "web-h264", SourceKind::kSurround51),
                      C("h264_noaudio", "web-h264", SourceKind::kNoAudio),
                      C("h264_burn", "web-h264", SourceKind::kPlain).Subs("burn"),
                      C("h264_soft", "web-h264", SourceKind::kPlain).Subs("soft"),
                      C("hevc_plain", "web-hevc", SourceKind::kPlain),
                      C("hevc_23976", "web-hevc", SourceKind::kFps23976).H(90),
                      C("social_9x16", "social-h264", SourceKind::kPlain).H(320).Crop(9, 16),
                      C("social_1x1", "social-h264", SourceKind::kPlain).Crop(1, 1, 0.0),
                      C("social_4x5", "social-h264", SourceKind::kRotated).Crop(4, 5),
                      C("social_4x5_burn", "social-h264", SourceKind::kOddSize)
                          .H(200)
                          .Crop(4, 5, 1.0)
                          .Subs("burn"),
                      C("social_noaudio", "social-h264", SourceKind::kNoAudio).Crop(9, 16),
                      C("thumb_plain", "thumbnail-jpg", SourceKind::kPlain).At(1.0),
                      C("thumb_rotated", "thumbnail-jpg", SourceKind::kRotated),
                      C("thumb_odd", "thumbnail-jpg", SourceKind::kOddSize).H(90),
                      C("thumb_end", "thumbnail-jpg", SourceKind::kVfr).At(1.99),
                      C("thumb_burn", "thumbnail-jpg", SourceKind::kPlain).Subs("burn").At(0.5),
                      C("wav_plain", "audio-wav", SourceKind::kPlain),
                      C("wav_surround", "audio-wav", SourceKind::kSurround51)),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Issue 18: social crops come out at exactly the size asked for, from any
// source: height x aspect rounded to even once, square pixels.
TEST(ExactCropSizeTest, EveryAspectAndHeightFromEverySourceShape) {
  const std::string dir = MediaEnv::Get().dir() + "/crop-sizes";
  fs::create_directories(dir);
  struct Source {
    std::string name;
    std::string path;
  };
  // Four frames each: the size is the point, not the length.
  auto make = [&](const std::string& name, const std::string& size, const std::string& vf,
                  const std::string& pix_fmt) {
    std::string path = dir + "/" + name + ".mov";
    EXPECT_EQ(RunArgv(LavfiArgv({"testsrc2=s=" + size + ":r=25:d=0.16"},
                                {"-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                                 pix_fmt, "-f", "mov", path})),
              0)
        << name;
    return Source{name, path};
  };
  std::vector<Source> sources = {
      make("720p", "1280x720", "setsar=1", "yuv420p"),
      // testsrc2 draws even sizes only; 4:4:4 keeps an odd one.
      make("odd", "1918x1080", "scale=1917:1079,setsar=1", "yuv444p"),
      make("pal-anamorphic", "720x576", "setsar=64/45", "yuv420p"),
      make("uhd", "3840x2160", "setsar=1", "yuv420p"),
      {"phone-rotated", MediaEnv::Get().Source(SourceKind::kRotated)},
  };
  struct Ask {
    int num, den, height, want_w;
  };
  const std::vector<Ask> asks = {{9, 16, 1920, 1080}, {1, 1, 1080, 1080}, {4, 5, 1350, 1080},
                                 {9, 16, 650, 366},   {1, 1, 486, 486},   {4, 5, 250, 200}};
  for (const Source& src : sources) {
    ASSERT_FALSE(src.path.empty());
    StatusOr<pb::SourceFacts> facts = Probe(src.path);
    ASSERT_TRUE(facts.ok()) << src.name << ": " << facts.status().ToString();
    for (const Ask& ask : asks) {
      const std::string name = src.name + "-" + std::to_string(ask.num) + "x" +
                               std::to_string(ask.den) + "-" + std::to_string(ask.height);
      SCOPED_TRACE(name);
      Case c = C(name, "social-h264", SourceKind::kPlain).H(ask.height).Crop(ask.num, ask.den);
      const std::string out_dir = dir + "/out-" + name;
      fs::create_directories(out_dir);
      PlanResult plan = PlanDelivery(SpecFor(c, src.path, out_dir), *facts, PlannerOptions());
      ASSERT_TRUE(plan.errors.empty()) << plan.errors[0].ToString();
      ASSERT_EQ(plan.plan.jobs_size(), 1);
      const pb::Job& job = plan.plan.jobs(0);
      EXPECT_EQ(job.outputs(0).expect().width(), ask.want_w);
      EXPECT_EQ(job.outputs(0).expect().height(), ask.height);
      pb::MediaInfo media;
      ASSERT_EQ(RunJob(job, &media), "") << ::testing::PrintToString(job.argv());
      EXPECT_EQ(media.width(), ask.want_w) << ::testing::PrintToString(job.argv());
      EXPECT_EQ(media.height(), ask.height);
      EXPECT_EQ(CompareMedia(job.outputs(0).expect(), media), "");
      std::string sar;
      RunArgv({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
               "stream=sample_aspect_ratio", "-of", "csv=p=0", job.outputs(0).path()},
              &sar);
      EXPECT_TRUE(sar == "1:1\n" || sar == "N/A\n" || sar.empty()) << "square pixels, got " << sar;
      fs::remove_all(out_dir);
    }
  }
}

// Issue 17: broadcast and HDR sources. ffmpeg's idet filter on `path`:
// {TFF, BFF, progressive} frames of its multi-frame detection.
std::array<int, 3> Idet(const std::string& path) {
  ProcessOptions opts;
  opts.argv = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-i", path,
               "-vf",    "idet",         "-an",      "-f",        "null", "-"};
  opts.timeout_s = 120;
  opts.stderr_tail_bytes = 16384;
  PosixProcessRunner runner;
  auto run = runner.Run(opts);
  std::array<int, 3> counts = {-1, -1, -1};
  if (!run.ok()) return counts;
  const std::string& log = run->stderr_tail;
  size_t at = log.rfind("Multi frame detection:");
  if (at != std::string::npos) {
    std::sscanf(log.c_str() + at, "Multi frame detection: TFF: %d BFF: %d Progressive: %d",
                &counts[0], &counts[1], &counts[2]);
  }
  return counts;
}

// The mean luma of an 8x8 block at (x, y) of the first frame.
double LumaAt(const std::string& path, int x, int y) {
  ProcessOptions opts;
  opts.argv = {"ffmpeg",
               "-hide_banner",
               "-nostdin",
               "-loglevel",
               "info",
               "-i",
               path,
               "-vf",
               "crop=8:8:" + std::to_string(x) + ":" + std::to_string(y) +
                   ",format=yuv420p,signalstats,metadata=print:key=lavfi.signalstats.YAVG",
               "-frames:v",
               "1",
               "-f",
               "null",
               "-"};
  opts.timeout_s = 60;
  opts.stderr_tail_bytes = 16384;
  PosixProcessRunner runner;
  auto run = runner.Run(opts);
  if (!run.ok()) return -1;
  size_t at = run->stderr_tail.find("YAVG=");
  return at == std::string::npos ? -1 : std::atof(run->stderr_tail.c_str() + at + 5);
}

// Plans one deliverable of `source` (probed) and runs its job; returns the
// output's path, "" after a failure it reports.
std::string PlanAndRun(const std::string& name, const std::string& source,
                       const pb::SourceFacts& facts, Case c) {
  c.name = name;
  const std::string out_dir = MediaEnv::Get().dir() + "/out-" + name;
  fs::create_directories(out_dir);
  PlanResult plan = PlanDelivery(SpecFor(c, source, out_dir), facts, PlannerOptions());
  EXPECT_TRUE(plan.errors.empty());
  if (plan.plan.failures_size() > 0) {
    ADD_FAILURE() << name << ": " << plan.plan.failures(0).reason();
    return "";
  }
  EXPECT_EQ(plan.plan.jobs_size(), 1) << name;
  if (plan.plan.jobs_size() != 1) return "";
  const pb::Job& job = plan.plan.jobs(0);
  pb::MediaInfo media;
  std::string error = RunJob(job, &media);
  EXPECT_EQ(error, "") << name;
  EXPECT_EQ(CompareMedia(job.outputs(0).expect(), media), "")
      << name << ": " << ::testing::PrintToString(job.argv());
  return error.empty() ? job.outputs(0).path() : "";
}

TEST(BroadcastHdrTest,
     AnInterlacedSourceIsDeinterlacedForProgressiveDeliverablesAndKeptByTheMaster) {
  // 1080i50 whose fields come from 50p motion: field n of a frame is
  // frame 2n (top) or 2n+1 (bottom) of the moving picture.
  const std::string source = MediaEnv::Get().dir() + "/src-1080i50.mov";
  ASSERT_EQ(RunArgv(LavfiArgv(
                {"testsrc2=s=1920x1080:r=50:d=1.2,tinterlace=mode=interleave_top,setfield=tff"},
                {"-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264-params",
                 "tff=1", "-pix_fmt", "yuv420p", "-f", "mov", source})),
            0);
  StatusOr<pb::SourceFacts> facts = Probe(source);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_EQ(facts->field_order(), "tt");
  EXPECT_EQ(facts->fps_num(), 25);
  const auto src = Idet(source);
  ASSERT_GT(src[0], src[2]) << "idet sees the source's fields (top first)";
  EXPECT_FALSE(facts->field_order_from_idet());

  // The same fields woven into frames flagged progressive (a wrong flag, as
  // some capture chains write): the probe's idet pass finds them.
  const std::string mislabelled = MediaEnv::Get().dir() + "/src-1080i50-flagged-p.mov";
  ASSERT_EQ(RunArgv(LavfiArgv(
                {"testsrc2=s=1920x1080:r=50:d=1.2,tinterlace=mode=interleave_top,setfield=prog"},
                {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mov",
                 mislabelled})),
            0);
  {
    PosixProcessRunner runner;
    StatusOr<pb::SourceFacts> flagged = ProbeSource(runner, "ffprobe", mislabelled);
    ASSERT_TRUE(flagged.ok());
    EXPECT_EQ(flagged->field_order(), "progressive") << "what the stream says";
    StatusOr<pb::SourceFacts> checked = ProbeSource(runner, "ffprobe", mislabelled, 60, "ffmpeg");
    ASSERT_TRUE(checked.ok());
    EXPECT_EQ(checked->field_order(), "tt") << "what idet sees";
    EXPECT_TRUE(checked->field_order_from_idet());
    // A truly progressive source stays so.
    StatusOr<pb::SourceFacts> plain =
        ProbeSource(runner, "ffprobe", MediaEnv::Get().Source(SourceKind::kPlain), 60, "ffmpeg");
    ASSERT_TRUE(plain.ok());
    EXPECT_NE(plain->field_order(), "tt");
    EXPECT_NE(plain->field_order(), "bb");
  }

  for (const auto& [name, c] : std::vector<std::pair<std::string, Case>>{
           {"i50-web-full", C("", "web-h264", SourceKind::kPlain)},
           {"i50-web-540", C("", "web-h264", SourceKind::kPlain).H(540)},
           {"i50-social", C("", "social-h264", SourceKind::kPlain).H(360).Crop(1, 1)}}) {
    SCOPED_TRACE(name);
    std::string out = PlanAndRun(name, source, *facts, c);
    ASSERT_FALSE(out.empty());
    const auto got = Idet(out);
    EXPECT_GT(got[2], got[0] + got[1])
        << "no combing: TFF " << got[0] << ", BFF " << got[1] << ", progressive " << got[2];
  }
  // The master keeps both fields of every frame, coded and tagged as such.
  std::string master =
      PlanAndRun("i50-master", source, *facts, C("", "master-prores", SourceKind::kPlain));
  ASSERT_FALSE(master.empty());
  auto media = ProbeMedia(master);
  ASSERT_TRUE(media.ok());
  EXPECT_EQ(media->field_order(), "tt");
  EXPECT_EQ(media->height(), 1080);
  const auto kept = Idet(master);
  EXPECT_GT(kept[0], kept[2]) << "still interlaced";

  // DNxHR cannot keep the fields in FFmpeg 5.1: said, not done wrongly.
  Case dnx = C("i50-dnxhr", "master-dnxhr", SourceKind::kPlain);
  PlanResult plan =
      PlanDelivery(SpecFor(dnx, source, MediaEnv::Get().dir()), *facts, PlannerOptions());
  ASSERT_EQ(plan.plan.failures_size(), 1);
  EXPECT_THAT(plan.plan.failures(0).reason(), ::testing::HasSubstr("interlaced"));
}

// A 10-bit BT.2020 source whose picture is a horizontal ramp from black to
// `peak_nits` white, with `transfer` (smpte2084 or arib-std-b67) and, for
// PQ, HDR10 mastering metadata.
std::string MakeHdrRamp(const std::string& path, const std::string& transfer) {
  std::string x265 = "log-level=error:colorprim=bt2020:colormatrix=bt2020nc:transfer=" + transfer;
  if (transfer == "smpte2084") {
    x265 +=
        ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
        "L(10000000,1):max-cll=1000,400:hdr10=1";
  }
  int rc = RunArgv(LavfiArgv(
      {"gradients=s=320x180:c0=black:c1=white:x0=0:y0=0:x1=319:y1=0:d=0.4:r=25"},
      {"-vf",
       "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t=" + transfer +
           ":m=bt2020nc:p=bt2020:r=tv:npl=1000,format=yuv420p10le",
       "-c:v", "libx265", "-x265-params", x265, "-color_primaries", "bt2020", "-color_trc",
       transfer, "-colorspace", "bt2020nc", "-tag:v", "hvc1", "-f", "mov", path}));
  EXPECT_EQ(rc, 0);
  return path;
}

TEST(BroadcastHdrTest, HdrSourcesAreToneMappedForSdrDeliverablesAndKeptByTheMaster) {
  for (const std::string transfer : {"smpte2084", "arib-std-b67"}) {
    SCOPED_TRACE(transfer);
    const std::string source =
        MakeHdrRamp(MediaEnv::Get().dir() + "/src-" + transfer + ".mov", transfer);
    StatusOr<pb::SourceFacts> facts = Probe(source);
    ASSERT_TRUE(facts.ok()) << facts.status().ToString();
    EXPECT_EQ(facts->color_transfer(), transfer);
    EXPECT_EQ(facts->color_primaries(), "bt2020");
    EXPECT_EQ(facts->color_space(), "bt2020nc");
    EXPECT_EQ(facts->bit_depth(), 10);
    if (transfer == "smpte2084") {
      EXPECT_EQ(facts->mastering_display(),
                "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)");
      EXPECT_EQ(facts->max_cll(), 1000);
      EXPECT_EQ(facts->max_fall(), 400);
    }

    // SDR web: tagged BT.709 (checked by CompareMedia) and tone-mapped: the
    // ramp's 1000-nit end lands near SDR white (235), and the highlights
    // below it stay distinct instead of clipping flat. Shown untouched, PQ's
    // same end is a dull grey (about 180).
    std::string web =
        PlanAndRun("hdr-web-" + transfer, source, *facts, C("", "web-h264", SourceKind::kPlain));
    ASSERT_FALSE(web.empty());
    const double white = LumaAt(web, 310, 80), bright = LumaAt(web, 280, 80),
                 mid = LumaAt(web, 200, 80);
    EXPECT_GT(white, 225) << "peak white near SDR white";
    EXPECT_LT(bright, white - 3) << "highlights not clipped flat";
    EXPECT_LT(mid, bright - 10);
    if (transfer == "smpte2084") {
      // PQ's code values shown as SDR are a dull grey; HLG's are meant to
      // look right on SDR screens, and do.
      EXPECT_LT(LumaAt(source, 310, 80), 200) << "the source's code values alone look grey";
    }

    // Asked for, an HDR web file keeps it: HEVC Main 10 with the source's
    // colours and, for PQ, its HDR10 metadata in the stream.
    Case hdr_web = C("", "web-hevc", SourceKind::kPlain);
    hdr_web.dynamic_range = "hdr";
    std::string hevc = PlanAndRun("hdr-hevc-" + transfer, source, *facts, hdr_web);
    ASSERT_FALSE(hevc.empty());
    auto hevc_media = ProbeMedia(hevc);
    ASSERT_TRUE(hevc_media.ok());
    EXPECT_EQ(hevc_media->video_profile(), "Main 10");
    EXPECT_EQ(hevc_media->color_transfer(), transfer);
    if (transfer == "smpte2084") {
      std::string side;
      RunArgv({"ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
               "-show_entries", "frame_side_data", "-of", "json", hevc},
              &side);
      EXPECT_NE(side.find("Mastering display metadata"), std::string::npos) << side;
      EXPECT_NE(side.find("\"max_content\": 1000"), std::string::npos) << side;
    }

    // The master keeps HDR: 10-bit, BT.2020, the source's transfer.
    std::string master = PlanAndRun("hdr-master-" + transfer, source, *facts,
                                    C("", "master-prores", SourceKind::kPlain));
    ASSERT_FALSE(master.empty());
    auto media = ProbeMedia(master);
    ASSERT_TRUE(media.ok());
    EXPECT_EQ(media->color_transfer(), transfer);
    EXPECT_EQ(media->color_primaries(), "bt2020");
    EXPECT_EQ(media->color_space(), "bt2020nc");
    EXPECT_EQ(media->pix_fmt(), "yuv422p10le");
  }
}

// A graded master's container carries its HDR10 metadata (MOV/MP4 mdcv and
// clli boxes, Matroska's MasteringMetadata): the ProRes master keeps it.
TEST(BroadcastHdrTest, ContainerHdrMetadataIsKeptByTheMaster) {
  const std::string pq = MakeHdrRamp(MediaEnv::Get().dir() + "/src-pq-sei.mov", "smpte2084");
  const std::string source = MediaEnv::Get().dir() + "/src-pq-container.mkv";
  // mkvmerge writes the container's copy (FFmpeg 5.1 cannot make one).
  ASSERT_EQ(RunArgv({"mkvmerge",
                     "-q",
                     "-o",
                     source,
                     "--colour-matrix-coefficients",
                     "0:9",
                     "--colour-transfer-characteristics",
                     "0:16",
                     "--colour-primaries",
                     "0:9",
                     "--colour-range",
                     "0:1",
                     "--max-content-light",
                     "0:1000",
                     "--max-frame-light",
                     "0:400",
                     "--chromaticity-coordinates",
                     "0:0.68,0.32,0.265,0.69,0.15,0.06",
                     "--white-colour-coordinates",
                     "0:0.3127,0.3290",
                     "--max-luminance",
                     "0:1000",
                     "--min-luminance",
                     "0:0.0001",
                     pq}),
            0)
      << "mkvmerge (mkvtoolnix, scripts/install-deps.sh)";
  StatusOr<pb::SourceFacts> facts = Probe(source);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_TRUE(facts->hdr_metadata_in_container());
  EXPECT_EQ(facts->mastering_display(),
            "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)");
  EXPECT_EQ(facts->max_cll(), 1000);
  std::string master = PlanAndRun("hdr-master-container", source, *facts,
                                  C("", "master-prores", SourceKind::kPlain));
  ASSERT_FALSE(master.empty());
  std::string side;
  ASSERT_EQ(RunArgv({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                     "stream=color_transfer:stream_side_data_list", "-of", "json", master},
                    &side),
            0);
  auto doc = nlohmann::json::parse(side, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << side;
  pb::SourceFacts kept;
  for (const auto& sd : doc["streams"][0]["side_data_list"]) {
    const std::string type = sd.value("side_data_type", "");
    if (type == "Mastering display metadata") kept.set_mastering_display("present");
    if (type == "Content light level metadata") kept.set_max_cll(sd.value("max_content", 0));
  }
  EXPECT_EQ(kept.mastering_display(), "present") << side;
  EXPECT_EQ(kept.max_cll(), 1000) << side;
  EXPECT_EQ(doc["streams"][0].value("color_transfer", ""), "smpte2084");
}

TEST(SourceKindsTest, ProbeAsDescribed) {
  struct Want {
    SourceKind kind;
    int display_w, display_h, rotation, fps_num, fps_den, channels;
    bool vfr;
  };
  for (const Want& w :
       std::vector<Want>{{SourceKind::kPlain, 320, 180, 0, 25, 1, 2, false},
                         {SourceKind::kRotated, 180, 320, 270, 25, 1, 2, false},
                         {SourceKind::kOddSize, 322, 182, 0, 25, 1, 2, false},
                         {SourceKind::kVfr, 320, 180, 0, 24, 1, 2, true},
                         {SourceKind::kFps23976, 320, 180, 0, 24000, 1001, 2, false},
                         {SourceKind::kSurround51, 320, 180, 0, 25, 1, 6, false},
                         {SourceKind::kNoAudio, 320, 180, 0, 25, 1, 0, false}}) {
    SCOPED_TRACE(KindName(w.kind));
    StatusOr<pb::SourceFacts> f = Probe(MediaEnv::Get().Source(w.kind));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->format_name(), "mov");
    EXPECT_EQ(f->display_width(), w.display_w);
    EXPECT_EQ(f->display_height(), w.display_h);
    EXPECT_EQ(f->rotation(), w.rotation);
    EXPECT_EQ(f->fps_num(), w.fps_num);
    EXPECT_EQ(f->fps_den(), w.fps_den);
    EXPECT_EQ(f->variable_frame_rate(), w.vfr);
    EXPECT_EQ(f->has_audio(), w.channels > 0);
    EXPECT_EQ(f->audio_channels(), w.channels);
    EXPECT_NEAR(f->duration_s(), 2.0, 0.1);
  }
  StatusOr<pb::SourceFacts> odd = Probe(MediaEnv::Get().Source(SourceKind::kOddSize));
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->width(), 321);
  EXPECT_EQ(odd->height(), 181);
}

TEST(SourceKindsTest, NonMediaIsRefused) {
  const std::string& srt = MediaEnv::Get().Subtitles();
  StatusOr<pb::SourceFacts> f = Probe(srt);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Status::Code::kInvalidArgument);
  // A lone JPEG (image2 / jpeg_pipe) is not a film either.
  Case c = C("refused_thumb", "thumbnail-jpg", SourceKind::kPlain).At(1.0);
  const std::string out_dir = MediaEnv::Get().dir() + "/out-refused";
  fs::create_directories(out_dir);
  StatusOr<pb::SourceFacts> src = Probe(MediaEnv::Get().Source(SourceKind::kPlain));
  ASSERT_TRUE(src.ok());
  PlanResult plan = PlanDelivery(SpecFor(c, src->path(), out_dir), *src);
  ASSERT_EQ(plan.plan.jobs_size(), 1);
  pb::MediaInfo media;
  ASSERT_EQ(RunJob(plan.plan.jobs(0), &media), "");
  StatusOr<pb::SourceFacts> jpg = Probe(plan.plan.jobs(0).outputs(0).path());
  ASSERT_FALSE(jpg.ok());
  EXPECT_THAT(jpg.status().message(), ::testing::HasSubstr("demuxer"));
}

// Renders the picture of `path` at `seek_s` as 18x32 grey bytes. With
// `autorotate` FFmpeg turns it upright by itself (the reference).
std::string GreyFrame(const std::string& path, double seek_s, bool autorotate) {
  std::vector<std::string> argv = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"};
  if (!autorotate) argv.push_back("-noautorotate");
  argv.insert(argv.end(), {"-ss", std::to_string(seek_s), "-i", path, "-frames:v", "1", "-vf",
                           "scale=18:32", "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"});
  std::string out;
  EXPECT_EQ(RunArgv(argv, &out), 0);
  return out;
}

double MeanAbsDiff(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return 255;
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sum += std::abs(static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[i]));
  }
  return sum / a.size();
}

// The planner turns the picture the same way as FFmpeg's own autorotation,
// for both directions of a quarter turn, and leaves no rotation flag.
TEST(RotationTest, UprightLikeFfmpegAutorotate) {
  MediaEnv& env = MediaEnv::Get();
  const std::string rot90 = env.Source(SourceKind::kRotated);       // ffprobe +90 -> 270 cw
  const std::string rot270 = env.dir() + "/src-rotated-other.mov";  // ffprobe -90 -> 90 cw
  ASSERT_EQ(RunArgv({"ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i",
                     env.Source(SourceKind::kPlain), "-map", "0", "-c", "copy", "-metadata:s:v:0",
                     "rotate=270", "-f", "mov", rot270}),
            0);
  for (const auto& [source, clockwise] :
       std::vector<std::pair<std::string, int>>{{rot90, 270}, {rot270, 90}}) {
    SCOPED_TRACE(source);
    StatusOr<pb::SourceFacts> facts = Probe(source);
    ASSERT_TRUE(facts.ok());
    EXPECT_EQ(facts->rotation(), clockwise);
    const std::string out_dir = env.dir() + "/out-rot" + std::to_string(clockwise);
    fs::create_directories(out_dir);
    Case c = C("upright", "web-h264", SourceKind::kRotated);
    PlanResult plan = PlanDelivery(SpecFor(c, source, out_dir), *facts);
    ASSERT_EQ(plan.plan.jobs_size(), 1);
    pb::MediaInfo media;
    ASSERT_EQ(RunJob(plan.plan.jobs(0), &media), "");
    EXPECT_EQ(media.rotation(), 0);
    EXPECT_EQ(media.width(), 180);
    EXPECT_EQ(media.height(), 320);
    const std::string output = plan.plan.jobs(0).outputs(0).path();
    std::string reference = GreyFrame(source, 1.0, /*autorotate=*/true);
    std::string ours = GreyFrame(output, 1.0, /*autorotate=*/true);
    // The same picture turned the other way, to show the check can fail.
    std::string wrong;
    {
      std::vector<std::string> argv = {
          "ffmpeg",
          "-hide_banner",
          "-nostdin",
          "-loglevel",
          "error",
          "-noautorotate",
          "-ss",
          "1",
          "-i",
          source,
          "-frames:v",
          "1",
          "-vf",
          clockwise == 90 ? "transpose=cclock,scale=18:32" : "transpose=clock,scale=18:32",
          "-pix_fmt",
          "gray",
          "-f",
          "rawvideo",
          "pipe:1"};
      ASSERT_EQ(RunArgv(argv, &wrong), 0);
    }
    ASSERT_EQ(reference.size(), 18u * 32u);
    EXPECT_LT(MeanAbsDiff(reference, ours), 6.0);
    EXPECT_GT(MeanAbsDiff(reference, wrong), 20.0);
  }
}

// The bottom centre of the picture at `seek_s` (where subtitles appear) as
// 40x6 grey bytes; `seek_s` < 0 reads the first frame of a still.
std::string SubtitleStrip(const std::string& path, double seek_s) {
  std::vector<std::string> argv = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"};
  if (seek_s >= 0) argv.insert(argv.end(), {"-ss", std::to_string(seek_s)});
  argv.insert(argv.end(),
              {"-i", path, "-frames:v", "1", "-vf", "crop=iw/2:ih/7:iw/4:ih*6/7,scale=40:6",
               "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"});
  std::string out;
  EXPECT_EQ(RunArgv(argv, &out), 0);
  return out;
}

// Burned subtitles show their cue at the right time (cues: 0-0.9 s and
// 1.0-1.9 s), in a video and in a thumbnail taken by input seeking.
TEST(SubtitleTest, BurnedCuesAreVisibleWhenDue) {
  MediaEnv& env = MediaEnv::Get();
  const std::string source = env.Source(SourceKind::kPlain);
  StatusOr<pb::SourceFacts> facts = Probe(source);
  ASSERT_TRUE(facts.ok());
  const std::string out_dir = env.dir() + "/out-burn-check";
  fs::create_directories(out_dir);
  PlanResult video = PlanDelivery(
      SpecFor(C("burned", "web-h264", SourceKind::kPlain).Subs("burn"), source, out_dir), *facts);
  ASSERT_EQ(video.plan.jobs_size(), 1);
  pb::MediaInfo media;
  ASSERT_EQ(RunJob(video.plan.jobs(0), &media), "");
  const std::string burned = video.plan.jobs(0).outputs(0).path();
  double during = MeanAbsDiff(SubtitleStrip(source, 0.5), SubtitleStrip(burned, 0.5));
  double between = MeanAbsDiff(SubtitleStrip(source, 0.95), SubtitleStrip(burned, 0.95));
  EXPECT_GT(during, 4.0);
  EXPECT_LT(between, 1.5);
  EXPECT_GT(during, 3 * between);

  for (double at : {0.5, 0.95}) {
    PlanResult thumb = PlanDelivery(SpecFor(C("poster" + std::to_string(static_cast<int>(at * 100)),
                                              "thumbnail-jpg", SourceKind::kPlain)
                                                .Subs("burn")
                                                .At(at),
                                            source, out_dir),
                                    *facts);
    ASSERT_EQ(thumb.plan.jobs_size(), 1);
    ASSERT_EQ(RunJob(thumb.plan.jobs(0), &media), "");
    double diff = MeanAbsDiff(SubtitleStrip(source, at),
                              SubtitleStrip(thumb.plan.jobs(0).outputs(0).path(), -1));
    if (at < 0.9) {
      EXPECT_GT(diff, 4.0) << "the cue due at " << at << " s is missing";
    } else {
      EXPECT_LT(diff, 1.5) << "a cue shows at " << at << " s, between cues";
    }
  }
}

TEST(PlanFailureTest, UnmakeableDeliverablesFailClearly) {
  MediaEnv& env = MediaEnv::Get();
  StatusOr<pb::SourceFacts> noaudio = Probe(env.Source(SourceKind::kNoAudio));
  ASSERT_TRUE(noaudio.ok());
  Case wav = C("wav", "audio-wav", SourceKind::kNoAudio);
  PlanResult r = PlanDelivery(SpecFor(wav, noaudio->path(), env.dir() + "/out-x"), *noaudio);
  EXPECT_EQ(r.plan.jobs_size(), 0);
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_THAT(r.plan.failures(0).reason(), ::testing::HasSubstr("no audio"));

  // DNxHR has a minimum frame size; the upright phone clip is 180 wide.
  StatusOr<pb::SourceFacts> rotated = Probe(env.Source(SourceKind::kRotated));
  ASSERT_TRUE(rotated.ok());
  Case dnx = C("dnx", "master-dnxhr", SourceKind::kRotated);
  r = PlanDelivery(SpecFor(dnx, rotated->path(), env.dir() + "/out-x"), *rotated);
  EXPECT_EQ(r.plan.jobs_size(), 0);
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_THAT(r.plan.failures(0).reason(), ::testing::HasSubstr("256x120"));

  // A thumbnail time past the end is a spec error, found with the facts.
  Case late = C("late", "thumbnail-jpg", SourceKind::kRotated).At(3.0);
  r = PlanDelivery(SpecFor(late, rotated->path(), env.dir() + "/out-x"), *rotated);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "deliverables[0].at");
}

}  // namespace
}  // namespace reelfarm
