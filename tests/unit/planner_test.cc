// The planner on hand-made source facts: pure, no FFmpeg.
#include "planning/planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace reelfarm {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSource[] = "/media/launch.mov";
constexpr char kOutDir[] = "/out/launch-film";
constexpr char kSubs[] = "/media/subs/launch_en.srt";
// The colour tags every moving picture of an untagged HD (or 480-line SD)
// source ends its chain with (issue 17).
const std::string kTags709 =
    ",setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709";
const std::string kTags601 =
    ",setparams=range=tv:color_primaries=smpte170m:color_trc=smpte170m:colorspace=smpte170m";

pb::SourceFacts HdFacts() {
  pb::SourceFacts f;
  f.set_path(kSource);
  f.set_format_name("mov");
  f.set_duration_s(10);
  f.set_has_video(true);
  f.set_video_codec("h264");
  f.set_width(1920);
  f.set_height(1080);
  f.set_sar_num(1);
  f.set_sar_den(1);
  f.set_fps_num(25);
  f.set_fps_den(1);
  f.set_frame_count(250);
  f.set_pix_fmt("yuv420p");
  f.set_display_width(1920);
  f.set_display_height(1080);
  f.set_has_audio(true);
  f.set_audio_codec("aac");
  f.set_audio_channels(2);
  f.set_audio_layout("stereo");
  f.set_audio_sample_rate(48000);
  return f;
}

// A deliverable taking its preset's loudness and QC defaults.
DeliverableSpec WithDefaults(const std::string& name, const std::string& preset, int height = 0) {
  DeliverableSpec d;
  d.name = name;
  d.preset = preset;
  d.height = height;
  d.line = 7;
  return d;
}

// Without loudness normalisation and QC gates (no analyse job): what the
// tests of geometry, argv and shape look at. PlannerQcTest's take the
// presets' defaults (WithDefaults).
DeliverableSpec Deliverable(const std::string& name, const std::string& preset) {
  DeliverableSpec d = WithDefaults(name, preset);
  d.loudness = std::optional<LoudnessChoice>();
  d.qc = QcChoice{.none = true};
  return d;
}

DeliverySpec Spec(std::vector<DeliverableSpec> deliverables) {
  DeliverySpec s;
  s.spec_file = "launch.yaml";
  s.name = "launch-film";
  s.source = kSource;
  s.output_dir = kOutDir;
  s.priority = 60;
  s.subtitles["en"] = kSubs;
  s.deliverables = std::move(deliverables);
  return s;
}

std::vector<std::string> Argv(const pb::Job& job) { return {job.argv().begin(), job.argv().end()}; }

// True when `seq` appears contiguously in `argv`.
bool HasSeq(const std::vector<std::string>& argv, const std::vector<std::string>& seq) {
  return std::search(argv.begin(), argv.end(), seq.begin(), seq.end()) != argv.end();
}

int IndexOf(const std::vector<std::string>& argv, const std::string& item) {
  auto it = std::find(argv.begin(), argv.end(), item);
  return it == argv.end() ? -1 : static_cast<int>(it - argv.begin());
}

std::string ValueAfter(const std::vector<std::string>& argv, const std::string& flag) {
  int i = IndexOf(argv, flag);
  return (i < 0 || i + 1 >= static_cast<int>(argv.size())) ? "" : argv[i + 1];
}

// Plans one deliverable and returns its only job (fails the test otherwise).
// One job per deliverable (piece_cost 0): what the tests of argv, geometry
// and expectations look at; the shape tests below set their own.
PlanResult PlanWhole(const DeliverySpec& spec, const pb::SourceFacts& facts) {
  PlannerOptions whole;
  whole.piece_cost = 0;
  return PlanDelivery(spec, facts, whole);
}

// The deliverable's only job (the delivery's analyse job of the source, when
// there is one, aside).
pb::Job PlanOne(const DeliverableSpec& d, const pb::SourceFacts& facts = HdFacts()) {
  PlanResult r = PlanWhole(Spec({d}), facts);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.plan.failures_size(), 0)
      << (r.plan.failures_size() ? r.plan.failures(0).reason() : "");
  std::vector<pb::Job> jobs;
  for (const auto& j : r.plan.jobs()) {
    if (j.kind() != "analyse") jobs.push_back(j);
  }
  EXPECT_EQ(jobs.size(), 1u);
  return jobs.size() == 1 ? jobs[0] : pb::Job();
}

std::string Graph(const pb::Job& job) { return ValueAfter(Argv(job), "-filter_complex"); }

TEST(PlannerTest, WebH264ExactArgv) {
  pb::Job job = PlanOne(Deliverable("web", "web-h264"));
  EXPECT_THAT(
      Argv(job),
      ElementsAre("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-nostats",
                  "-progress", "pipe:1", "-noautorotate", "-protocol_whitelist", "file", "-f",
                  "mov", "-i", kSource, "-filter_complex", "[0:v:0]setsar=1" + kTags709 + "[v]",
                  "-map", "[v]", "-map", "0:a:0", "-map_metadata", "-1", "-map_chapters", "-1",
                  "-c:v", "libx264", "-profile:v", "high", "-preset", "medium", "-crf", "20",
                  "-pix_fmt", "yuv420p", "-color_primaries", "bt709", "-color_trc", "bt709",
                  "-colorspace", "bt709", "-color_range", "tv", "-fps_mode", "cfr", "-r", "25/1",
                  "-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2", "-movflags",
                  "+faststart", "-f", "mp4", "/out/launch-film/web.mp4"));
}

TEST(PlannerTest, PlanCarriesSpecAndJobMetadata) {
  PlannerOptions options;
  options.ffmpeg = "/usr/bin/ffmpeg";
  options.timeout_base_s = 30;
  options.timeout_per_media_s = 4;
  options.piece_cost = 0;
  PlanResult r =
      PlanDelivery(Spec({Deliverable("master", "master-prores"), Deliverable("web", "web-h264")}),
                   HdFacts(), options);
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.plan.name(), "launch-film");
  EXPECT_EQ(r.plan.output_dir(), kOutDir);
  EXPECT_EQ(r.plan.priority(), 60);
  EXPECT_EQ(r.plan.source().width(), 1920);
  ASSERT_EQ(r.plan.jobs_size(), 2);
  const pb::Job& j0 = r.plan.jobs(0);
  const pb::Job& j1 = r.plan.jobs(1);
  EXPECT_EQ(j0.id(), "j0");
  EXPECT_EQ(j1.id(), "j1");
  EXPECT_EQ(j0.kind(), "encode");
  EXPECT_EQ(j0.argv(0), "/usr/bin/ffmpeg");
  EXPECT_THAT(j0.inputs(), ElementsAre(kSource));
  EXPECT_EQ(j0.depends_on_size(), 0);
  ASSERT_EQ(j0.outputs_size(), 1);
  EXPECT_EQ(j0.outputs(0).deliverable(), "master");
  EXPECT_EQ(j0.outputs(0).preset(), "master-prores");
  EXPECT_EQ(j0.outputs(0).path(), "/out/launch-film/master.mov");
  EXPECT_EQ(j0.outputs(0).relative_path(), "master.mov");
  // The final path is one argv element, exactly once, so the worker can swap it.
  std::vector<std::string> argv = Argv(j0);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "/out/launch-film/master.mov"), 1);
  EXPECT_EQ(argv.back(), "/out/launch-film/master.mov");
  EXPECT_DOUBLE_EQ(j0.media_duration_s(), 10);
  EXPECT_DOUBLE_EQ(j0.timeout_s(), 30 + 4 * 10);
  EXPECT_FALSE(j0.needs().gpu());
  EXPECT_THAT(j0.needs().encoders(), ElementsAre("prores_ks", "pcm_s24le"));
  EXPECT_THAT(j1.needs().encoders(), ElementsAre("libx264", "aac"));
}

TEST(PlannerTest, EveryInputIsFileOnlyAndPinned) {
  DeliverableSpec soft = Deliverable("soft", "web-h264");
  soft.subtitles = SubtitleChoice{"en", "soft"};
  PlanResult r =
      PlanWhole(Spec({Deliverable("m", "master-prores"), Deliverable("t", "thumbnail-jpg"),
                      Deliverable("a", "audio-wav"), soft}),
                HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 5);  // the soft subtitles' track is a job of its own
  for (const pb::Job& job : r.plan.jobs()) {
    std::vector<std::string> argv = Argv(job);
    EXPECT_TRUE(HasSeq(argv, {"-nostdin"}));
    int inputs = 0;
    for (size_t i = 0; i < argv.size(); ++i) {
      if (argv[i] != "-i") continue;
      ++inputs;
      // Walk back over this input's options to its -protocol_whitelist.
      int j = static_cast<int>(i) - 1;
      while (j >= 0 && argv[j] != "-protocol_whitelist" && argv[j] != "-i") --j;
      ASSERT_GE(j, 0) << argv[i + 1];
      EXPECT_EQ(argv[j], "-protocol_whitelist") << argv[i + 1];
      EXPECT_EQ(argv[j + 1], "file");
      EXPECT_EQ(argv[j + 2], "-f") << "the demuxer of " << argv[i + 1] << " is pinned";
    }
    EXPECT_EQ(inputs, job.inputs_size());
  }
}

TEST(PlannerTest, MemoryNeedGrowsWithFrameSizeAndLongGopEncoders) {
  auto need = [](const std::string& preset, int width, int height) {
    pb::SourceFacts f = HdFacts();
    f.set_width(width);
    f.set_height(height);
    f.set_display_width(width);
    f.set_display_height(height);
    PlanResult r = PlanWhole(Spec({Deliverable("d", preset)}), f);
    EXPECT_TRUE(r.errors.empty());
    return r.plan.jobs_size() == 1 ? r.plan.jobs(0).memory_mb() : 0u;
  };
  // 1080p H.264: 768 + 120 frames x 1920x1080 x 4 bytes.
  EXPECT_EQ(need("web-h264", 1920, 1080), 768u + 120u * 1920 * 1080 * 4 / (1 << 20));
  EXPECT_GT(need("web-h264", 3840, 2160), need("web-h264", 1920, 1080));
  EXPECT_GT(need("web-h264", 1920, 1080), need("master-prores", 1920, 1080));
  EXPECT_GT(need("master-prores", 1920, 1080), need("audio-wav", 1920, 1080));
  EXPECT_EQ(need("audio-wav", 3840, 2160), 768u) << "audio needs no frame buffers";
}

TEST(PlannerTest, MasterProres) {
  pb::Job job = PlanOne(Deliverable("master", "master-prores"));
  std::vector<std::string> argv = Argv(job);
  EXPECT_TRUE(HasSeq(argv, {"-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0", "-pix_fmt",
                            "yuv422p10le"}));
  EXPECT_TRUE(HasSeq(argv, {"-fps_mode", "cfr", "-r", "25/1"}));
  EXPECT_TRUE(HasSeq(argv, {"-c:a", "pcm_s24le", "-ar", "48000"}));
  EXPECT_THAT(argv, Not(Contains("-ac")));  // source channels
  EXPECT_TRUE(HasSeq(argv, {"-f", "mov", "/out/launch-film/master.mov"}));
  const pb::MediaInfo& e = job.outputs(0).expect();
  EXPECT_EQ(e.format_name(), "mov");
  EXPECT_EQ(e.video_codec(), "prores");
  EXPECT_EQ(e.video_profile(), "HQ");
  EXPECT_EQ(e.pix_fmt(), "yuv422p10le");
  EXPECT_EQ(e.width(), 1920);
  EXPECT_EQ(e.height(), 1080);
  EXPECT_EQ(e.fps_num(), 25);
  EXPECT_EQ(e.fps_den(), 1);
  EXPECT_DOUBLE_EQ(e.duration_s(), 10);
  EXPECT_TRUE(e.has_audio());
  EXPECT_EQ(e.audio_codec(), "pcm_s24le");
  EXPECT_EQ(e.audio_channels(), 2);
  EXPECT_EQ(e.audio_sample_rate(), 48000);
  EXPECT_EQ(e.rotation(), 0);
  EXPECT_FALSE(e.has_subtitle());
}

TEST(PlannerTest, MasterDnxhrKeepsSurroundChannels) {
  pb::SourceFacts f = HdFacts();
  f.set_audio_channels(6);
  f.set_audio_layout("5.1");
  pb::Job job = PlanOne(Deliverable("master", "master-dnxhr"), f);
  std::vector<std::string> argv = Argv(job);
  EXPECT_TRUE(HasSeq(argv, {"-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"}));
  EXPECT_TRUE(HasSeq(argv, {"-c:a", "pcm_s24le", "-ar", "48000"}));
  EXPECT_TRUE(HasSeq(argv, {"-f", "mxf", "/out/launch-film/master.mxf"}));
  EXPECT_THAT(argv, Not(Contains("-strict")));
  EXPECT_THAT(argv, Not(Contains("-ac")));
  EXPECT_EQ(job.outputs(0).expect().audio_channels(), 6);
  EXPECT_EQ(job.outputs(0).expect().format_name(), "mxf");
  EXPECT_EQ(job.outputs(0).expect().video_codec(), "dnxhd");
}

TEST(PlannerTest, MasterDnxhrUnusualRateRelaxesMxf) {
  pb::SourceFacts f = HdFacts();
  f.set_fps_num(15);
  pb::Job job = PlanOne(Deliverable("master", "master-dnxhr"), f);
  EXPECT_TRUE(HasSeq(Argv(job), {"-strict", "unofficial"}));
  EXPECT_TRUE(HasSeq(Argv(job), {"-r", "15/1"}));
}

TEST(PlannerTest, MasterDnxhrTooSmallIsAPlannedFailure) {
  pb::SourceFacts f = HdFacts();
  f.set_width(320);
  f.set_height(180);
  f.set_display_width(320);
  f.set_display_height(180);
  f.set_rotation(90);
  f.set_display_width(180);
  f.set_display_height(320);
  PlanResult r = PlanWhole(Spec({Deliverable("master", "master-dnxhr")}), f);
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.plan.jobs_size(), 0);
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_EQ(r.plan.failures(0).relative_path(), "master.mxf");
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("256x120"));
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("180x320"));
}

TEST(PlannerTest, WebHevc) {
  pb::Job job = PlanOne(Deliverable("web", "web-hevc"));
  std::vector<std::string> argv = Argv(job);
  EXPECT_TRUE(HasSeq(argv, {"-c:v", "libx265"}));
  EXPECT_TRUE(HasSeq(argv, {"-crf", "24"}));
  EXPECT_TRUE(HasSeq(argv, {"-tag:v", "hvc1"}));
  EXPECT_TRUE(HasSeq(argv, {"-pix_fmt", "yuv420p"}));
  EXPECT_TRUE(HasSeq(argv, {"-x265-params", "log-level=error"}));
  EXPECT_TRUE(HasSeq(argv, {"-c:a", "aac"}));
  EXPECT_TRUE(HasSeq(argv, {"-ac", "2"}));
  EXPECT_TRUE(HasSeq(argv, {"-movflags", "+faststart"}));
  EXPECT_TRUE(HasSeq(argv, {"-f", "mp4", "/out/launch-film/web.mp4"}));
  EXPECT_EQ(job.outputs(0).expect().video_codec(), "hevc");
  EXPECT_THAT(job.needs().encoders(), ElementsAre("libx265", "aac"));
}

TEST(PlannerTest, SocialH264CapsTheRate) {
  pb::SourceFacts f = HdFacts();
  f.set_audio_channels(6);
  pb::Job job = PlanOne(Deliverable("reel", "social-h264"), f);
  std::vector<std::string> argv = Argv(job);
  EXPECT_TRUE(HasSeq(argv, {"-c:v", "libx264", "-profile:v", "high"}));
  EXPECT_TRUE(HasSeq(argv, {"-crf", "21", "-maxrate", "8M", "-bufsize", "16M"}));
  EXPECT_TRUE(HasSeq(argv, {"-movflags", "+faststart"}));
  EXPECT_TRUE(HasSeq(argv, {"-ac", "2"}));  // 5.1 downmixed
  EXPECT_EQ(job.outputs(0).expect().audio_channels(), 2);
}

TEST(PlannerTest, ThumbnailSeeksBeforeInput) {
  DeliverableSpec d = Deliverable("poster", "thumbnail-jpg");
  d.at_s = 5;
  pb::Job job = PlanOne(d);
  std::vector<std::string> argv = Argv(job);
  EXPECT_EQ(job.kind(), "thumbnail");
  int ss = IndexOf(argv, "-ss");
  ASSERT_GE(ss, 0);
  EXPECT_EQ(argv[ss + 1], "5.000");
  EXPECT_LT(ss, IndexOf(argv, "-i"));
  EXPECT_TRUE(HasSeq(argv, {"-frames:v", "1", "-c:v", "mjpeg", "-q:v", "2"}));
  EXPECT_TRUE(HasSeq(argv, {"-update", "1", "-f", "image2", "/out/launch-film/poster.jpg"}));
  EXPECT_THAT(argv, Not(Contains("0:a:0")));
  EXPECT_THAT(argv, Not(Contains("-fps_mode")));
  const pb::MediaInfo& e = job.outputs(0).expect();
  EXPECT_EQ(e.video_codec(), "mjpeg");
  EXPECT_EQ(e.width(), 1920);
  EXPECT_FALSE(e.has_audio());
  EXPECT_EQ(e.fps_num(), 0);  // a still: not checked
  EXPECT_EQ(e.duration_s(), 0);
  EXPECT_THAT(job.needs().encoders(), ElementsAre("mjpeg"));
}

TEST(PlannerTest, ThumbnailDefaultsToTenPercent) {
  pb::Job job = PlanOne(Deliverable("poster", "thumbnail-jpg"));
  EXPECT_EQ(ValueAfter(Argv(job), "-ss"), "1.000");
}

TEST(PlannerTest, ThumbnailNearTheEndStaysOnAFrame) {
  DeliverableSpec d = Deliverable("poster", "thumbnail-jpg");
  d.at_s = 9.99;
  pb::Job job = PlanOne(d);
  EXPECT_EQ(ValueAfter(Argv(job), "-ss"), "9.920");  // two frames before the end at 25 fps
}

TEST(PlannerTest, ThumbnailBeyondTheSourceIsASpecError) {
  DeliverableSpec ok = Deliverable("web", "web-h264");
  DeliverableSpec d = Deliverable("poster", "thumbnail-jpg");
  d.at_s = 12;
  d.field_lines["at"] = 14;
  PlanResult r = PlanWhole(Spec({ok, d}), HdFacts());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "launch.yaml");
  EXPECT_EQ(r.errors[0].line, 14);
  EXPECT_EQ(r.errors[0].field, "deliverables[1].at");
  EXPECT_THAT(r.errors[0].message, HasSubstr("10.000"));
}

TEST(PlannerTest, AudioWavKeepsSourceChannels) {
  pb::SourceFacts f = HdFacts();
  f.set_audio_channels(6);
  pb::Job job = PlanOne(Deliverable("mix", "audio-wav"), f);
  std::vector<std::string> argv = Argv(job);
  EXPECT_EQ(job.kind(), "audio");
  EXPECT_TRUE(HasSeq(argv, {"-map", "0:a:0"}));
  EXPECT_THAT(argv, Contains("-vn"));
  EXPECT_THAT(argv, Not(Contains("-filter_complex")));
  EXPECT_THAT(argv, Not(Contains("-noautorotate")));
  EXPECT_THAT(argv, Not(Contains("-ac")));
  EXPECT_TRUE(HasSeq(argv, {"-c:a", "pcm_s24le", "-ar", "48000"}));
  EXPECT_TRUE(HasSeq(argv, {"-f", "wav", "/out/launch-film/mix.wav"}));
  const pb::MediaInfo& e = job.outputs(0).expect();
  EXPECT_EQ(e.format_name(), "wav");
  EXPECT_FALSE(e.has_video());
  EXPECT_EQ(e.audio_channels(), 6);
  EXPECT_THAT(job.needs().encoders(), ElementsAre("pcm_s24le"));
}

TEST(PlannerTest, Rotation90TurnsClockwiseAndSwapsSize) {
  pb::SourceFacts f = HdFacts();
  f.set_rotation(90);
  f.set_display_width(1080);
  f.set_display_height(1920);
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_EQ(Graph(job), "[0:v:0]transpose=clock,setsar=1" + kTags709 + "[v];[0:v:0]nullsink");
  EXPECT_THAT(Argv(job), Contains("-noautorotate"));
  EXPECT_EQ(job.outputs(0).expect().width(), 1080);
  EXPECT_EQ(job.outputs(0).expect().height(), 1920);
  EXPECT_EQ(job.outputs(0).expect().rotation(), 0);
}

TEST(PlannerTest, Rotation270TurnsCounterclockwiseAndScales) {
  pb::SourceFacts f = HdFacts();
  f.set_rotation(270);
  f.set_display_width(1080);
  f.set_display_height(1920);
  DeliverableSpec d = Deliverable("web", "web-h264");
  d.height = 1280;
  pb::Job job = PlanOne(d, f);
  EXPECT_EQ(Graph(job),
            "[0:v:0]transpose=cclock,scale=720:1280,setsar=1" + kTags709 + "[v];[0:v:0]nullsink");
  EXPECT_EQ(job.outputs(0).expect().width(), 720);
  EXPECT_EQ(job.outputs(0).expect().height(), 1280);
}

TEST(PlannerTest, Rotation180Flips) {
  pb::SourceFacts f = HdFacts();
  f.set_rotation(180);
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_EQ(Graph(job), "[0:v:0]hflip,vflip,setsar=1" + kTags709 + "[v];[0:v:0]nullsink");
  EXPECT_EQ(job.outputs(0).expect().width(), 1920);
}

TEST(PlannerTest, RotationWithoutDisplaySizeIsDerived) {
  pb::SourceFacts f = HdFacts();
  f.set_rotation(90);
  f.clear_display_width();
  f.clear_display_height();
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_EQ(job.outputs(0).expect().width(), 1080);
  EXPECT_EQ(job.outputs(0).expect().height(), 1920);
}

TEST(PlannerTest, OddSizeBecomesEven) {
  pb::SourceFacts f = HdFacts();
  f.set_width(321);
  f.set_height(181);
  f.set_display_width(322);
  f.set_display_height(182);
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_EQ(Graph(job), "[0:v:0]scale=322:182,setsar=1" + kTags601 + "[v]");
  EXPECT_EQ(job.outputs(0).expect().width(), 322);
  EXPECT_EQ(job.outputs(0).expect().height(), 182);
}

TEST(PlannerTest, NonSquarePixelsBecomeSquare) {
  pb::SourceFacts f = HdFacts();
  f.set_width(720);
  f.set_height(480);
  f.set_sar_num(32);
  f.set_sar_den(27);
  f.set_display_width(854);
  f.set_display_height(480);
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_EQ(Graph(job), "[0:v:0]scale=854:480,setsar=1" + kTags601 + "[v]");
  // Cropping happens on square pixels: scale to display size first.
  DeliverableSpec square = Deliverable("sq", "social-h264");
  square.aspect_num = 1;
  square.aspect_den = 1;
  job = PlanOne(square, f);
  EXPECT_EQ(Graph(job), "[0:v:0]scale=854:480,crop=480:480:188:0,setsar=1" + kTags601 + "[v]");
}

struct CropCase {
  int aspect_num, aspect_den, height;
  double focus_x, focus_y;
  std::string chain;
  int width_out, height_out;
};

class PlannerCropTest : public ::testing::TestWithParam<CropCase> {};

TEST_P(PlannerCropTest, LargestWindowAnchoredByFocus) {
  const CropCase& c = GetParam();
  DeliverableSpec d = Deliverable("reel", "social-h264");
  d.aspect_num = c.aspect_num;
  d.aspect_den = c.aspect_den;
  d.height = c.height;
  d.focus_x = c.focus_x;
  d.focus_y = c.focus_y;
  pb::Job job = PlanOne(d);
  EXPECT_EQ(Graph(job), "[0:v:0]" + c.chain + kTags709 + "[v]");
  EXPECT_EQ(job.outputs(0).expect().width(), c.width_out);
  EXPECT_EQ(job.outputs(0).expect().height(), c.height_out);
  EXPECT_EQ(c.width_out % 2, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Crops, PlannerCropTest,
    ::testing::Values(
        // 9:16 of 1920x1080: 1080 * 9/16 = 607.5 -> 608 wide, centred at 656.
        CropCase{9, 16, 0, 0.5, 0.5, "crop=608:1080:656:0,setsar=1", 608, 1080},
        CropCase{9, 16, 1920, 0.5, 0.5, "crop=608:1080:656:0,scale=1080:1920,setsar=1", 1080, 1920},
        CropCase{9, 16, 0, 0.0, 0.5, "crop=608:1080:0:0,setsar=1", 608, 1080},
        CropCase{9, 16, 0, 1.0, 0.5, "crop=608:1080:1312:0,setsar=1", 608, 1080},
        CropCase{9, 16, 0, 0.25, 0.5, "crop=608:1080:328:0,setsar=1", 608, 1080},
        CropCase{1, 1, 0, 0.5, 0.5, "crop=1080:1080:420:0,setsar=1", 1080, 1080},
        CropCase{1, 1, 720, 0.5, 0.9, "crop=1080:1080:420:0,scale=720:720,setsar=1", 720, 720},
        CropCase{4, 5, 0, 0.5, 0.5, "crop=864:1080:528:0,setsar=1", 864, 1080},
        CropCase{4, 5, 1350, 0.5, 0.5, "crop=864:1080:528:0,scale=1080:1350,setsar=1", 1080, 1350},
        // Same aspect as the source: nothing to crop.
        CropCase{16, 9, 0, 0.5, 0.5, "setsar=1", 1920, 1080},
        // Wider than the source: full width, crop height, focus_y anchors.
        CropCase{21, 9, 0, 0.5, 0.0, "crop=1920:822:0:0,setsar=1", 1920, 822},
        CropCase{21, 9, 0, 0.5, 1.0, "crop=1920:822:0:258,setsar=1", 1920, 822}));

// Issue 18: the size comes from the request (height x aspect, rounded to even
// once), not from the rounded crop; the crop's rounding is absorbed by the
// scale.
TEST(PlannerTest, CropOutputSizeIsTheRequestsFromAnySourceSize) {
  pb::SourceFacts f = HdFacts();
  f.set_width(1280);
  f.set_height(720);
  f.set_display_width(1280);
  f.set_display_height(720);
  DeliverableSpec d = Deliverable("reel", "social-h264");
  d.aspect_num = 9;
  d.aspect_den = 16;
  d.height = 1920;
  pb::Job job = PlanOne(d, f);
  // 720 x 9/16 = 405: the crop rounds to 406, the output stays 1080 wide.
  EXPECT_EQ(Graph(job), "[0:v:0]crop=406:720:438:0,scale=1080:1920,setsar=1" + kTags709 + "[v]");
  EXPECT_EQ(job.outputs(0).expect().width(), 1080);
  EXPECT_EQ(job.outputs(0).expect().height(), 1920);

  // An odd source (1917x1079: its display frame is 1918x1080) at 4:5 1350.
  f.set_width(1917);
  f.set_height(1079);
  f.set_display_width(1918);
  f.set_display_height(1080);
  d.aspect_num = 4;
  d.aspect_den = 5;
  d.height = 1350;
  job = PlanOne(d, f);
  EXPECT_EQ(job.outputs(0).expect().width(), 1080);
  EXPECT_EQ(job.outputs(0).expect().height(), 1350);
  EXPECT_THAT(Graph(job), HasSubstr("crop=864:1080:"));
}

TEST(PlannerTest, CropOnRotatedSourceWorksInDisplaySpace) {
  pb::SourceFacts f = HdFacts();
  f.set_rotation(90);
  f.set_display_width(1080);
  f.set_display_height(1920);
  DeliverableSpec d = Deliverable("sq", "social-h264");
  d.aspect_num = 1;
  d.aspect_den = 1;
  d.focus_y = 0;
  pb::Job job = PlanOne(d, f);
  EXPECT_EQ(Graph(job), "[0:v:0]transpose=clock,crop=1080:1080:0:0,setsar=1" + kTags709 +
                            "[v];[0:v:0]nullsink");
}

TEST(PlannerTest, HeightScalingKeepsWidthEven) {
  for (int height : {480, 720, 1080, 2160, 34}) {
    DeliverableSpec d = Deliverable("web", "web-h264");
    d.height = height;
    pb::Job job = PlanOne(d);
    int w = job.outputs(0).expect().width();
    EXPECT_EQ(w % 2, 0) << height;
    EXPECT_NEAR(w, height * 16.0 / 9.0, 1.0) << height;
    EXPECT_EQ(job.outputs(0).expect().height(), height);
  }
  DeliverableSpec d = Deliverable("web", "web-h264");
  d.height = 480;  // 853.33 -> 854
  EXPECT_EQ(Graph(PlanOne(d)), "[0:v:0]scale=854:480,setsar=1" + kTags709 + "[v]");
}

TEST(PlannerTest, EscapeFilterPath) {
  EXPECT_EQ(EscapeFilterPath("/media/plain.srt"), "/media/plain.srt");
  // Level 1 gives  /a/it\'s\:\ x,y.srt ; level 2 escapes that again.
  EXPECT_EQ(EscapeFilterPath("/a/it's: x,y.srt"), "/a/it\\\\\\'s\\\\:\\\\\\ x\\,y.srt");
  EXPECT_EQ(EscapeFilterPath("/a/[b];c.srt"), "/a/\\[b\\]\\;c.srt");
  EXPECT_EQ(EscapeFilterPath("/a\\b=c.srt"), "/a\\\\\\\\b\\\\=c.srt");
}

TEST(PlannerTest, BurnedSubtitlesComeLastWithEscapedPath) {
  DeliverySpec spec = Spec({});
  spec.subtitles["en"] = "/media/it's: a, [weird] name.srt";
  DeliverableSpec d = Deliverable("web-en", "web-h264");
  d.height = 720;
  d.subtitles = SubtitleChoice{"en", "burn"};
  spec.deliverables = {d};
  PlanResult r = PlanWhole(spec, HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 1);
  const pb::Job& job = r.plan.jobs(0);
  EXPECT_EQ(Graph(job), "[0:v:0]scale=1280:720,setsar=1,subtitles=filename=" +
                            EscapeFilterPath("/media/it's: a, [weird] name.srt") + kTags709 +
                            "[v]");
  EXPECT_THAT(job.inputs(), ElementsAre(kSource, "/media/it's: a, [weird] name.srt"));
  // The sidecar is read by the filter, not opened as an input.
  EXPECT_EQ(std::count(job.argv().begin(), job.argv().end(), "-i"), 1);
  EXPECT_FALSE(job.outputs(0).expect().has_subtitle());
}

TEST(PlannerTest, SoftSubtitlesAreAMovTextTrackCopiedInAndClippedToTheSource) {
  DeliverableSpec d = Deliverable("web-en", "web-h264");
  d.subtitles = SubtitleChoice{"en", "soft"};
  PlanResult r = PlanWhole(Spec({d}), HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 2);
  // First the subtitle file as a mov_text track, a part of the deliverable.
  const pb::Job& track = r.plan.jobs(0);
  std::vector<std::string> argv = Argv(track);
  EXPECT_TRUE(HasSeq(argv, {"-protocol_whitelist", "file", "-f", "srt", "-i", kSubs}));
  EXPECT_TRUE(HasSeq(argv, {"-map", "0:s:0", "-c:s", "mov_text"}));
  EXPECT_THAT(track.inputs(), ElementsAre(kSubs));
  ASSERT_EQ(track.outputs_size(), 1);
  EXPECT_TRUE(track.outputs(0).intermediate());
  const std::string part = track.outputs(0).path();
  EXPECT_THAT(part, HasSubstr(std::string(kPartsFolder) + "/web-en/subtitles.mp4"));
  EXPECT_EQ(track.outputs(0).expect().subtitle_codec(), "mov_text");
  EXPECT_THAT(track.needs().encoders(), Contains("mov_text"));

  // Then the deliverable, which copies the track in, every cue ended by the
  // source's end (10 s) and none starting after it.
  const pb::Job& job = r.plan.jobs(1);
  EXPECT_THAT(job.depends_on(), ElementsAre(track.id()));
  argv = Argv(job);
  EXPECT_TRUE(HasSeq(argv, {"-protocol_whitelist", "file", "-f", "mp4", "-i", part}));
  EXPECT_TRUE(HasSeq(argv, {"-map", "1:s:0"}));
  EXPECT_TRUE(HasSeq(
      argv, {"-c:s", "copy", "-bsf:s", "setts=duration=min(DURATION\\,max(1\\,10.000000/TB-PTS))",
             "-t", "10.000000"}));
  EXPECT_THAT(job.inputs(), ElementsAre(kSource, part));
  EXPECT_THAT(job.remove_after(), ElementsAre(part));
  EXPECT_TRUE(job.outputs(0).expect().has_subtitle());
  EXPECT_EQ(job.outputs(0).expect().subtitle_codec(), "mov_text");
  EXPECT_EQ(Graph(job), "[0:v:0]setsar=1" + kTags709 + "[v]");
}

TEST(PlannerTest, SoftSubtitlesOnMxfArePlannedFailures) {
  DeliverableSpec d = Deliverable("master", "master-dnxhr");
  d.subtitles = SubtitleChoice{"en", "soft"};
  PlanResult r = PlanWhole(Spec({d}), HdFacts());
  EXPECT_EQ(r.plan.jobs_size(), 0);
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("soft"));
}

TEST(PlannerTest, SourceWithoutAudio) {
  pb::SourceFacts f = HdFacts();
  f.set_has_audio(false);
  f.clear_audio_codec();
  f.clear_audio_channels();
  PlanResult r = PlanWhole(Spec({Deliverable("web", "web-h264"), Deliverable("mix", "audio-wav"),
                                 Deliverable("master", "master-prores")}),
                           f);
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs_size(), 2);
  for (const pb::Job& job : r.plan.jobs()) {
    std::vector<std::string> argv = Argv(job);
    EXPECT_THAT(argv, Not(Contains("0:a:0")));
    EXPECT_THAT(argv, Not(Contains("-c:a")));
    EXPECT_FALSE(job.outputs(0).expect().has_audio());
    EXPECT_EQ(job.needs().encoders_size(), 1);
  }
  EXPECT_EQ(r.plan.jobs(0).id(), "j0");
  EXPECT_EQ(r.plan.jobs(1).id(), "j1");
  EXPECT_EQ(r.plan.jobs(1).outputs(0).deliverable(), "master");
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_EQ(r.plan.failures(0).deliverable(), "mix");
  EXPECT_EQ(r.plan.failures(0).preset(), "audio-wav");
  EXPECT_EQ(r.plan.failures(0).relative_path(), "mix.wav");
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("no audio"));
}

TEST(PlannerTest, SourceWithoutVideo) {
  pb::SourceFacts f = HdFacts();
  f.set_has_video(false);
  f.clear_width();
  f.clear_height();
  PlanResult r =
      PlanWhole(Spec({Deliverable("web", "web-h264"), Deliverable("poster", "thumbnail-jpg"),
                      Deliverable("mix", "audio-wav")}),
                f);
  ASSERT_EQ(r.plan.jobs_size(), 1);
  EXPECT_EQ(r.plan.jobs(0).kind(), "audio");
  ASSERT_EQ(r.plan.failures_size(), 2);
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("no video"));
  EXPECT_EQ(r.plan.failures(1).deliverable(), "poster");
}

TEST(PlannerTest, VariableFrameRateBecomesConstant) {
  pb::SourceFacts f = HdFacts();
  f.set_variable_frame_rate(true);
  f.set_fps_num(24000);
  f.set_fps_den(1001);
  pb::Job job = PlanOne(Deliverable("web", "web-h264"), f);
  EXPECT_TRUE(HasSeq(Argv(job), {"-fps_mode", "cfr", "-r", "24000/1001"}));
  EXPECT_EQ(job.outputs(0).expect().fps_num(), 24000);
  EXPECT_EQ(job.outputs(0).expect().fps_den(), 1001);
}

}  // namespace
}  // namespace reelfarm

// ---- fan-out groups and chunks (issue 5) ----------------------------------

namespace reelfarm {
namespace {

// Plans cut in pieces of `piece_cost`, no chunk under `min_chunk_s`.
PlannerOptions Pieces(double piece_cost, double min_chunk_s = 10) {
  PlannerOptions o;
  o.piece_cost = piece_cost;
  o.min_chunk_s = min_chunk_s;
  return o;
}

DeliverableSpec Sized(const std::string& name, const std::string& preset, int height,
                      int aspect_num = 0, int aspect_den = 0) {
  DeliverableSpec d = Deliverable(name, preset);
  d.height = height;
  d.aspect_num = aspect_num;
  d.aspect_den = aspect_den;
  return d;
}

// The standard spec of the benchmark, without subtitles.
std::vector<DeliverableSpec> FourPictures() {
  return {Deliverable("master", "master-prores"), Sized("web", "web-h264", 720),
          Sized("vertical", "social-h264", 1920, 9, 16),
          Sized("square", "social-h264", 1080, 1, 1)};
}

int Count(const std::vector<std::string>& argv, const std::string& item) {
  return static_cast<int>(std::count(argv.begin(), argv.end(), item));
}

int CountKind(const pb::Plan& plan, const std::string& kind) {
  int n = 0;
  for (const auto& job : plan.jobs()) n += job.kind() == kind;
  return n;
}

TEST(PlannerFanOutTest, CheapPicturesUnderOnePieceShareOneDecode) {
  std::vector<DeliverableSpec> ds = FourPictures();
  ds.push_back(Deliverable("poster", "thumbnail-jpg"));
  // A piece larger than the whole delivery: every picture is cheap.
  PlanResult r = PlanDelivery(Spec(ds), HdFacts(), Pieces(1000));
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs_size(), 2);
  const pb::Job& group = r.plan.jobs(0);
  EXPECT_EQ(group.id(), "j0");
  EXPECT_EQ(group.kind(), "group");
  ASSERT_EQ(group.outputs_size(), 4);
  std::vector<std::string> argv = Argv(group);
  EXPECT_EQ(Count(argv, "-i"), 1) << "the source is opened and decoded once";
  EXPECT_THAT(Graph(group), HasSubstr("[0:v:0]split=4[s0][s1][s2][s3];[s0]"));
  for (const auto& out : group.outputs()) {
    EXPECT_EQ(Count(argv, out.path()), 1) << out.path();
    EXPECT_FALSE(out.intermediate());
  }
  // Each output keeps its own codec options, in order.
  EXPECT_LT(IndexOf(argv, "prores_ks"), IndexOf(argv, "/out/launch-film/master.mov"));
  EXPECT_LT(IndexOf(argv, "/out/launch-film/master.mov"), IndexOf(argv, "libx264"));
  EXPECT_EQ(Count(argv, "0:a:0"), 4) << "audio decoded once, encoded per output";
  // Its members are exactly the jobs of one job per deliverable.
  PlanResult spread = PlanDelivery(Spec(ds), HdFacts(), Pieces(0));
  ASSERT_EQ(group.members_size(), 4);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(group.members(k).id(), "j0m" + std::to_string(k));
    EXPECT_EQ(Argv(group.members(k)), Argv(spread.plan.jobs(k)));
  }
  EXPECT_EQ(r.plan.jobs(1).kind(), "thumbnail");
  EXPECT_EQ(r.plan.jobs(1).id(), "j1");
  EXPECT_GT(group.memory_mb(), spread.plan.jobs(1).memory_mb());
  EXPECT_GT(group.memory_per_thread_mb(), spread.plan.jobs(0).memory_per_thread_mb());
  EXPECT_GT(group.timeout_s(), spread.plan.jobs(1).timeout_s());
  double members_cost = 0;
  for (int k = 0; k < 4; ++k) members_cost += spread.plan.jobs(k).cost();
  EXPECT_NEAR(group.cost(), members_cost, 1e-9);
}

TEST(PlannerFanOutTest, AGroupHoldsAtMostEightOutputs) {
  std::vector<DeliverableSpec> ds;
  for (int i = 0; i < 20; ++i) ds.push_back(Sized("p" + std::to_string(i), "web-h264", 90));
  PlanResult r = PlanDelivery(Spec(ds), HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 3);
  EXPECT_EQ(r.plan.jobs(0).outputs_size(), 8);
  EXPECT_EQ(r.plan.jobs(1).outputs_size(), 8);
  EXPECT_EQ(r.plan.jobs(2).outputs_size(), 4);
}

TEST(PlannerFanOutTest, PieceCostZeroIsOneJobPerDeliverable) {
  PlanResult spread = PlanDelivery(Spec(FourPictures()), HdFacts(), Pieces(0));
  ASSERT_EQ(spread.plan.jobs_size(), 4);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(spread.plan.jobs(k).members_size(), 0);
    EXPECT_EQ(spread.plan.jobs(k).kind(), "encode");
  }
}

TEST(PlannerFanOutTest, CheapPicturesArePackedUpToOnePieceCostlyOnesAreCut) {
  // At 10 s of 1080p: HEVC 1080p costs 83 (cut), the 360p/270p/180p H.264
  // outputs 2.3, 1.3 and 0.6: under half a piece of 5 each, packed
  // costliest first into pieces of at most 5.
  std::vector<DeliverableSpec> ds = {Deliverable("hevc", "web-hevc"), Sized("a", "web-h264", 360),
                                     Sized("b", "web-h264", 270), Sized("c", "web-h264", 180),
                                     Sized("d", "web-h264", 360)};
  PlanResult r = PlanDelivery(Spec(ds), HdFacts(), Pieces(5, 2));
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(CountKind(r.plan, "chunk"), 5) << "83 / 5 = 17 pieces, but none under 2 s of 10 s";
  ASSERT_EQ(CountKind(r.plan, "group"), 2);
  std::vector<std::vector<std::string>> groups;
  for (const auto& job : r.plan.jobs()) {
    if (job.kind() != "group") continue;
    std::vector<std::string> names;
    for (const auto& out : job.outputs()) names.push_back(out.deliverable());
    groups.push_back(names);
    EXPECT_LE(job.cost(), 5.0);
  }
  // a (2.3) and d (2.3) fill the first piece (4.6: no room for b's 1.3 or
  // c's 0.6), b and c the second.
  EXPECT_THAT(groups, ElementsAre(ElementsAre("a", "d"), ElementsAre("b", "c")));
}

TEST(PlannerFanOutTest, TheShapeDependsOnCostAloneNeverOnWhoIsConnected) {
  // The same spec and source always give the same jobs: nothing in the
  // planner's options says how many workers there are.
  PlanResult a = PlanDelivery(Spec(FourPictures()), HdFacts());
  PlanResult b = PlanDelivery(Spec(FourPictures()), HdFacts());
  EXPECT_EQ(a.plan.SerializeAsString(), b.plan.SerializeAsString());
  // With the defaults (pieces of 4, chunks of at least 2 s), 10 s of 1080p:
  // ProRes 31 -> 5 chunks, web 720p 9.2 -> 2, vertical 20.7 -> 5, square
  // 11.7 -> 3; each with its audio and assemble jobs.
  EXPECT_EQ(CountKind(a.plan, "chunk"), 15);
  EXPECT_EQ(CountKind(a.plan, "audio"), 4);
  EXPECT_EQ(CountKind(a.plan, "assemble"), 4);
  for (const auto& job : a.plan.jobs()) {
    if (job.kind() == "chunk") {
      EXPECT_GT(job.cost(), 3.0) << job.id();
      EXPECT_LT(job.cost(), 6.5) << job.id();
    }
  }
}

TEST(PlannerFanOutTest, SoftSubtitlesStillsAndAudioStayOnTheirOwn) {
  DeliverableSpec soft = Deliverable("soft", "web-h264");
  soft.subtitles = SubtitleChoice{"en", "soft"};
  std::vector<DeliverableSpec> ds = {soft, Sized("a", "web-h264", 720), Sized("b", "web-h264", 360),
                                     Deliverable("poster", "thumbnail-jpg"),
                                     Deliverable("mix", "audio-wav")};
  PlanResult r = PlanDelivery(Spec(ds), HdFacts(), Pieces(1000));
  ASSERT_EQ(r.plan.jobs_size(), 5);
  EXPECT_EQ(r.plan.jobs(0).kind(), "subtitles");  // its track, a part
  EXPECT_EQ(r.plan.jobs(1).outputs(0).deliverable(), "soft");
  EXPECT_EQ(r.plan.jobs(1).kind(), "encode");
  EXPECT_EQ(r.plan.jobs(2).kind(), "group");
  EXPECT_EQ(r.plan.jobs(2).outputs_size(), 2);
}

TEST(PlannerMemoryTest, PerThreadNeedGrowsWithFrameSizeAndEncoder) {
  PlanResult r =
      PlanDelivery(Spec({Deliverable("master", "master-prores"), Deliverable("dnx", "master-dnxhr"),
                         Deliverable("web", "web-h264"), Sized("small", "web-h264", 360),
                         Deliverable("mix", "audio-wav")}),
                   HdFacts(), Pieces(0));
  ASSERT_EQ(r.plan.jobs_size(), 5);
  const auto per_thread = [&](int k) { return r.plan.jobs(k).memory_per_thread_mb(); };
  EXPECT_GT(per_thread(1), per_thread(2)) << "DNxHR holds most per thread (measured)";
  EXPECT_GT(per_thread(2), per_thread(0)) << "x264 more than ProRes";
  EXPECT_EQ(per_thread(3), per_thread(2)) << "the largest frame is the 1080p source's";
  EXPECT_EQ(per_thread(4), 8u) << "audio: the thread alone";
  // 1080p x264: 8 + (6 + 24) x 2.07 MiB a thread.
  EXPECT_EQ(per_thread(2), 71u);
}

TEST(PlannerChunkTest, SpareSlotsSplitTheDeliverableIntoFrameExactChunks) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(60);
  f.set_frame_count(1500);
  // 60 s of 720p x264 cost 55: pieces of 14 make 4 chunks.
  PlanResult r = PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, Pieces(14));
  ASSERT_TRUE(r.errors.empty());
  // 4 chunks, the audio, the assemble job.
  ASSERT_EQ(r.plan.jobs_size(), 6);
  int64_t frames = 0;
  std::vector<std::string> starts;
  for (int k = 0; k < 4; ++k) {
    const pb::Job& chunk = r.plan.jobs(k);
    std::vector<std::string> argv = Argv(chunk);
    EXPECT_EQ(chunk.kind(), "chunk");
    EXPECT_EQ(chunk.id(), "j" + std::to_string(k));
    EXPECT_TRUE(chunk.outputs(0).intermediate());
    EXPECT_EQ(chunk.outputs(0).path(),
              "/out/launch-film/.reelfarm-parts/web/chunk-00" + std::to_string(k) + ".mov");
    EXPECT_THAT(argv, Contains("-an"));
    EXPECT_THAT(argv, Not(Contains("0:a:0")));
    EXPECT_LT(IndexOf(argv, "-ss") < 0 ? 0 : IndexOf(argv, "-ss"), IndexOf(argv, "-i"))
        << "input seeking: decoding starts at the chunk";
    starts.push_back(ValueAfter(argv, "-ss"));
    if (k < 3) {
      frames += std::stoll(ValueAfter(argv, "-frames:v"));
      EXPECT_NEAR(chunk.outputs(0).expect().duration_s(), 15.0, 1e-9);
    } else {
      EXPECT_EQ(IndexOf(argv, "-frames:v"), -1) << "the last chunk runs to the end";
    }
    EXPECT_NEAR(chunk.media_duration_s(), 15.0, 1e-9);
  }
  EXPECT_EQ(frames, 1125);
  EXPECT_THAT(starts, ElementsAre("", "15.000000", "30.000000", "45.000000"));
  const pb::Job& audio = r.plan.jobs(4);
  EXPECT_EQ(audio.kind(), "audio");
  EXPECT_THAT(Argv(audio), Contains("-vn"));
  EXPECT_NEAR(audio.outputs(0).expect().duration_s(), 60, 1e-9);
  const pb::Job& assemble = r.plan.jobs(5);
  EXPECT_EQ(assemble.kind(), "assemble");
  EXPECT_THAT(std::vector<std::string>(assemble.depends_on().begin(), assemble.depends_on().end()),
              ElementsAre("j0", "j1", "j2", "j3", "j4"));
  std::vector<std::string> argv = Argv(assemble);
  EXPECT_TRUE(HasSeq(argv, {"-f", "concat", "-safe", "1", "-i"}));
  EXPECT_TRUE(HasSeq(argv, {"-c", "copy"})) << "joined without re-encoding";
  ASSERT_EQ(assemble.write_files_size(), 1);
  EXPECT_EQ(assemble.write_files(0).content(),
            "ffconcat version 1.0\nfile chunk-000.mov\nfile chunk-001.mov\n"
            "file chunk-002.mov\nfile chunk-003.mov\n");
  ASSERT_EQ(assemble.outputs_size(), 1);
  EXPECT_FALSE(assemble.outputs(0).intermediate());
  EXPECT_EQ(assemble.outputs(0).path(), "/out/launch-film/web.mp4");
  // The final file is expected exactly as an unchunked encode's.
  PlanResult whole = PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, Pieces(0));
  EXPECT_EQ(assemble.outputs(0).SerializeAsString(),
            whole.plan.jobs(0).outputs(0).SerializeAsString());
  EXPECT_EQ(assemble.remove_after_size(), 6) << "4 chunks, the audio, the list";
}

TEST(PlannerChunkTest, FrameTimesOfFractionalRatesRoundDownToTheMicrosecond) {
  pb::SourceFacts f = HdFacts();
  f.set_fps_num(24000);
  f.set_fps_den(1001);
  f.set_duration_s(30.03);
  f.set_frame_count(720);
  PlanResult r = PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, Pieces(4));
  // 720 frames in 3 chunks of >= 10 s (cost alone would make 7): frames 240
  // and 480.
  ASSERT_EQ(r.plan.jobs(1).kind(), "chunk");
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(1)), "-ss"), "10.010000");
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(2)), "-ss"), "20.020000");
  EXPECT_EQ(r.plan.jobs(3).kind(), "audio");
}

TEST(PlannerChunkTest, NoChunkShorterThanTheMinimumAndNoneForStillsOrVfr) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(25);
  f.set_frame_count(625);
  PlanResult r = PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, Pieces(1));
  int chunks = 0;
  for (const auto& job : r.plan.jobs()) chunks += job.kind() == "chunk";
  EXPECT_EQ(chunks, 2);
  r = PlanDelivery(Spec({Deliverable("poster", "thumbnail-jpg")}), f, Pieces(1));
  EXPECT_EQ(r.plan.jobs_size(), 1);
  f.set_variable_frame_rate(true);
  r = PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, Pieces(1));
  EXPECT_EQ(r.plan.jobs_size(), 1) << "VFR sources are not cut";
  PlannerOptions off = Pieces(1);
  off.chunking = false;
  f.set_variable_frame_rate(false);
  EXPECT_EQ(PlanDelivery(Spec({Sized("web", "web-h264", 720)}), f, off).plan.jobs_size(), 1);
}

TEST(PlannerChunkTest, ChunksStartOnKeyFramesOfAFixedGopAndSpanSeveralOfIrregularOnes) {
  pb::SourceFacts f = HdFacts();  // 10 s at 25 fps
  f.set_duration_s(60);
  f.set_frame_count(1500);
  auto starts = [](const PlanResult& r) {
    std::vector<std::string> ss;
    for (const auto& job : r.plan.jobs()) {
      if (job.kind() == "chunk") ss.push_back(ValueAfter(Argv(job), "-ss"));
    }
    return ss;
  };
  // A key frame every 48 frames (1.92 s): equal shares of 1500 frames in 5
  // (300, 600, 900, 1200) move to the nearest key frames (288, 624, 912,
  // 1200).
  f.set_keyframe_interval_s(1.92);
  f.set_gop_frames(48);
  PlanResult r = PlanDelivery(Spec({Sized("web", "web-h264", 1080)}), f, Pieces(25));
  EXPECT_THAT(starts(r), ElementsAre("", "11.520000", "24.960000", "36.480000", "48.000000"));
  for (const auto& job : r.plan.jobs()) {
    if (job.kind() != "chunk") continue;
    const std::string frames = ValueAfter(Argv(job), "-frames:v");
    if (!frames.empty()) {
      EXPECT_EQ(std::stoi(frames) % 48, 0) << frames;
    }
  }

  // Irregular key frames up to 8 s apart: no chunk under 4 x 8 s, so a 60 s
  // source is not cut in two.
  f.set_keyframe_interval_s(8);
  f.set_gop_frames(0);
  r = PlanDelivery(Spec({Sized("web", "web-h264", 1080)}), f, Pieces(25));
  EXPECT_TRUE(starts(r).empty()) << "30 s chunks would be under 32 s: not cut";
  f.set_keyframe_interval_s(2);
  r = PlanDelivery(Spec({Sized("web", "web-h264", 1080)}), f, Pieces(25));
  EXPECT_EQ(starts(r).size(), 5u) << "12 s chunks are over 4 x 2 s";
}

// Issue 17: interlaced, HDR and SD sources.
TEST(PlannerPictureTest, InterlacedSourcesAreDeinterlacedExceptForTheProResMaster) {
  pb::SourceFacts f = HdFacts();
  f.set_field_order("tt");
  pb::Job web = PlanOne(Sized("web", "web-h264", 720), f);
  EXPECT_EQ(Graph(web),
            "[0:v:0]bwdif=mode=send_frame:parity=tff:deint=all,scale=1280:720,setsar=1" + kTags709 +
                "[v]");
  EXPECT_EQ(web.outputs(0).expect().field_order(), "progressive");
  EXPECT_THAT(Argv(web), Not(Contains("+ildct+ilme")));

  pb::Job master = PlanOne(Sized("master", "master-prores", 540), f);
  EXPECT_EQ(Graph(master), "[0:v:0]scale=960:540:interl=1,setsar=1" + kTags709 + "[v]")
      << "no deinterlacing; each field scaled on its own";
  EXPECT_TRUE(HasSeq(Argv(master), {"-flags", "+ildct+ilme", "-top", "1"}));
  EXPECT_EQ(master.outputs(0).expect().field_order(), "tt");
  f.set_field_order("bb");
  master = PlanOne(Deliverable("master", "master-prores"), f);
  EXPECT_TRUE(HasSeq(Argv(master), {"-flags", "+ildct+ilme", "-top", "0"}));
  EXPECT_EQ(master.outputs(0).expect().field_order(), "bb");
  EXPECT_THAT(Graph(PlanOne(Deliverable("poster", "thumbnail-jpg"), f)),
              HasSubstr("bwdif=mode=send_frame:parity=bff:deint=all"));

  PlanResult dnx = PlanWhole(Spec({Deliverable("mxf", "master-dnxhr")}), f);
  ASSERT_EQ(dnx.plan.failures_size(), 1);
  EXPECT_THAT(dnx.plan.failures(0).reason(), HasSubstr("use master-prores"));
}

TEST(PlannerPictureTest, HdrSourcesAreToneMappedForSdrAndKeptByMasters) {
  pb::SourceFacts f = HdFacts();
  f.set_color_primaries("bt2020");
  f.set_color_transfer("smpte2084");
  f.set_color_space("bt2020nc");
  f.set_bit_depth(10);
  pb::Job web = PlanOne(Sized("web", "web-h264", 720), f);
  EXPECT_EQ(Graph(web),
            "[0:v:0]scale=1280:720,setsar=1,zscale=tin=smpte2084:min=bt2020nc:pin=bt2020:rin=tv:"
            "t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
            "zscale=t=bt709:m=bt709:r=tv,format=yuv420p" +
                kTags709 + "[v]");
  const pb::MediaInfo& e = web.outputs(0).expect();
  EXPECT_EQ(e.color_primaries(), "bt709");
  EXPECT_EQ(e.color_transfer(), "bt709");
  EXPECT_EQ(e.color_space(), "bt709");
  EXPECT_EQ(e.color_range(), "tv");

  pb::Job master = PlanOne(Deliverable("master", "master-prores"), f);
  EXPECT_THAT(Graph(master), Not(HasSubstr("tonemap")));
  EXPECT_EQ(master.outputs(0).expect().color_transfer(), "smpte2084");
  EXPECT_EQ(master.outputs(0).expect().color_primaries(), "bt2020");
  EXPECT_TRUE(HasSeq(Argv(master), {"-color_primaries", "bt2020", "-color_trc", "smpte2084",
                                    "-colorspace", "bt2020nc", "-color_range", "tv"}));
  // DNxHR keeps 10 bits: HQX instead of HQ.
  pb::Job dnx = PlanOne(Deliverable("mxf", "master-dnxhr"), f);
  EXPECT_TRUE(HasSeq(Argv(dnx), {"-profile:v", "dnxhr_hqx", "-pix_fmt", "yuv422p10le"}));
  EXPECT_EQ(dnx.outputs(0).expect().video_profile(), "DNXHR HQX");
  EXPECT_EQ(dnx.outputs(0).expect().pix_fmt(), "yuv422p10le");

  // A still from it is tone-mapped too, and carries no tags to check.
  pb::Job poster = PlanOne(Deliverable("poster", "thumbnail-jpg"), f);
  EXPECT_THAT(Graph(poster), HasSubstr("tonemap=tonemap=hable"));
  EXPECT_EQ(poster.outputs(0).expect().color_transfer(), "");
}

TEST(PlannerPictureTest, UntaggedSourcesAreTaggedAsPlayersAssumeThem) {
  auto tags = [](int width, int height) {
    pb::SourceFacts f = HdFacts();
    f.set_width(width);
    f.set_height(height);
    f.set_display_width(width);
    f.set_display_height(height);
    const pb::MediaInfo e = PlanOne(Deliverable("web", "web-h264"), f).outputs(0).expect();
    return e.color_primaries() + "/" + e.color_transfer() + "/" + e.color_space() + "/" +
           e.color_range();
  };
  EXPECT_EQ(tags(1920, 1080), "bt709/bt709/bt709/tv");
  EXPECT_EQ(tags(1280, 720), "bt709/bt709/bt709/tv");
  EXPECT_EQ(tags(720, 576), "bt470bg/smpte170m/bt470bg/tv");
  EXPECT_EQ(tags(720, 480), "smpte170m/smpte170m/smpte170m/tv");
  // What the stream says wins.
  pb::SourceFacts f = HdFacts();
  f.set_color_primaries("bt709");
  f.set_color_transfer("bt709");
  f.set_color_space("bt709");
  f.set_color_range("pc");
  EXPECT_EQ(PlanOne(Deliverable("web", "web-h264"), f).outputs(0).expect().color_range(), "pc");
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST(PlannerPictureTest, AnHdrWebDeliverableKeepsPqWithItsHdr10MetadataAndNeedsAnHdrSource) {
  pb::SourceFacts f = HdFacts();
  f.set_color_primaries("bt2020");
  f.set_color_transfer("smpte2084");
  f.set_color_space("bt2020nc");
  f.set_bit_depth(10);
  f.set_mastering_display("G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)");
  f.set_max_cll(1000);
  f.set_max_fall(400);
  DeliverableSpec d = Sized("hdr", "web-hevc", 720);
  d.dynamic_range = "hdr";
  pb::Job job = PlanOne(d, f);
  EXPECT_THAT(Graph(job), Not(HasSubstr("tonemap")));
  EXPECT_TRUE(HasSeq(Argv(job), {"-pix_fmt", "yuv420p10le", "-profile:v", "main10", "-x265-params",
                                 "log-level=error:repeat-headers=1:colorprim=bt2020:transfer="
                                 "smpte2084:colormatrix=bt2020nc:hdr10=1:master-display=G(13250,"
                                 "34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):"
                                 "max-cll=1000,400"}));
  const pb::MediaInfo& e = job.outputs(0).expect();
  EXPECT_EQ(e.video_profile(), "Main 10");
  EXPECT_EQ(e.pix_fmt(), "yuv420p10le");
  EXPECT_EQ(e.color_transfer(), "smpte2084");
  EXPECT_EQ(e.color_primaries(), "bt2020");

  // From an SDR source there is no HDR to keep: a plan failure saying so.
  PlanResult sdr = PlanWhole(Spec({d}), HdFacts());
  ASSERT_EQ(sdr.plan.failures_size(), 1);
  EXPECT_THAT(sdr.plan.failures(0).reason(), HasSubstr("needs a PQ or HLG source"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST(PlannerPictureTest, HdrMetadataOnlyInSeiIsNotedForMastersNotLostSilently) {
  pb::SourceFacts f = HdFacts();
  f.set_color_primaries("bt2020");
  f.set_color_transfer("smpte2084");
  f.set_color_space("bt2020nc");
  f.set_bit_depth(10);
  f.set_mastering_display("G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)");
  f.set_max_cll(1000);
  PlanResult r =
      PlanWhole(Spec({Deliverable("master", "master-prores"), Sized("web", "web-h264", 720)}), f);
  ASSERT_EQ(r.plan.notes_size(), 1);
  EXPECT_THAT(r.plan.notes(0), HasSubstr("master (master-prores): the source's HDR10 mastering "
                                         "display and light levels are only in its HEVC SEI"));
  // Carried by the container: FFmpeg copies them; nothing to say.
  f.set_hdr_metadata_in_container(true);
  EXPECT_EQ(PlanWhole(Spec({Deliverable("master", "master-prores")}), f).plan.notes_size(), 0);
}

// ---- loudness and QC (issue 13) ---------------------------------------------

const pb::Job* JobOfKind(const pb::Plan& plan, const std::string& kind) {
  for (const auto& j : plan.jobs()) {
    if (j.kind() == kind) return &j;
  }
  return nullptr;
}

TEST(PlannerQcTest, WebIsNormalisedFromOneMeasurementAndGatedByDefault) {
  PlanResult r = PlanWhole(Spec({WithDefaults("web", "web-h264", 720)}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs_size(), 2);
  const pb::Job& analyse = r.plan.jobs(0);
  EXPECT_EQ(analyse.kind(), "analyse");
  EXPECT_EQ(analyse.id(), "analyse");
  EXPECT_EQ(analyse.outputs_size(), 0);
  std::vector<std::string> a = Argv(analyse);
  EXPECT_TRUE(HasSeq(a, {"-loglevel", "info"}));
  EXPECT_TRUE(HasSeq(a, {"-protocol_whitelist", "file", "-f", "mov", "-i", kSource}));
  // Black and silence reported from half the smallest limit (2 s), the
  // freeze from half of 5 s; loudness measured.
  EXPECT_EQ(ValueAfter(a, "-filter_complex"),
            "[0:v:0]setpts=PTS-STARTPTS,blackdetect=d=1.000,freezedetect=d=2.500[v];"
            "[0:a:0]asetpts=PTS-STARTPTS,silencedetect=n=-60.00dB:d=1.000,"
            "loudnorm=print_format=json[a]");

  const pb::Job& web = r.plan.jobs(1);
  EXPECT_THAT(web.depends_on(), ElementsAre("analyse"));
  std::vector<std::string> argv = Argv(web);
  EXPECT_TRUE(HasSeq(argv, {"-ac", "2", "-af", "{loudnorm:0}", "-movflags"}));
  const pb::JobOutput& out = web.outputs(0);
  // Normalised a decibel under the ceiling (AAC overshoots), gated at it.
  EXPECT_EQ(out.normalise().standard(), "web");
  EXPECT_EQ(out.normalise().integrated_lufs(), -16);
  EXPECT_EQ(out.normalise().true_peak_db(), -2);
  ASSERT_TRUE(out.has_qc());
  EXPECT_TRUE(out.qc().check_loudness());
  EXPECT_EQ(out.qc().loudness().true_peak_db(), -1);
  EXPECT_EQ(out.qc().loudness_tolerance_lu(), 1);
  EXPECT_EQ(out.qc().black_max_s(), kDefaultBlackMaxS);
  EXPECT_EQ(out.qc().freeze_max_s(), kDefaultFreezeMaxS);
  EXPECT_EQ(out.qc().silence_max_s(), kDefaultSilenceMaxS);
  EXPECT_TRUE(out.qc().allow_in_source());
  EXPECT_TRUE(out.has_normalise());

  // Social takes its own standard.
  pb::Job social = PlanOne(WithDefaults("reel", "social-h264"));
  EXPECT_EQ(social.outputs(0).normalise().integrated_lufs(), -14);
}

TEST(PlannerQcTest, MastersAndWavAreUntouchedAndUngatedUnlessAsked) {
  for (const char* preset : {"master-prores", "master-dnxhr", "audio-wav"}) {
    PlanResult r = PlanWhole(Spec({WithDefaults("m", preset)}), HdFacts());
    ASSERT_EQ(r.plan.jobs_size(), 1) << preset;
    EXPECT_THAT(Argv(r.plan.jobs(0)), Not(Contains("-af"))) << preset;
    EXPECT_FALSE(r.plan.jobs(0).outputs(0).has_qc()) << preset;
    EXPECT_FALSE(r.plan.jobs(0).outputs(0).has_normalise()) << preset;
  }
  // A master checked against EBU R128, not normalised: only loudness is
  // measured in the source.
  DeliverableSpec m = WithDefaults("m", "master-prores");
  QcChoice q;
  q.loudness = true;
  q.loudness_target = LoudnessChoice{"ebu-r128", -23, -1, 0};
  m.qc = q;
  PlanResult r = PlanWhole(Spec({m}), HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 2);
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(0)), "-filter_complex"),
            "[0:a:0]asetpts=PTS-STARTPTS,loudnorm=print_format=json[a]");
  const pb::JobOutput& out = r.plan.jobs(1).outputs(0);
  EXPECT_FALSE(out.has_normalise());
  EXPECT_TRUE(out.qc().check_loudness());
  EXPECT_EQ(out.qc().loudness().integrated_lufs(), -23);
  EXPECT_EQ(out.qc().black_max_s(), 0);
  EXPECT_THAT(Argv(r.plan.jobs(1)), Not(Contains("-af")));
}

TEST(PlannerQcTest, NoneTurnsBothOffAndASilentSourceGetsNoSoundGates) {
  DeliverableSpec off = WithDefaults("web", "web-h264");
  off.loudness = std::optional<LoudnessChoice>();
  off.qc = QcChoice{.none = true};
  PlanResult r = PlanWhole(Spec({off}), HdFacts());
  ASSERT_EQ(r.plan.jobs_size(), 1);
  EXPECT_THAT(Argv(r.plan.jobs(0)), Not(Contains("-af")));

  pb::SourceFacts mute = HdFacts();
  mute.set_has_audio(false);
  r = PlanWhole(Spec({WithDefaults("web", "web-h264")}), mute);
  ASSERT_EQ(r.plan.jobs_size(), 2);
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(0)), "-filter_complex"),
            "[0:v:0]setpts=PTS-STARTPTS,blackdetect=d=1.000,freezedetect=d=2.500[v]");
  const pb::JobOutput& out = r.plan.jobs(1).outputs(0);
  EXPECT_FALSE(out.has_normalise());
  EXPECT_FALSE(out.qc().check_loudness());
  EXPECT_EQ(out.qc().silence_max_s(), 0);
  EXPECT_EQ(out.qc().black_max_s(), kDefaultBlackMaxS);
}

TEST(PlannerQcTest, AChunkedDeliverableNormalisesItsWholeAudioAndChecksTheJoinedFile) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(60);
  f.set_frame_count(1500);
  PlanResult r = PlanDelivery(Spec({WithDefaults("web", "web-h264", 720)}), f, Pieces(14));
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs_size(), 7);  // analyse, 4 chunks, audio, assemble
  for (const auto& job : r.plan.jobs()) {
    if (job.kind() == "chunk") {
      EXPECT_EQ(job.depends_on_size(), 0) << "pictures start at once";
      EXPECT_FALSE(job.outputs(0).has_qc());
    }
  }
  const pb::Job* audio = JobOfKind(r.plan, "audio");
  ASSERT_NE(audio, nullptr);
  EXPECT_THAT(audio->depends_on(), ElementsAre("analyse"));
  EXPECT_TRUE(HasSeq(Argv(*audio), {"-af", "{loudnorm:0}"}));
  EXPECT_TRUE(audio->outputs(0).has_normalise());
  const pb::Job* assemble = JobOfKind(r.plan, "assemble");
  ASSERT_NE(assemble, nullptr);
  EXPECT_THAT(assemble->depends_on(), Contains("analyse"));
  EXPECT_TRUE(assemble->outputs(0).has_qc());
  EXPECT_THAT(Argv(*assemble), Not(Contains("-af")));
}

TEST(PlannerQcTest, EachGroupMemberHasItsOwnPlaceholderAndDependency) {
  std::vector<DeliverableSpec> ds = {WithDefaults("a", "web-h264", 360),
                                     WithDefaults("b", "social-h264", 360)};
  PlanResult r = PlanDelivery(Spec(ds), HdFacts(), Pieces(1000));
  const pb::Job* group = JobOfKind(r.plan, "group");
  ASSERT_NE(group, nullptr);
  std::vector<std::string> argv = Argv(*group);
  EXPECT_LT(IndexOf(argv, "{loudnorm:0}"), IndexOf(argv, "/out/launch-film/a.mp4"));
  EXPECT_GT(IndexOf(argv, "{loudnorm:1}"), IndexOf(argv, "/out/launch-film/a.mp4"));
  EXPECT_LT(IndexOf(argv, "{loudnorm:1}"), IndexOf(argv, "/out/launch-film/b.mp4"));
  ASSERT_EQ(group->members_size(), 2);
  for (const auto& m : group->members()) {
    EXPECT_THAT(m.depends_on(), ElementsAre("analyse"));
    EXPECT_THAT(Argv(m), Contains("{loudnorm:0}"));
  }
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// ---- streaming ladders (issue 13) ------------------------------------------------------

DeliverableSpec Ladder(const std::string& preset, std::vector<int> ladder, double segment_s = 2) {
  DeliverableSpec d = Deliverable("stream", preset);
  d.ladder = std::move(ladder);
  d.segment_s = segment_s;
  return d;
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& items) {
  return {items.begin(), items.end()};
}

TEST(PlannerStreamingTest, EachRenditionIsAJobThenAPackageCopiesThemIntoAlignedSegments) {
  PlanResult r = PlanWhole(Spec({Ladder("hls-h264", {1080, 720, 480, 360})}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.failures_size(), 0);
  // Four renditions, the sound, the package.
  ASSERT_EQ(r.plan.jobs_size(), 6);
  const std::vector<std::pair<int, int>> sizes = {
      {1920, 1080}, {1280, 720}, {854, 480}, {640, 360}};
  const std::vector<std::string> rates = {"7800k", "4500k", "1500k", "730k"};
  for (int k = 0; k < 4; ++k) {
    const pb::Job& job = r.plan.jobs(k);
    const std::vector<std::string> argv = Argv(job);
    const std::string name = "v" + std::to_string(sizes[k].second);
    EXPECT_EQ(job.kind(), "rendition");
    EXPECT_EQ(job.outputs(0).path(),
              std::string(kOutDir) + "/.reelfarm-parts/stream/" + name + ".mov");
    EXPECT_TRUE(job.outputs(0).intermediate());
    EXPECT_EQ(job.outputs(0).expect().width(), sizes[k].first);
    EXPECT_EQ(job.outputs(0).expect().height(), sizes[k].second);
    EXPECT_NEAR(job.outputs(0).expect().duration_s(), 10, 1e-9);
    EXPECT_THAT(argv, Contains("-an"));
    // The same closed GOP of one segment (2 s at 25 fps) in every rendition.
    EXPECT_TRUE(HasSeq(argv, {"-g", "50", "-keyint_min", "50", "-sc_threshold", "0"}));
    EXPECT_TRUE(HasSeq(argv, {"-maxrate", rates[k]}));
    EXPECT_EQ(ValueAfter(argv, "-bufsize"), std::to_string(2 * std::stoi(rates[k])) + "k");
  }
  const pb::Job& audio = r.plan.jobs(4);
  EXPECT_EQ(audio.kind(), "audio");
  EXPECT_TRUE(HasSeq(Argv(audio), {"-c:a", "aac", "-b:a", "128k"}));
  const pb::Job& package = r.plan.jobs(5);
  EXPECT_EQ(package.kind(), "package");
  EXPECT_THAT(Strings(package.depends_on()), ElementsAre("j0", "j1", "j2", "j3", "j4"));
  EXPECT_EQ(package.remove_after_size(), 5);
  const std::vector<std::string> argv = Argv(package);
  EXPECT_TRUE(HasSeq(argv, {"-c", "copy"})) << "packaged without re-encoding";
  EXPECT_EQ(ValueAfter(argv, "-hls_time"), "2.000000");
  EXPECT_EQ(ValueAfter(argv, "-hls_segment_type"), "fmp4");
  EXPECT_EQ(ValueAfter(argv, "-var_stream_map"),
            "v:0,name:v1080 v:1,name:v720 v:2,name:v480 v:3,name:v360 a:0,name:audio");
  EXPECT_EQ(argv.back(), std::string(kOutDir) + "/stream/%v/index.m3u8");
  EXPECT_EQ(ValueAfter(argv, "-hls_segment_filename"),
            std::string(kOutDir) + "/stream/%v/seg_%05d.m4s");
  ASSERT_EQ(package.outputs_size(), 1);
  const pb::JobOutput& out = package.outputs(0);
  EXPECT_FALSE(out.intermediate());
  EXPECT_EQ(out.path(), std::string(kOutDir) + "/stream");
  EXPECT_EQ(out.relative_path(), "stream");
  EXPECT_EQ(out.package().master(), "master.m3u8");
  EXPECT_DOUBLE_EQ(out.package().segment_s(), 2);
  ASSERT_EQ(out.package().renditions_size(), 5);
  EXPECT_EQ(out.package().renditions(1).playlist(), "v720/index.m3u8");
  EXPECT_EQ(out.package().renditions(1).expect().width(), 1280);
  EXPECT_EQ(out.package().renditions(1).expect().video_codec(), "h264");
  EXPECT_TRUE(out.package().renditions(4).audio());
  EXPECT_EQ(out.package().renditions(4).expect().audio_codec(), "aac");
}

TEST(PlannerStreamingTest, CostlyRenditionsAreChunkedOnSegmentBorders) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(60);
  f.set_frame_count(1500);
  f.set_gop_frames(12);  // the source's own GOP does not place the chunks
  // 60 s of 1080p cost 124: pieces of 40 cut it in 3; 360p (14) stays whole.
  PlanResult r = PlanDelivery(Spec({Ladder("hls-h264", {1080, 360}, 4)}), f, Pieces(40));
  ASSERT_TRUE(r.errors.empty());
  std::vector<std::string> kinds;
  for (const auto& j : r.plan.jobs()) kinds.push_back(j.kind());
  EXPECT_THAT(kinds, ElementsAre("chunk", "chunk", "chunk", "rendition", "audio", "package"));
  std::vector<std::string> starts;
  for (int k = 0; k < 3; ++k) starts.push_back(ValueAfter(Argv(r.plan.jobs(k)), "-ss"));
  // 500-frame shares moved to multiples of the 100-frame segment.
  EXPECT_THAT(starts, ElementsAre("", "20.000000", "40.000000"));
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(0)), "-frames:v"), "500");
  const pb::Job& package = r.plan.jobs(5);
  ASSERT_EQ(package.write_files_size(), 1) << "a concat list for the chunked rendition only";
  EXPECT_EQ(package.write_files(0).content(),
            "ffconcat version 1.0\nfile v1080-chunk-000.mov\nfile v1080-chunk-001.mov\n"
            "file v1080-chunk-002.mov\n");
  EXPECT_EQ(ValueAfter(Argv(package), "-hls_time"), "4.000000");
}

TEST(PlannerStreamingTest, CheapRenditionsShareOneDecode) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(4);
  f.set_frame_count(100);
  // Costs 8.3 (1080), 3.7 (720), 1.6 (480), 0.9 (360) against pieces of 4:
  // 1080 in two chunks, 720 whole, 480 and 360 in one decode-once job.
  PlanResult r =
      PlanDelivery(Spec({Ladder("hls-h264", {1080, 720, 480, 360}, 1)}), f, Pieces(4, 1));
  ASSERT_TRUE(r.errors.empty());
  std::vector<std::string> kinds;
  for (const auto& j : r.plan.jobs()) kinds.push_back(j.kind());
  ASSERT_THAT(kinds, ElementsAre("chunk", "chunk", "rendition", "renditions", "audio", "package"));
  const pb::Job& group = r.plan.jobs(3);
  EXPECT_EQ(group.members_size(), 0) << "retried as a whole, never split";
  ASSERT_EQ(group.outputs_size(), 2);
  EXPECT_EQ(group.outputs(0).relative_path(), ".reelfarm-parts/stream/v480.mov");
  EXPECT_EQ(group.outputs(1).relative_path(), ".reelfarm-parts/stream/v360.mov");
  EXPECT_TRUE(group.outputs(1).intermediate());
  EXPECT_EQ(group.outputs(1).expect().height(), 360);
  const std::vector<std::string> argv = Argv(group);
  EXPECT_THAT(Graph(group), HasSubstr("[0:v:0]split=2[s0][s1]"));
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-an"), 2);
  EXPECT_TRUE(HasSeq(argv, {"-maxrate", "1500k"}));
  EXPECT_TRUE(HasSeq(argv, {"-maxrate", "730k"}));
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-i"), 1) << "one decode of the source";
  const pb::Job& package = r.plan.jobs(5);
  EXPECT_THAT(Strings(package.depends_on()), ElementsAre("j0", "j1", "j2", "j3", "j4"));
  EXPECT_EQ(ValueAfter(Argv(package), "-var_stream_map"),
            "v:0,name:v1080 v:1,name:v720 v:2,name:v480 v:3,name:v360 a:0,name:audio");
  EXPECT_THAT(Strings(package.inputs()),
              Contains(std::string(kOutDir) + "/.reelfarm-parts/stream/v360.mov"));
}

TEST(PlannerStreamingTest, DefaultLadderAndSegmentFromTheSource) {
  DeliverableSpec d = Deliverable("stream", "hls-hevc");
  PlanResult r = PlanWhole(Spec({d}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  const pb::JobOutput& out = r.plan.jobs(r.plan.jobs_size() - 1).outputs(0);
  std::vector<int> heights;
  for (const auto& rendition : out.package().renditions()) {
    if (!rendition.audio()) heights.push_back(rendition.expect().height());
  }
  EXPECT_THAT(heights, ElementsAre(1080, 720, 480, 360));
  EXPECT_DOUBLE_EQ(out.package().segment_s(), 6);
  // x265's fixed GOP goes into its own parameters; the package keeps hvc1.
  EXPECT_THAT(ValueAfter(Argv(r.plan.jobs(0)), "-x265-params"),
              HasSubstr("keyint=150:min-keyint=150:scenecut=0:open-gop=0"));
  EXPECT_TRUE(HasSeq(Argv(r.plan.jobs(r.plan.jobs_size() - 1)), {"-tag:v", "hvc1"}));
}

TEST(PlannerStreamingTest, ThePackageIsNormalisedAndGatedLikeAWebDeliverable) {
  PlanResult r = PlanWhole(Spec({WithDefaults("stream", "hls-h264")}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs(0).kind(), "analyse");
  const pb::Job& package = r.plan.jobs(r.plan.jobs_size() - 1);
  const pb::Job& audio = r.plan.jobs(r.plan.jobs_size() - 2);
  EXPECT_EQ(audio.kind(), "audio");
  EXPECT_THAT(Strings(audio.depends_on()), ElementsAre("analyse"));
  EXPECT_EQ(audio.outputs(0).normalise().standard(), "web");
  EXPECT_THAT(Strings(package.depends_on()), Contains("analyse"));
  const pb::JobOutput& out = package.outputs(0);
  EXPECT_TRUE(out.qc().check_loudness());
  EXPECT_DOUBLE_EQ(out.qc().black_max_s(), 2);
  EXPECT_DOUBLE_EQ(out.qc().silence_max_s(), 2);
  EXPECT_EQ(out.normalise().standard(), "web") << "the gain the QC pass allows for";
}

TEST(PlannerStreamingTest, FractionalRatesRoundTheSegmentToWholeFrames) {
  pb::SourceFacts f = HdFacts();
  f.set_fps_num(30000);
  f.set_fps_den(1001);
  PlanResult r = PlanWhole(Spec({Ladder("hls-h264", {720}, 4)}), f);
  ASSERT_TRUE(r.errors.empty());
  EXPECT_TRUE(HasSeq(Argv(r.plan.jobs(0)), {"-g", "120"}));
  // 120 frames are 4.004 s; -hls_time rounds down so each key frame cuts.
  EXPECT_EQ(ValueAfter(Argv(r.plan.jobs(2)), "-hls_time"), "4.004000");
  EXPECT_NEAR(r.plan.jobs(2).outputs(0).package().segment_s(), 4.004, 1e-9);
}

TEST(PlannerStreamingTest, ARungAboveThePictureIsASpecErrorOnTheLadder) {
  DeliverableSpec d = Ladder("hls-h264", {2160, 1080});
  d.field_lines["ladder"] = 11;
  PlanResult r = PlanWhole(Spec({d}), HdFacts());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 11);
  EXPECT_EQ(r.errors[0].field, "deliverables[0].ladder");
  EXPECT_THAT(r.errors[0].message, HasSubstr("rung 2160 is above the picture's 1080 lines"));
}

TEST(PlannerStreamingTest, ACroppedLadderScalesTheCrop) {
  DeliverableSpec d = Ladder("hls-h264", {1080, 640});
  d.aspect_num = 9;
  d.aspect_den = 16;
  PlanResult r = PlanWhole(Spec({d}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.plan.jobs(0).outputs(0).expect().width(), 608);
  EXPECT_EQ(r.plan.jobs(1).outputs(0).expect().width(), 360);
  EXPECT_THAT(Graph(r.plan.jobs(1)), HasSubstr("crop=608:1080:656:0,scale=360:640"));
}

TEST(PlannerStreamingTest, PicturePartsLastAsLongAsThePictureAndSoundAsTheSound) {
  pb::SourceFacts f = HdFacts();
  f.set_duration_s(7);  // the container: the longer stream
  f.set_video_duration_s(6);
  f.set_audio_duration_s(7);
  f.set_frame_count(150);
  PlanResult r = PlanDelivery(Spec({Ladder("hls-h264", {720, 360})}), f, Pieces(2, 2));
  ASSERT_TRUE(r.errors.empty());
  const pb::Job& package = r.plan.jobs(r.plan.jobs_size() - 1);
  EXPECT_NEAR(package.outputs(0).package().renditions(0).expect().duration_s(), 6, 1e-9);
  EXPECT_NEAR(package.outputs(0).package().renditions(2).expect().duration_s(), 7, 1e-9);
  int64_t frames = 0;
  for (const auto& job : r.plan.jobs()) {
    if (job.kind() == "audio") {
      EXPECT_NEAR(job.outputs(0).expect().duration_s(), 7, 1e-9);
    }
    if (job.kind() == "rendition") {
      EXPECT_NEAR(job.outputs(0).expect().duration_s(), 6, 1e-9);
    }
    if (job.kind() == "chunk" && job.outputs(0).path().find("v720") != std::string::npos) {
      const std::string n = ValueAfter(Argv(job), "-frames:v");
      frames += n.empty() ? 0 : std::stoll(n);
      EXPECT_LT(
          std::stod(ValueAfter(Argv(job), "-ss").empty() ? "0" : ValueAfter(Argv(job), "-ss")), 6.0)
          << "no chunk starts after the picture ends";
    }
  }
  EXPECT_GT(frames, 0) << "the 720 rendition is chunked";
}

TEST(PlannerTest, AnInputWhereAnOutputWouldBePublishedIsAPlannedFailure) {
  DeliverySpec spec = Spec({Ladder("hls-h264", {720}), Deliverable("launch", "master-prores")});
  spec.source = std::string(kOutDir) + "/stream/film.mov";  // inside the package folder
  PlanResult r = PlanWhole(spec, HdFacts());
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_EQ(r.plan.failures(0).deliverable(), "stream");
  EXPECT_THAT(r.plan.failures(0).reason(), HasSubstr("publishing would replace it"));
  spec.source = std::string(kOutDir) + "/launch.mov";  // the master's own name
  r = PlanWhole(spec, HdFacts());
  ASSERT_EQ(r.plan.failures_size(), 1);
  EXPECT_EQ(r.plan.failures(0).deliverable(), "launch");
}

TEST(PlannerQualityTest, QualityFloorsCompareTheSourceThroughTheOutputsOwnChain) {
  DeliverableSpec crop = Deliverable("story", "social-h264");
  crop.aspect_num = 9;
  crop.aspect_den = 16;
  crop.height = 640;
  crop.qc = QcChoice{.ssim_min = 0.95, .psnr_min_db = 35};
  DeliverableSpec stream = Ladder("hls-h264", {720, 360});
  stream.qc = QcChoice{.psnr_min_db = 35};
  PlanResult r = PlanWhole(Spec({crop, stream}), HdFacts());
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs(0).kind(), "analyse");  // the default black/freeze gates' excuses
  const pb::Job& single = r.plan.jobs(1);
  ASSERT_EQ(single.kind(), "encode");
  const pb::QcGates& gates = single.outputs(0).qc();
  EXPECT_DOUBLE_EQ(gates.ssim_min(), 0.95);
  EXPECT_DOUBLE_EQ(gates.psnr_min_db(), 35);
  EXPECT_EQ(gates.reference_filter(),
            Graph(single).substr(7, Graph(single).size() - 10) + ",format=yuv420p");
  EXPECT_EQ(gates.reference_format(), "mov");
  EXPECT_EQ(gates.reference_path(), kSource);
  EXPECT_EQ(gates.sample_every(), 25) << "one frame a second";
  // A package is compared on its top rendition; its job reads the source.
  const pb::Job& package = r.plan.jobs(r.plan.jobs_size() - 1);
  EXPECT_THAT(package.outputs(0).qc().reference_filter(), HasSubstr("scale=1280:720,setsar=1"));
  EXPECT_THAT(Strings(package.inputs()), Contains(std::string(kSource)));

  // Frames are compared by number: not for a VFR source (said in the plan).
  pb::SourceFacts vfr = HdFacts();
  vfr.set_variable_frame_rate(true);
  r = PlanWhole(Spec({crop}), vfr);
  ASSERT_EQ(r.plan.jobs_size(), 2);
  EXPECT_DOUBLE_EQ(r.plan.jobs(1).outputs(0).qc().ssim_min(), 0);
  ASSERT_EQ(r.plan.notes_size(), 1);
  EXPECT_THAT(r.plan.notes(0), HasSubstr("variable frame rate"));
}

TEST(PlannerStreamingTest, ASilentSourceMakesAPackageWithoutSound) {
  pb::SourceFacts f = HdFacts();
  f.set_has_audio(false);
  PlanResult r = PlanWhole(Spec({Ladder("hls-h264", {720, 360})}), f);
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.plan.jobs_size(), 3);
  const pb::Job& package = r.plan.jobs(2);
  EXPECT_EQ(ValueAfter(Argv(package), "-var_stream_map"), "v:0,name:v720 v:1,name:v360");
  EXPECT_EQ(package.outputs(0).package().renditions_size(), 2);
}

}  // namespace
}  // namespace reelfarm

// ---- GPU variants (docs/gpu.md): the same picture, bound when dispatched ----

namespace reelfarm {
namespace {

std::vector<std::string> GpuArgv(const pb::Job& job) {
  return {job.gpu().argv().begin(), job.gpu().argv().end()};
}

TEST(PlannerGpuTest, AnAutoDeliverableCarriesTheSamePictureFromNvenc) {
  pb::Job job = PlanOne(Deliverable("web", "web-h264"));
  ASSERT_TRUE(job.has_gpu());
  std::vector<std::string> cpu = Argv(job), gpu = GpuArgv(job);
  EXPECT_EQ(ValueAfter(cpu, "-c:v"), "libx264");
  EXPECT_EQ(ValueAfter(gpu, "-c:v"), "h264_nvenc");
  // Constant quality, the preset's profile and pixel format; the same
  // filters, colour tags, rate, sound and container as the CPU's.
  EXPECT_TRUE(HasSeq(gpu, {"-rc", "vbr", "-cq", "23", "-b:v", "0"}));
  EXPECT_EQ(ValueAfter(gpu, "-profile:v"), "high");
  EXPECT_EQ(ValueAfter(gpu, "-pix_fmt"), "yuv420p");
  EXPECT_EQ(Graph(job), ValueAfter(gpu, "-filter_complex"));
  for (const char* flag : {"-color_primaries", "-r", "-c:a", "-movflags", "-f"}) {
    EXPECT_EQ(ValueAfter(cpu, flag), ValueAfter(gpu, flag)) << flag;
  }
  EXPECT_EQ(cpu.back(), gpu.back());
  EXPECT_FALSE(job.needs().gpu());
  EXPECT_TRUE(job.gpu().needs().gpu());
  EXPECT_THAT(std::vector<std::string>(job.gpu().needs().encoders().begin(),
                                       job.gpu().needs().encoders().end()),
              ElementsAre("h264_nvenc", "aac"));
}

TEST(PlannerGpuTest, HevcFromNvencKeepsTheHvc1TagAndMainProfile) {
  pb::Job job = PlanOne(Deliverable("web", "web-hevc"));
  ASSERT_TRUE(job.has_gpu());
  std::vector<std::string> gpu = GpuArgv(job);
  EXPECT_EQ(ValueAfter(gpu, "-c:v"), "hevc_nvenc");
  EXPECT_EQ(ValueAfter(gpu, "-tag:v"), "hvc1");
  EXPECT_EQ(ValueAfter(gpu, "-profile:v"), "main");
}

TEST(PlannerGpuTest, EncoderCpuHasNoVariantAndEncoderGpuIsTheVariantAlone) {
  DeliverableSpec cpu = Deliverable("web", "web-h264");
  cpu.encoder = "cpu";
  EXPECT_FALSE(PlanOne(cpu).has_gpu());
  DeliverableSpec gpu = Deliverable("web", "web-h264");
  gpu.encoder = "gpu";
  pb::Job job = PlanOne(gpu);
  EXPECT_FALSE(job.has_gpu());
  EXPECT_EQ(ValueAfter(Argv(job), "-c:v"), "h264_nvenc");
  EXPECT_TRUE(job.needs().gpu());
}

TEST(PlannerGpuTest, PresetsWithoutAGpuEncoderStayOnTheCpu) {
  EXPECT_FALSE(PlanOne(Deliverable("master", "master-prores")).has_gpu());
  EXPECT_FALSE(PlanOne(Deliverable("poster", "thumbnail-jpg")).has_gpu());
}

TEST(PlannerGpuTest, AGpuOnlyDeliverableIsOneJobHoweverCostly) {
  DeliverableSpec gpu = Deliverable("web", "web-h264");
  gpu.encoder = "gpu";
  DeliverableSpec autod = Deliverable("web2", "web-h264");
  // Pieces of 1: both cost about 20; the auto one is cut in time chunks
  // (on CPU slots), the GPU-only one is not.
  PlannerOptions o = Pieces(1, 1);
  PlanResult r = PlanDelivery(Spec({gpu, autod}), HdFacts(), o);
  ASSERT_TRUE(r.errors.empty());
  int gpu_jobs = 0, chunks = 0;
  for (const auto& j : r.plan.jobs()) {
    if (j.kind() == "chunk") {
      ++chunks;
      EXPECT_FALSE(j.has_gpu()) << "chunks of one deliverable must share an encoder";
    }
    if (j.needs().gpu()) ++gpu_jobs;
  }
  EXPECT_EQ(gpu_jobs, 1);
  EXPECT_GT(chunks, 1);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST(PlannerGpuTest, OnAGpuFarmAutoDeliverablesAreWholeJobsThatMayRunOnEither) {
  // Cheap ones (grouped on a CPU farm) and a costly one (chunked there).
  std::vector<DeliverableSpec> ds = {Sized("a", "web-h264", 360), Sized("b", "web-h264", 270),
                                     Sized("big", "web-h264", 1080),
                                     Deliverable("master", "master-prores")};
  PlannerOptions cpu_farm = Pieces(4, 1);
  PlanResult cpu = PlanDelivery(Spec(ds), HdFacts(), cpu_farm);
  ASSERT_TRUE(cpu.errors.empty());
  std::map<std::string, int> cpu_jobs_of;
  for (const auto& j : cpu.plan.jobs()) {
    for (const auto& o : j.outputs()) ++cpu_jobs_of[o.deliverable()];
    if (j.kind() == "chunk") EXPECT_FALSE(j.has_gpu());
  }
  EXPECT_GT(cpu_jobs_of["big"], 1) << "cut in chunks on a CPU farm";

  PlannerOptions gpu_farm = cpu_farm;
  gpu_farm.gpu_farm = true;
  PlanResult gpu = PlanDelivery(Spec(ds), HdFacts(), gpu_farm);
  ASSERT_TRUE(gpu.errors.empty());
  std::map<std::string, int> jobs_of;
  int variants = 0;
  for (const auto& j : gpu.plan.jobs()) {
    for (const auto& o : j.outputs()) ++jobs_of[o.deliverable()];
    variants += j.has_gpu() ? 1 : 0;
    EXPECT_NE(j.kind(), "group");
  }
  EXPECT_EQ(variants, 3);
  EXPECT_EQ(jobs_of["a"], 1);
  EXPECT_EQ(jobs_of["big"], 1);
  EXPECT_GT(jobs_of["master"], 1) << "the master is still cut in chunks: no GPU encoder makes it";
}

}  // namespace
}  // namespace reelfarm
