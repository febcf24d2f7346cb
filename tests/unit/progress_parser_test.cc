// ProgressParser on `ffmpeg -progress pipe:1 -nostats` output captured from
// FFmpeg 5.1.
#include "worker/progress_parser.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace reelfarm {
namespace {

std::vector<ProgressSample> FeedAll(ProgressParser& parser, const std::string& text) {
  std::vector<ProgressSample> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (auto s = parser.Feed(line)) out.push_back(*s);
  }
  return out;
}

// libx264 + aac, two blocks; the first has speed "   0x" and fps 0.00.
constexpr const char* kVideoRun =
    "frame=1\n"
    "fps=0.00\n"
    "stream_0_0_q=0.0\n"
    "bitrate=N/A\n"
    "total_size=48\n"
    "out_time_us=0\n"
    "out_time_ms=0\n"
    "out_time=00:00:00.000000\n"
    "dup_frames=0\n"
    "drop_frames=0\n"
    "speed=   0x\n"
    "progress=continue\n"
    "frame=25\n"
    "fps=24.50\n"
    "stream_0_0_q=-1.0\n"
    "bitrate= 134.6kbits/s\n"
    "total_size=17193\n"
    "out_time_us=1021678\n"
    "out_time_ms=1021678\n"
    "out_time=00:00:01.021678\n"
    "dup_frames=0\n"
    "drop_frames=0\n"
    "speed=4.99x\n"
    "progress=end\n";

TEST(ProgressParserTest, ParsesBlocksOfARealRun) {
  ProgressParser parser;
  std::vector<ProgressSample> samples = FeedAll(parser, kVideoRun);
  ASSERT_EQ(samples.size(), 2u);

  EXPECT_EQ(samples[0].frame, 1);
  EXPECT_DOUBLE_EQ(samples[0].fps, 0);
  EXPECT_DOUBLE_EQ(samples[0].out_time_s, 0);
  EXPECT_DOUBLE_EQ(samples[0].speed, 0);
  EXPECT_EQ(samples[0].total_size, 48);
  EXPECT_FALSE(samples[0].end);

  EXPECT_EQ(samples[1].frame, 25);
  EXPECT_DOUBLE_EQ(samples[1].fps, 24.5);
  EXPECT_NEAR(samples[1].out_time_s, 1.021678, 1e-9);
  EXPECT_DOUBLE_EQ(samples[1].speed, 4.99);
  EXPECT_EQ(samples[1].total_size, 17193);
  EXPECT_TRUE(samples[1].end);
}

TEST(ProgressParserTest, NotAvailableValuesDoNotInventNumbers) {
  ProgressParser parser;
  // Audio-only run: no frame/fps keys, speed N/A, then out_time N/A.
  std::vector<ProgressSample> samples = FeedAll(parser,
                                                "bitrate=1093.5kbits/s\n"
                                                "total_size=3174\n"
                                                "out_time_us=23220\n"
                                                "out_time_ms=23220\n"
                                                "out_time=00:00:00.023220\n"
                                                "speed=N/A\n"
                                                "progress=continue\n"
                                                "total_size=N/A\n"
                                                "out_time_us=N/A\n"
                                                "out_time_ms=N/A\n"
                                                "out_time=N/A\n"
                                                "speed=N/A\n"
                                                "progress=continue\n");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].frame, 0);
  EXPECT_NEAR(samples[0].out_time_s, 0.02322, 1e-9);
  EXPECT_DOUBLE_EQ(samples[0].speed, 0);
  // N/A keeps the last known position rather than jumping back to 0.
  EXPECT_NEAR(samples[1].out_time_s, 0.02322, 1e-9);
  EXPECT_EQ(samples[1].total_size, 0);
}

TEST(ProgressParserTest, OutTimeMsIsMicroseconds) {
  // FFmpeg's out_time_ms carries microseconds, same as out_time_us; either
  // alone is enough.
  ProgressParser parser;
  std::vector<ProgressSample> samples = FeedAll(parser, "out_time_ms=2500000\nprogress=continue\n");
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_DOUBLE_EQ(samples[0].out_time_s, 2.5);
}

TEST(ProgressParserTest, IgnoresMalformedLinesAndCarriageReturns) {
  ProgressParser parser;
  std::vector<ProgressSample> samples = FeedAll(parser,
                                                "garbage without equals\n"
                                                "=novalue\n"
                                                "frame=abc\n"
                                                "frame=12\r\n"
                                                "speed=1.5x \r\n"
                                                "unknown_key=7\n"
                                                "progress=continue\r\n");
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].frame, 12);
  EXPECT_DOUBLE_EQ(samples[0].speed, 1.5);
  EXPECT_FALSE(samples[0].end);
}

TEST(ProgressParserTest, OnlyProgressLinesCloseABlock) {
  ProgressParser parser;
  EXPECT_FALSE(parser.Feed("frame=3").has_value());
  EXPECT_FALSE(parser.Feed("out_time_us=120000").has_value());
  auto s = parser.Feed("progress=end");
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->end);
  EXPECT_EQ(s->frame, 3);
}

}  // namespace
}  // namespace reelfarm
