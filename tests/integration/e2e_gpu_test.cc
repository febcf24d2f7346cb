// GPU workers on a machine without a working GPU (docs/gpu.md): a worker
// that announces NVENC (--encoders, --gpu-slots) but cannot open it still
// delivers every deliverable, through the CPU, its host not blamed; the
// manifest names the encoder each file was made with; a deliverable for GPU
// slots only says that no worker can take it instead of waiting silently.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

const std::vector<std::string> kAnnounceNvenc = {
    "--encoders",
    "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le,dnxhd,mov_text,h264_nvenc,"
    "hevc_nvenc",
    "--gpu-slots", "1"};

void WriteSource(const std::string& dir) {
  ASSERT_EQ(RunArgv(LavfiArgv({"testsrc2=s=320x180:r=25:d=2", "sine=f=440:r=48000:d=2"},
                              {"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset",
                               "ultrafast", "-c:a", "aac", dir + "/film.mov"})),
            0);
}

std::string WriteSpec(const std::string& dir, const std::string& name,
                      const std::string& deliverables) {
  const std::string path = dir + "/" + name + ".yaml";
  std::ofstream(path) << "version: 1\nname: " << name << "\nsource: film.mov\noutput_dir: " << name
                      << "\ndeliverables:\n"
                      << deliverables;
  return path;
}

nlohmann::json Worker(LocalFarm& farm) {
  nlohmann::json workers = farm.Get("/api/v1/workers")["workers"];
  return workers.is_array() && workers.size() == 1 ? workers[0] : nlohmann::json();
}

TEST(E2eGpu, AWorkerWhoseNvencCannotOpenDeliversEverythingOnTheCpu) {
  LocalFarmOptions options;
  options.workers = 1;
  options.worker_args[0] = kAnnounceNvenc;
  LocalFarm farm(options);
  ASSERT_TRUE(farm.Start().ok());
  WriteSource(farm.dir());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return Worker(farm).value("gpu_slots", 0) == 1; }, 30))
      << Worker(farm).dump(2);

  auto id = farm.Submit(WriteSpec(farm.dir(), "fallback",
                                  "  - {name: web, preset: web-h264, height: 180, loudness: none, "
                                  "qc: none}\n"
                                  "  - {name: hevc, preset: web-hevc, height: 180, loudness: none, "
                                  "qc: none}\n"
                                  "  - {name: square, preset: social-h264, aspect: \"1:1\", "
                                  "height: 180, loudness: none, qc: none}\n"
                                  "  - {name: poster, preset: thumbnail-jpg, at: 1}\n"));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        const std::string state = farm.Delivery(*id).value("state", "");
        return state == "delivered" || state == "failed";
      },
      120));
  nlohmann::json d = farm.Delivery(*id);
  ASSERT_EQ(d.value("state", ""), "delivered") << d.dump(2) << farm.LogTail("worker-0");

  // The first job went to the GPU slot, its encoder did not open, and it ran
  // again on the CPU; the worker's GPU slots are closed, nothing blamed it.
  nlohmann::json w = Worker(farm);
  EXPECT_TRUE(w.value("gpu_closed", false)) << w.dump(2);
  EXPECT_EQ(w.value("state", ""), "ready");
  EXPECT_EQ(w.value("jobs_failed", -1), 0);  // the GPU's trouble is not a failed job
  EXPECT_NE(farm.LogTail("coordinator").find("gpu_unavailable"), std::string::npos)
      << farm.LogTail("coordinator");

  // Every file made by the CPU encoder, and the manifest says which.
  std::ifstream in(farm.dir() + "/fallback/manifest.json");
  nlohmann::json manifest = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  std::map<std::string, std::string> encoder;
  for (const auto& item : manifest["deliverables"]) {
    EXPECT_EQ(item.value("status", ""), "delivered") << item.dump();
    EXPECT_FALSE(item.value("gpu", true)) << item.dump();
    EXPECT_EQ(item.value("attempts", 0), 1) << item.dump();  // the GPU's try not counted
    encoder[item.value("name", "")] = item.value("encoder", "");
  }
  EXPECT_EQ(encoder["web"], "libx264");
  EXPECT_EQ(encoder["hevc"], "libx265");
  EXPECT_EQ(encoder["square"], "libx264");
  EXPECT_EQ(encoder["poster"], "mjpeg");

  // `encoder: gpu` has no CPU path: with the only GPU closed it waits, and
  // says why.
  auto gpu_only = farm.Submit(WriteSpec(
      farm.dir(), "gpuonly",
      "  - {name: web, preset: web-h264, height: 180, encoder: gpu, loudness: none, qc: none}\n"));
  ASSERT_TRUE(gpu_only.ok()) << gpu_only.status().ToString();
  std::string why;
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        nlohmann::json g = farm.Delivery(*gpu_only);
        if (!g.is_object() || g["items"].size() != 1) return false;
        why = g["items"][0].value("waiting_for", "");
        return !why.empty();
      },
      30))
      << farm.Delivery(*gpu_only).dump(2);
  EXPECT_NE(why.find("a GPU slot with h264_nvenc"), std::string::npos) << why;
  EXPECT_EQ(farm.Delivery(*gpu_only)["items"][0].value("state", ""), "queued");
}

}  // namespace
}  // namespace reelfarm::testing
