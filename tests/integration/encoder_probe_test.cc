// ProbeEncoders with the real FFmpeg of this machine.
#include "worker/encoder_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/process_runner.h"

namespace reelfarm {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::IsSupersetOf;
using ::testing::Not;

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// No NVIDIA device node: NVENC and CUDA cannot work here.
bool MachineHasNoNvidiaGpu() { return !std::filesystem::exists("/dev/nvidia0"); }

TEST(EncoderProbeTest, Candidates) {
  EXPECT_THAT(CandidateEncoders(),
              ElementsAre("libx264", "libx265", "prores_ks", "dnxhd", "mjpeg", "aac", "pcm_s24le",
                          "mov_text", "h264_nvenc", "hevc_nvenc", "av1_nvenc"));
}

// docs/gpu.md: one FFmpeg opens N sessions of a GPU encoder at once.
TEST(EncoderProbeTest, GpuSessionTestOpensThatManySessionsInOneProcess) {
  std::vector<std::string> argv = GpuSessionTestArgv("ffmpeg", "h264_nvenc", 3);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "h264_nvenc"), 3);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-i"), 1);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "null"), 3);
  EXPECT_THAT(argv, Contains("-nostdin"));
}

TEST(EncoderProbeTest, NvdecCodecsAreTheCuvidDecodersListed) {
  const std::string listing =
      "Decoders:\n V..... = Video\n ------\n V....D h264                 H.264\n"
      " V..... h264_cuvid           Nvidia CUVID H264 decoder (codec h264)\n"
      " V..... hevc_cuvid           Nvidia CUVID HEVC decoder (codec hevc)\n"
      " A....D aac                  AAC\n";
  EXPECT_THAT(CuvidCodecs(listing), ElementsAre("h264", "hevc"));
  EXPECT_TRUE(CuvidCodecs("").empty());
}

// This machine's FFmpeg lists NVENC but has no GPU: no GPU slots.
TEST(EncoderProbeTest, NoNvencOpensHereSoNoGpuSlots) {
  PosixProcessRunner runner;
  EncoderProbeResult r = ProbeEncoders(runner, "ffmpeg", 4);
  if (std::find(r.encoders.begin(), r.encoders.end(), "h264_nvenc") != r.encoders.end()) {
    GTEST_SKIP() << "this machine has NVENC";
  }
  EXPECT_EQ(r.gpu_sessions, 0);
}

TEST(EncoderProbeTest, TestArgvOpensTheEncoderOnATinyInput) {
  std::vector<std::string> prores = EncoderTestArgv("/usr/bin/ffmpeg", "prores_ks");
  EXPECT_EQ(prores.front(), "/usr/bin/ffmpeg");
  EXPECT_THAT(prores, Contains("-nostdin"));
  EXPECT_THAT(prores, Contains("yuv422p10le"));
  EXPECT_THAT(prores, Contains("prores_ks"));
  EXPECT_EQ(std::vector<std::string>(prores.end() - 3, prores.end()),
            (std::vector<std::string>{"-f", "null", "-"}));

  std::vector<std::string> dnx = EncoderTestArgv("ffmpeg", "dnxhd");
  EXPECT_THAT(dnx, Contains("dnxhr_hq"));
  EXPECT_THAT(dnx, Contains("yuv422p"));

  std::vector<std::string> aac = EncoderTestArgv("ffmpeg", "aac");
  EXPECT_THAT(aac, Contains("-c:a"));
  EXPECT_THAT(aac, Not(Contains("-c:v")));
}

TEST(EncoderProbeTest, FindsWhatOpensHere) {
  PosixProcessRunner runner;
  EncoderProbeResult r = ProbeEncoders(runner, "ffmpeg");
  EXPECT_THAT(r.encoders, IsSupersetOf({"libx264", "libx265", "prores_ks", "dnxhd", "mjpeg", "aac",
                                        "pcm_s24le", "mov_text"}));
  EXPECT_TRUE(std::is_sorted(r.encoders.begin(), r.encoders.end()));
  EXPECT_TRUE(std::is_sorted(r.failed.begin(), r.failed.end()));
  // Every candidate is either working or failed, never both.
  for (const auto& e : CandidateEncoders()) {
    EXPECT_NE(Has(r.encoders, e), Has(r.failed, e)) << e;
  }
  if (MachineHasNoNvidiaGpu()) {
    // FFmpeg lists NVENC, but it cannot open without the hardware.
    EXPECT_THAT(r.failed, IsSupersetOf({"h264_nvenc", "hevc_nvenc"}));
    EXPECT_FALSE(r.gpu);
    EXPECT_THAT(r.gpu_names, IsEmpty());
  }
}

TEST(EncoderProbeTest, MissingFfmpegOpensNothing) {
  PosixProcessRunner runner;
  EncoderProbeResult r = ProbeEncoders(runner, "/nonexistent/ffmpeg");
  EXPECT_THAT(r.encoders, IsEmpty());
  EXPECT_EQ(r.failed.size(), CandidateEncoders().size());
  EXPECT_FALSE(r.gpu);
}

}  // namespace
}  // namespace reelfarm
