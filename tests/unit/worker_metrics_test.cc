// The worker's series and the nvidia-smi parser; pure, no processes.
#include "worker/worker_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <cmath>

namespace reelfarm {
namespace {

double Sample(prometheus::Registry& r, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  for (const auto& fam : r.Collect()) {
    if (fam.name != name) continue;
    for (const auto& m : fam.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& lp : m.label) found |= lp.name == k && lp.value == v;
        match &= found;
      }
      if (!match) continue;
      return fam.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return std::nan("");
}

pb::Progress Progress(int64_t frame, double speed, double fps) {
  pb::Progress p;
  p.set_frame(frame);
  p.set_speed(speed);
  p.set_fps(fps);
  return p;
}

class WorkerMetricsTest : public ::testing::Test {
 protected:
  WorkerMetricsTest() : metrics_(registry_, "render01", WorkerShape{16, 2, 8}, Caps()) {}
  static EncoderProbeResult Caps() {
    EncoderProbeResult c;
    c.encoders = {"aac", "h264_nvenc", "libx264"};
    c.gpu = true;
    c.gpu_names = {"NVIDIA L4"};
    return c;
  }
  prometheus::Registry registry_;
  WorkerMetrics metrics_;
};

TEST_F(WorkerMetricsTest, CapabilitiesAndSlotsAreExposed) {
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_slots"), 2);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_cores"), 16);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_threads_per_slot"), 8);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_slots_busy"), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_info", {{"worker", "render01"}}), 1);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_encoder_info", {{"encoder", "h264_nvenc"}}), 1);
  EXPECT_TRUE(std::isnan(Sample(registry_, "reelfarm_worker_encoder_info", {{"encoder", "x"}})));
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_gpu_info", {{"gpu", "0"}, {"name", "NVIDIA L4"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_encode_speed_ratio", {{"kind", "encode"}}), 0);
}

TEST_F(WorkerMetricsTest, ProgressCountsFrameDeltasAndSumsLiveSpeedPerKind) {
  metrics_.OnAttemptStart(7, "encode");
  metrics_.OnAttemptStart(8, "encode");
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_slots_busy"), 2);
  metrics_.OnProgress(7, Progress(100, 2.0, 50));
  metrics_.OnProgress(8, Progress(30, 1.5, 40));
  metrics_.OnProgress(7, Progress(250, 2.5, 60));
  metrics_.OnProgress(7, Progress(250, 2.5, 60));  // a repeated sample adds no frames
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_frames_encoded_total", {{"kind", "encode"}}), 280);
  EXPECT_DOUBLE_EQ(Sample(registry_, "reelfarm_worker_encode_speed_ratio", {{"kind", "encode"}}),
                   4.0);
  EXPECT_DOUBLE_EQ(
      Sample(registry_, "reelfarm_worker_encode_frames_per_second", {{"kind", "encode"}}), 100);

  pb::JobResult ok;
  ok.set_ok(true);
  ok.set_encode_seconds(4);
  ok.add_outputs()->set_bytes(1000);
  ok.add_outputs()->set_bytes(24);
  metrics_.OnAttemptEnd(7, ok, false, 10.0);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_slots_busy"), 1);
  EXPECT_DOUBLE_EQ(Sample(registry_, "reelfarm_worker_encode_speed_ratio", {{"kind", "encode"}}),
                   1.5);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_output_bytes_total", {{"kind", "encode"}}), 1024);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_media_encoded_seconds_total", {{"kind", "encode"}}),
            10);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_encode_seconds_total", {{"kind", "encode"}}), 4);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_ffmpeg_exits_total",
                   {{"kind", "encode"}, {"result", "succeeded"}}),
            1);

  pb::JobResult failed;
  failed.set_ok(false);
  failed.set_retryable(true);
  failed.add_outputs()->set_bytes(5000);  // not published: not counted
  metrics_.OnAttemptEnd(8, failed, false, 10.0);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_output_bytes_total", {{"kind", "encode"}}), 1024);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_ffmpeg_exits_total",
                   {{"kind", "encode"}, {"result", "retryable"}}),
            1);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_encode_speed_ratio", {{"kind", "encode"}}), 0);
  EXPECT_EQ(Sample(registry_, "reelfarm_worker_slots_busy"), 0);
}

TEST(AttemptResultLabel, CoversEveryEnd) {
  pb::JobResult r;
  r.set_ok(true);
  EXPECT_STREQ(AttemptResultLabel(r, false), "succeeded");
  EXPECT_STREQ(AttemptResultLabel(r, true), "cancelled");
  r.set_ok(false);
  EXPECT_STREQ(AttemptResultLabel(r, false), "failed");
  r.set_retryable(true);
  EXPECT_STREQ(AttemptResultLabel(r, false), "retryable");
}

TEST(ParseNvidiaSmiDmon, ReadsEncoderAndDecoderColumnsByName) {
  // The classic layout (-s u).
  auto g = ParseNvidiaSmiDmon(
      "# gpu    sm   mem   enc   dec\n"
      "# Idx     %     %     %     %\n"
      "    0    12     3    45     7\n"
      "    1     0     0     0   100\n");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].index, 0);
  EXPECT_DOUBLE_EQ(g[0].encoder, 0.45);
  EXPECT_DOUBLE_EQ(g[0].decoder, 0.07);
  EXPECT_EQ(g[1].index, 1);
  EXPECT_DOUBLE_EQ(g[1].decoder, 1.0);
}

TEST(ParseNvidiaSmiDmon, NewerDriversWithMoreColumnsAndUnexposedValues) {
  auto g = ParseNvidiaSmiDmon(
      "# gpu     sm    mem    enc    dec    jpg    ofa \n"
      "# Idx      %      %      %      %      %      % \n"
      "    0      -      -      -     20      0      0 \n");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].encoder, -1);  // "-": the driver does not expose it
  EXPECT_DOUBLE_EQ(g[0].decoder, 0.2);
}

TEST(ParseNvidiaSmiDmon, NothingFromErrorsOrRowsBeforeAHeader) {
  EXPECT_TRUE(ParseNvidiaSmiDmon("").empty());
  EXPECT_TRUE(ParseNvidiaSmiDmon("    0 1 2 3 4\n").empty());
  EXPECT_TRUE(ParseNvidiaSmiDmon("NVIDIA-SMI has failed because it couldn't communicate with the "
                                 "NVIDIA driver.\n")
                  .empty());
}

}  // namespace
}  // namespace reelfarm
