// Thread budgets: how a worker divides its cores, and how a budget is
// written into an FFmpeg argv.
#include "common/thread_budget.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace reelfarm {
namespace {

using Argv = std::vector<std::string>;

// The value after the n-th (0-based) occurrence of `option`, "" when none.
std::string ValueAfter(const Argv& argv, const std::string& option, int n = 0) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == option && n-- == 0) return argv[i + 1];
  }
  return "";
}

size_t IndexOfOutput(const Argv& argv, const std::string& path) {
  return static_cast<size_t>(std::find(argv.begin(), argv.end(), path) - argv.begin());
}

int Count(const Argv& argv, const std::string& item) {
  return static_cast<int>(std::count(argv.begin(), argv.end(), item));
}

TEST(ThreadBudgetTest, SlotsDefaultToOnePerFourCoresAndShareTheCores) {
  EXPECT_EQ(DefaultSlots(1), 1);
  EXPECT_EQ(DefaultSlots(2), 1);
  EXPECT_EQ(DefaultSlots(16), 4);
  EXPECT_EQ(DefaultSlots(64), 16);
  EXPECT_EQ(ThreadsPerSlot(16, 4), 4);
  EXPECT_EQ(ThreadsPerSlot(2, 1), 2);
  EXPECT_EQ(ThreadsPerSlot(2, 4), 1);  // never zero
  EXPECT_EQ(ThreadsPerSlot(16, 3), 5);
  EXPECT_EQ(ThreadsPerSlot(8, 0), 8);
}

TEST(ThreadBudgetTest, UsableCoresIsAtLeastOne) { EXPECT_GE(UsableCores(), 1); }

TEST(ThreadBudgetTest, EveryDecoderFilterAndEncoderGetsTheBudget) {
  const Argv argv = {"ffmpeg",
                     "-hide_banner",
                     "-protocol_whitelist",
                     "file",
                     "-f",
                     "mov",
                     "-i",
                     "/in/src.mov",
                     "-protocol_whitelist",
                     "file",
                     "-f",
                     "srt",
                     "-i",
                     "/in/en.srt",
                     "-filter_complex",
                     "[0:v:0]scale=1280:720[v]",
                     "-map",
                     "[v]",
                     "-c:v",
                     "libx264",
                     "-preset",
                     "medium",
                     "-f",
                     "mp4",
                     "/out/web.mp4"};
  Argv out = ApplyThreadBudget(argv, {"/out/web.mp4"}, 6);
  ASSERT_EQ(out[0], "ffmpeg");
  EXPECT_EQ(ValueAfter(out, "-filter_threads"), "6");
  EXPECT_EQ(ValueAfter(out, "-filter_complex_threads"), "6");
  EXPECT_EQ(Count(out, "-threads"), 3);  // two inputs, one output
  // A decoder's -threads stands before its -i ...
  auto first_input = std::find(out.begin(), out.end(), "-i");
  EXPECT_EQ(*(first_input - 2), "-threads");
  EXPECT_EQ(*(first_input - 1), "6");
  // ... an encoder's right before its output path, which stays last.
  ASSERT_EQ(out.back(), "/out/web.mp4");
  EXPECT_EQ(out[out.size() - 3], "-threads");
  EXPECT_EQ(out[out.size() - 2], "6");
  // Nothing else changed order.
  Argv rest;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == "-threads" || out[i] == "-filter_threads" ||
        out[i] == "-filter_complex_threads") {
      ++i;
      continue;
    }
    rest.push_back(out[i]);
  }
  EXPECT_EQ(rest, argv);
}

TEST(ThreadBudgetTest, X265GetsItsPoolSizedToo) {
  const Argv argv = {"ffmpeg",     "-i",           "/in/src.mov",
                     "-map",       "[v0]",         "-c:v",
                     "libx265",    "-x265-params", "log-level=error",
                     "-f",         "mp4",          "/out/a.mp4",
                     "-map",       "[v1]",         "-c:v",
                     "libx265",    "-f",           "mp4",
                     "/out/b.mp4", "-map",         "[v2]",
                     "-c:v",       "libx264",      "-f",
                     "mp4",        "/out/c.mp4"};
  Argv out = ApplyThreadBudget(argv, {"/out/a.mp4", "/out/b.mp4", "/out/c.mp4"}, 4);
  EXPECT_EQ(ValueAfter(out, "-x265-params", 0), "log-level=error:pools=4");
  EXPECT_EQ(ValueAfter(out, "-x265-params", 1), "pools=4");  // added where none was given
  EXPECT_EQ(Count(out, "-x265-params"), 2);                  // none for the x264 output
  EXPECT_EQ(Count(out, "-threads"), 4);
  // x265 refuses more than 16 frame threads; its pool takes the budget.
  Argv wide = ApplyThreadBudget(argv, {"/out/a.mp4", "/out/b.mp4", "/out/c.mp4"}, 24);
  EXPECT_EQ(ValueAfter(wide, "-x265-params", 0), "log-level=error:pools=24");
  EXPECT_EQ(wide[IndexOfOutput(wide, "/out/a.mp4") - 1], "16");
  EXPECT_EQ(wide[IndexOfOutput(wide, "/out/c.mp4") - 1], "24");
}

TEST(ThreadBudgetTest, ThreadOptionsTheJobSetsAreKept) {
  const Argv argv = {
      "ffmpeg", "-filter_threads", "2",        "-threads", "1",  "-i",  "/in/a.mov",
      "-c:v",   "prores_ks",       "-threads", "3",        "-f", "mov", "/out/a.mov"};
  Argv out = ApplyThreadBudget(argv, {"/out/a.mov"}, 8);
  EXPECT_EQ(ValueAfter(out, "-filter_threads"), "2");
  EXPECT_EQ(ValueAfter(out, "-filter_complex_threads"), "8");
  EXPECT_EQ(Count(out, "-threads"), 2);
  EXPECT_EQ(ValueAfter(out, "-threads", 0), "1");
  EXPECT_EQ(ValueAfter(out, "-threads", 1), "3");
}

}  // namespace
}  // namespace reelfarm
