// End to end through real processes: redis-server, reelfarm-coordinator and
// reelfarm-worker, real FFmpeg. A worker SIGKILLed mid-encode, a coordinator
// SIGKILLed and restarted mid-delivery or between persisting an assignment
// and sending it, and Redis connections dropped and stalled, still end in
// exactly one verified output per deliverable and no temporary files.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/redis_client.h"
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

int TotalAttempts(const nlohmann::json& delivery) {
  int n = 0;
  for (const auto& item : delivery["items"]) n += item.value("attempts", 0);
  return n;
}

bool AllWorkersConnected(LocalFarm& farm, size_t expected) {
  auto w = farm.Get("/api/v1/workers");
  if (!w.is_object()) return false;
  size_t connected = 0;
  for (const auto& x : w["workers"]) connected += x.value("connected", false) ? 1 : 0;
  return connected == expected;
}

TEST(E2eRecovery, CoordinatorKilledBetweenPersistingAnAssignmentAndSendingItIsReclaimed) {
  LocalFarmOptions opts;
  opts.workers = 2;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "640x360", 3);
  // Restart the coordinator with the fault hook: it dies right after Redis
  // has the first assignment and before any worker hears of it. The workers
  // are frozen meanwhile, so the submission is acknowledged before anything
  // can be assigned (and the hook fire).
  for (int i = 0; i < opts.workers; ++i) farm.Signal("worker-" + std::to_string(i), SIGSTOP);
  farm.Signal("coordinator", SIGKILL);
  ASSERT_TRUE(farm.StartCoordinator({"--fault-kill-before-sending-assignment", "1"}).ok());
  auto id = farm.Submit(WriteSpec(farm.dir()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  for (int i = 0; i < opts.workers; ++i) farm.Signal("worker-" + std::to_string(i), SIGCONT);
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return farm.Exited("coordinator"); }, 30))
      << "the fault hook did not fire";
  ASSERT_NE(farm.LogTail("coordinator").find("fault injection"), std::string::npos);

  // Redis holds an attempt that no worker ever heard of.
  RedisEndpoint endpoint;
  endpoint.port = farm.redis_port();
  RedisClient redis(endpoint);
  auto keys = redis.Command({"KEYS", "rf:j:*"});
  ASSERT_TRUE(keys.ok());
  std::set<std::string> claimed;
  for (const auto& k : keys->elements) {
    auto state = redis.Command({"HGET", k.str, "state"});
    if (state.ok() && state->str == "running") claimed.insert(k.str.substr(5));
  }
  ASSERT_FALSE(claimed.empty()) << "no persisted assignment";

  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 180))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  ExpectDeliveredExactlyOnce(farm.dir() + "/out", d);
  for (const auto& item : d["items"]) {
    // A decode-once group lists one item per output: report it once.
    if (claimed.erase(item.value("job", "")) == 0) continue;
    std::cout << "[ figures ] job " << item.value("job", "")
              << " persisted as running, never sent; reclaimed "
              << "and delivered on attempt " << item.value("attempts", 0) << "\n";
    EXPECT_EQ(item.value("attempts", 0), 2) << "the unsent attempt counts, then one real one";
  }
}

TEST(E2eRecovery, RedisConnectionsDroppedAndRedisStalledTenSecondsLoseAndDoubleNothing) {
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

  // Every client connection dropped: the coordinator reconnects on its next
  // command.
  RedisEndpoint endpoint;
  endpoint.port = farm.redis_port();
  RedisClient admin(endpoint);
  auto killed = admin.Command({"CLIENT", "KILL", "TYPE", "normal"});
  ASSERT_TRUE(killed.ok());
  EXPECT_GE(killed->integer, 1) << "the coordinator had no connection to drop";

  // Then Redis stalls (SIGSTOP): connections stay open, commands hang. The
  // stall itself is the fault and lasts 10 s by design.
  farm.Signal("redis", SIGSTOP);
  auto stalled_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(10));
  farm.Signal("redis", SIGCONT);
  double stalled_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stalled_at).count();

  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 180))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  ExpectDeliveredExactlyOnce(farm.dir() + "/out", d);
  // Both workers are back in touch with the coordinator.
  EXPECT_TRUE(LocalFarm::WaitFor([&] { return AllWorkersConnected(farm, 2); }, 30))
      << farm.Get("/api/v1/workers").dump(2);
  std::cout << "[ figures ] connections dropped: " << killed->integer << ", Redis stalled "
            << stalled_s << " s mid-delivery; deliverables: " << d["items"].size()
            << ", attempts: " << TotalAttempts(d) << ", lost 0, duplicated 0\n";
}

}  // namespace
}  // namespace reelfarm::testing
