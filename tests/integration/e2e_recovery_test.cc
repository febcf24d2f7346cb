// End to end through real processes: redis-server, reelfarm-coordinator and
// reelfarm-worker, real FFmpeg. A worker SIGKILLed mid-encode, and a
// coordinator SIGKILLed and restarted mid-delivery, still end in exactly one
// verified output per deliverable and no temporary files.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

std::string WriteSpec(const std::string& dir) {
  std::string spec = dir + "/spec.yaml";
  std::ofstream(spec) << "version: 1\n"
                         "name: recovery\n"
                         "source: source.mov\n"
                         "output_dir: out\n"
                         "deliverables:\n"
                         "  - name: hevc\n"
                         "    preset: web-hevc\n"
                         "  - name: web\n"
                         "    preset: web-h264\n"
                         "    height: 360\n"
                         "  - name: square\n"
                         "    preset: social-h264\n"
                         "    aspect: \"1:1\"\n"
                         "    height: 360\n"
                         "  - name: poster\n"
                         "    preset: thumbnail-jpg\n";
  return spec;
}

// Every deliverable delivered, each exactly once, checksums matching.
void ExpectDeliveredExactlyOnce(const std::string& out_dir, const nlohmann::json& delivery) {
  ASSERT_EQ(delivery.value("state", ""), "delivered") << delivery.dump(2);
  for (const auto& item : delivery["items"]) {
    EXPECT_EQ(item.value("state", ""), "delivered") << item.dump();
  }
  std::ifstream in(out_dir + "/manifest.json");
  nlohmann::json manifest = nlohmann::json::parse(in);
  ASSERT_EQ(manifest["deliverables"].size(), delivery["items"].size());
  for (const auto& d : manifest["deliverables"]) EXPECT_EQ(d.value("status", ""), "delivered");
  ExpectPublishedExactlyOnce(out_dir, delivery);
}

TEST(E2eRecovery, WorkerKilledMidEncodeStillDeliversEverythingExactlyOnce) {
  LocalFarmOptions opts;
  opts.workers = 2;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "1280x720", 6);
  auto id = farm.Submit(WriteSpec(farm.dir()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  // Wait for an encode that has really started, then kill its worker.
  std::string victim_job, victim_worker;
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        if (!d.is_object()) return false;
        for (const auto& item : d["items"]) {
          if (item.value("state", "") == "running" && item.value("progress", 0.0) > 0.0 &&
              item.value("preset", "") == "web-hevc") {
            victim_job = item.value("job", "");
            victim_worker = item.value("worker", "");
            return true;
          }
        }
        return false;
      },
      60))
      << farm.Delivery(*id).dump(2);
  farm.Signal(LocalFarm::ProcessOfWorker(victim_worker), SIGKILL);

  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 180))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  ExpectDeliveredExactlyOnce(farm.dir() + "/out", d);
  for (const auto& item : d["items"]) {
    if (item.value("job", "") == victim_job) {
      EXPECT_GE(item.value("attempts", 0), 2);
      EXPECT_NE(item.value("worker", ""), victim_worker);
    }
  }
}

TEST(E2eRecovery, CoordinatorKilledAndRestartedMidDeliveryCompletes) {
  LocalFarmOptions opts;
  opts.workers = 2;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "1280x720", 6);
  auto id = farm.Submit(WriteSpec(farm.dir()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        return d.is_object() && d.value("running", 0) > 0;
      },
      60));
  farm.Signal("coordinator", SIGKILL);
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  // The restarted coordinator knows the delivery from Redis alone.
  auto reloaded = farm.Delivery(*id);
  ASSERT_TRUE(reloaded.is_object());
  EXPECT_EQ(reloaded.value("id", ""), *id);

  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 180))
      << farm.LogTail("coordinator");
  ExpectDeliveredExactlyOnce(farm.dir() + "/out", farm.Delivery(*id));
}

}  // namespace
}  // namespace reelfarm::testing
