// CompareMedia: each expectation field, its message, and the tolerances.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/job_executor.h"

namespace reelfarm {
namespace {

using ::testing::HasSubstr;

// What a 1080p25 H.264 + stereo AAC mp4 probes as.
pb::MediaInfo Actual() {
  pb::MediaInfo m;
  m.set_format_name("mov,mp4,m4a,3gp,3g2,mj2");
  m.set_has_video(true);
  m.set_video_codec("h264");
  m.set_video_profile("High");
  m.set_width(1920);
  m.set_height(1080);
  m.set_pix_fmt("yuv420p");
  m.set_fps_num(25);
  m.set_fps_den(1);
  m.set_duration_s(10.0);
  m.set_rotation(0);
  m.set_has_audio(true);
  m.set_audio_codec("aac");
  m.set_audio_channels(2);
  m.set_audio_sample_rate(48000);
  return m;
}

TEST(CompareMediaTest, MatchingMediaPasses) {
  pb::MediaInfo want = Actual();
  want.set_format_name("mp4");  // a substring of ffprobe's list
  EXPECT_EQ(CompareMedia(want, Actual()), "");
}

TEST(CompareMediaTest, ZeroAndEmptyFieldsAreNotChecked) {
  pb::MediaInfo want;
  want.set_has_video(true);
  want.set_has_audio(true);
  EXPECT_EQ(CompareMedia(want, Actual()), "");
}

TEST(CompareMediaTest, EachFieldMismatchIsNamedWithActualAndExpected) {
  struct Case {
    void (*edit)(pb::MediaInfo*);
    const char* message;
  };
  const Case cases[] = {
      {[](pb::MediaInfo* m) { m->set_format_name("mxf"); },
       "format mov,mp4,m4a,3gp,3g2,mj2, expected mxf"},
      {[](pb::MediaInfo* m) { m->set_video_codec("prores"); }, "video codec h264, expected prores"},
      {[](pb::MediaInfo* m) { m->set_video_profile("Main"); }, "video profile High, expected Main"},
      {[](pb::MediaInfo* m) { m->set_width(1280); }, "width 1920, expected 1280"},
      {[](pb::MediaInfo* m) { m->set_height(720); }, "height 1080, expected 720"},
      {[](pb::MediaInfo* m) { m->set_pix_fmt("yuv422p10le"); },
       "pixel format yuv420p, expected yuv422p10le"},
      {[](pb::MediaInfo* m) { m->set_fps_num(24); }, "frame rate 25/1, expected 24/1"},
      {[](pb::MediaInfo* m) { m->set_duration_s(12); }, "duration 10.000 s, expected 12.000 s"},
      {[](pb::MediaInfo* m) { m->set_audio_codec("pcm_s24le"); },
       "audio codec aac, expected pcm_s24le"},
      {[](pb::MediaInfo* m) { m->set_audio_channels(6); }, "audio channels 2, expected 6"},
      {[](pb::MediaInfo* m) { m->set_audio_sample_rate(44100); },
       "audio sample rate 48000, expected 44100"},
      {[](pb::MediaInfo* m) { m->set_has_video(false); }, "video stream present, expected none"},
      {[](pb::MediaInfo* m) { m->set_has_audio(false); }, "audio stream present, expected none"},
      {[](pb::MediaInfo* m) { m->set_has_subtitle(true); },
       "subtitle stream missing, expected present"},
  };
  for (const Case& c : cases) {
    pb::MediaInfo want = Actual();
    c.edit(&want);
    EXPECT_EQ(CompareMedia(want, Actual()), c.message);
  }
}

TEST(CompareMediaTest, MissingStreamsAreNamed) {
  pb::MediaInfo got = Actual();
  got.set_has_audio(false);
  EXPECT_EQ(CompareMedia(Actual(), got), "audio stream missing, expected present");
}

TEST(CompareMediaTest, SubtitleCodec) {
  pb::MediaInfo want = Actual();
  want.set_has_subtitle(true);
  want.set_subtitle_codec("mov_text");
  pb::MediaInfo got = Actual();
  got.set_has_subtitle(true);
  got.set_subtitle_codec("subrip");
  EXPECT_EQ(CompareMedia(want, got), "subtitle codec subrip, expected mov_text");
  got.set_subtitle_codec("mov_text");
  EXPECT_EQ(CompareMedia(want, got), "");
}

TEST(CompareMediaTest, PublishedVideoMustBeUpright) {
  pb::MediaInfo got = Actual();
  got.set_rotation(90);
  EXPECT_EQ(CompareMedia(Actual(), got), "rotation 90, expected 0");
}

TEST(CompareMediaTest, SeveralMismatchesInOneSentence) {
  pb::MediaInfo want = Actual();
  want.set_width(1280);
  want.set_height(720);
  EXPECT_EQ(CompareMedia(want, Actual()), "width 1920, expected 1280; height 1080, expected 720");
}

TEST(CompareMediaTest, FrameRatesCompareAsRationalsWithinATenthOfAPercent) {
  pb::MediaInfo want = Actual();
  pb::MediaInfo got = Actual();
  want.set_fps_num(30000);
  want.set_fps_den(1001);
  got.set_fps_num(2997);  // 29.97 vs 29.97002997: 0.0001% apart
  got.set_fps_den(100);
  EXPECT_EQ(CompareMedia(want, got), "");
  got.set_fps_num(60000);  // same value, other terms
  got.set_fps_den(2002);
  EXPECT_EQ(CompareMedia(want, got), "");

  want.set_fps_num(1000);
  want.set_fps_den(1);
  got.set_fps_num(1001);  // exactly 0.1% off: still accepted
  got.set_fps_den(1);
  EXPECT_EQ(CompareMedia(want, got), "");
  got.set_fps_num(1002);  // 0.2% off
  EXPECT_EQ(CompareMedia(want, got), "frame rate 1002/1, expected 1000/1");

  got.set_fps_num(0);  // ffprobe found no rate
  got.set_fps_den(0);
  EXPECT_EQ(CompareMedia(want, got), "frame rate 0/0, expected 1000/1");
}

TEST(CompareMediaTest, VideoDurationToleranceIsTwoFramesPlusFiftyMs) {
  // 25 fps: 2 x 0.04 + 0.05 = 0.13 s either way.
  pb::MediaInfo want = Actual();
  pb::MediaInfo got = Actual();
  got.set_duration_s(10.12);
  EXPECT_EQ(CompareMedia(want, got), "");
  got.set_duration_s(9.88);
  EXPECT_EQ(CompareMedia(want, got), "");
  got.set_duration_s(10.14);
  EXPECT_EQ(CompareMedia(want, got), "duration 10.140 s, expected 10.000 s");
  got.set_duration_s(9.86);
  EXPECT_THAT(CompareMedia(want, got), HasSubstr("duration 9.860 s"));

  // 12.5 fps: two frames are 0.16 s, so 0.2 s off still passes.
  want.set_fps_num(25);
  want.set_fps_den(2);
  got.set_fps_num(25);
  got.set_fps_den(2);
  got.set_duration_s(10.2);
  EXPECT_EQ(CompareMedia(want, got), "");
}

TEST(CompareMediaTest, AudioOnlyDurationToleranceIsATenth) {
  pb::MediaInfo want;
  want.set_format_name("wav");
  want.set_has_audio(true);
  want.set_duration_s(2.0);
  pb::MediaInfo got = want;
  got.set_duration_s(2.09);
  EXPECT_EQ(CompareMedia(want, got), "");
  got.set_duration_s(2.11);
  EXPECT_EQ(CompareMedia(want, got), "duration 2.110 s, expected 2.000 s");
  got.set_duration_s(1.89);
  EXPECT_EQ(CompareMedia(want, got), "duration 1.890 s, expected 2.000 s");
}

TEST(MemoryLimitTest, ResidentNeedGrowsWithTheThreadBudget) {
  pb::Job job;
  JobExecutorOptions options;
  options.headroom_per_thread_mb = 32;
  EXPECT_EQ(ResidentLimitFor(job, options, 8), 0u) << "no need: no limit";
  job.set_memory_mb(1000);
  // Planned before thread budgets: the worker's headroom a thread.
  EXPECT_EQ(ResidentLimitFor(job, options, 8), uint64_t{1000 + 8 * 32} << 20);
  EXPECT_EQ(ResidentLimitFor(job, options, 0), uint64_t{1000 + 32} << 20);
  job.set_memory_per_thread_mb(70);
  EXPECT_EQ(ResidentLimitFor(job, options, 24), uint64_t{1000 + 24 * 70} << 20);
  options.job_memory_limits = false;
  EXPECT_EQ(ResidentLimitFor(job, options, 24), 0u);
}

TEST(MemoryLimitTest, AddressSpaceIsResidentPlusSlackCappedByTheWorkersCeiling) {
  pb::Job job;
  JobExecutorOptions options;
  EXPECT_EQ(MemoryLimitFor(job, options, 8), 0u) << "no need, no ceiling: no limit";
  job.set_memory_mb(1000);
  job.set_memory_per_thread_mb(70);
  const uint64_t at8 = ResidentLimitFor(job, options, 8) + (AddressSpaceSlackMb(8) << 20);
  EXPECT_EQ(MemoryLimitFor(job, options, 8), at8);
  // The slack grows with the threads, as measured: 4 threads of 8 MiB
  // stacks and more a budgeted thread.
  EXPECT_GE(AddressSpaceSlackMb(64) - AddressSpaceSlackMb(1), 63u * 80);
  options.memory_limit_bytes = uint64_t{1} << 30;
  EXPECT_EQ(MemoryLimitFor(job, options, 8), uint64_t{1} << 30) << "the ceiling wins";
  options.memory_limit_bytes = uint64_t{64} << 30;
  EXPECT_EQ(MemoryLimitFor(job, options, 8), at8);
  options.job_memory_limits = false;
  EXPECT_EQ(MemoryLimitFor(job, options, 8), uint64_t{64} << 30) << "only the ceiling";
}

TEST(MemoryLimitTest, AttemptThreadsAreTheBudgetLoweredByTheAttemptsCap) {
  JobExecutorOptions options;
  pb::Assign assign;
  EXPECT_EQ(AttemptThreads(options, assign, 16), 16) << "no budget: the machine's";
  options.threads = 4;
  EXPECT_EQ(AttemptThreads(options, assign, 16), 4);
  assign.set_max_threads(2);
  EXPECT_EQ(AttemptThreads(options, assign, 16), 2);
  assign.set_max_threads(8);
  EXPECT_EQ(AttemptThreads(options, assign, 16), 4) << "a cap never raises the budget";
}

TEST(MemoryLimitTest, OutOfMemoryLinesAreRecognised) {
  EXPECT_TRUE(IsOutOfMemoryLine("[libx264 @ 0x55d0] malloc of size 8294400 failed"));
  EXPECT_TRUE(IsOutOfMemoryLine("Error while filtering: Cannot allocate memory"));
  EXPECT_TRUE(IsOutOfMemoryLine("x265 [error]: out of memory"));
  EXPECT_FALSE(IsOutOfMemoryLine("[aac @ 0x5582] 2 frames left in the queue on closing"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// Issue 17: scan and colour tags are checked; synonyms count as one.
TEST(CompareMediaTest, FieldOrderAndColourTagsAreCheckedNamesForTheSameThingAreOne) {
  pb::MediaInfo want = Actual();
  want.set_field_order("progressive");
  want.set_color_primaries("bt709");
  want.set_color_transfer("bt709");
  want.set_color_space("bt709");
  want.set_color_range("tv");
  pb::MediaInfo got = Actual();
  got.set_field_order("tt");
  got.set_color_primaries("bt709");
  got.set_color_transfer("");  // untagged
  got.set_color_space("bt709");
  got.set_color_range("tv");
  EXPECT_EQ(CompareMedia(want, got),
            "field order tt, expected progressive; colour transfer unset, expected bt709");

  // BT.601's transfer is BT.709's curve and its two matrices are one (MXF
  // records them so), but its primaries are not BT.709's.
  want.set_field_order("");
  want.set_color_primaries("smpte170m");
  want.set_color_transfer("smpte170m");
  want.set_color_space("smpte170m");
  got.set_color_primaries("bt470bg");
  got.set_color_transfer("bt709");
  got.set_color_space("bt470bg");
  EXPECT_EQ(CompareMedia(want, got), "colour primaries bt470bg, expected smpte170m");
}

}  // namespace
}  // namespace reelfarm
