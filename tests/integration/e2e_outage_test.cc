// Issue 12, items 6-7: outages of Redis and of the coordinator delay work;
// they neither use up attempts of jobs that never started nor throw away
// results a worker already has.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/redis_client.h"
#include "coordinator/job_store.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

std::string WriteSpec(const std::string& dir) {
  std::string spec = dir + "/spec.yaml";
  std::ofstream(spec) << "version: 1\nname: outage\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n  - {name: web, preset: web-h264, height: 120}\n"
                         "  - {name: poster, preset: thumbnail-jpg}\n";
  return spec;
}

int MaxAttempts(const nlohmann::json& d) {
  int most = 0;
  for (const auto& item : d["items"]) most = std::max(most, item.value("attempts", 0));
  return most;
}

TEST(E2eOutage, RedisRefusingWritesDelaysQueuedWorkWithoutUsingAttempts) {
  LocalFarmOptions opts;
  opts.workers = 1;  // started by hand, during the outage
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 2);
  auto id = farm.Submit(WriteSpec(farm.dir()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  // Redis refuses every write (as when it is out of memory, or a replica
  // is missing), then a worker arrives and the queued work could start.
  ASSERT_TRUE(farm.RedisConfigSet("min-replicas-to-write", "1").ok());
  ASSERT_TRUE(farm.StartWorker(0).ok());
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] { return farm.LogTail("coordinator").find("cannot persist") != std::string::npos; }, 30))
      << farm.LogTail("coordinator");
  // The outage lasts five expiries (0.75 s each here): before the fix every
  // job had used its 3 attempts on assignments that were never sent and
  // failed "gave up after 3 attempts" within three of them.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3750);
  int most_attempts = 0;
  std::string states;
  while (std::chrono::steady_clock::now() < until) {
    auto d = farm.Delivery(*id);
    most_attempts = std::max(most_attempts, MaxAttempts(d));
    for (const auto& item : d["items"]) {
      ASSERT_NE(item.value("state", ""), "failed") << item.dump();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(most_attempts, 0) << "nothing was sent, nothing counted";

  ASSERT_TRUE(farm.RedisConfigSet("min-replicas-to-write", "0").ok());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 120))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered") << d.dump(2);
  EXPECT_EQ(MaxAttempts(d), 1);
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
}

TEST(E2eOutage, AResultFinishedAcrossACoordinatorRestartIsKeptNotRunAgain) {
  LocalFarmOptions opts;
  opts.workers = 1;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  // The coordinator dies on receiving the first result, before recording
  // it: Redis still says the job runs; the worker has published its output
  // and holds the unacknowledged result.
  ASSERT_TRUE(farm.StartCoordinator({"--fault-kill-on-result", "1"}).ok());
  ASSERT_TRUE(farm.StartWorker(0).ok());
  MakeTestSource(farm.dir(), "320x180", 2);
  std::string spec = farm.dir() + "/spec.yaml";
  // One job, the deliverable's own (no analyse job of the source before it).
  std::ofstream(spec) << "version: 1\nname: restart\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n  - {name: web, preset: web-h264, height: 120, "
                         "loudness: none, qc: none}\n";
  auto id = farm.Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return farm.Exited("coordinator"); }, 60))
      << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  ASSERT_TRUE(fs::exists(farm.dir() + "/out/web.mp4")) << "published before the result was sent";

  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 60))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered");
  EXPECT_EQ(d["items"][0].value("attempts", 0), 1)
      << "the finished result was accepted, not thrown away and run again";
  std::stringstream log;
  log << std::ifstream(farm.dir() + "/worker-0.log").rdbuf();
  size_t runs = 0;
  for (size_t at = log.str().find("running restart-"); at != std::string::npos;
       at = log.str().find("running restart-", at + 1)) {
    ++runs;
  }
  EXPECT_EQ(runs, 1u) << log.str();
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
}

TEST(E2eOutage, RedisLosingItsDataIsDetectedAndDeliveryIdsAreNotReused) {
  LocalFarmOptions opts;
  opts.workers = 0;  // the deliveries wait in the queue
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 2);
  auto spec_into = [&](const std::string& out) {
    std::string spec = farm.dir() + "/spec-" + out + ".yaml";
    std::ofstream(spec) << "version: 1\nname: epoch\nsource: source.mov\noutput_dir: " << out
                        << "\ndeliverables:\n  - {name: poster, preset: thumbnail-jpg}\n";
    return spec;
  };
  auto first = farm.Submit(spec_into("out1"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(farm.Get("/healthz").value("ok", false), true);

  // Redis loses everything (a restart without persistence, a failover to
  // an empty replica): its sequence starts again at 1.
  RedisEndpoint ep;
  ep.port = farm.redis_port();
  RedisClient admin(ep);
  ASSERT_TRUE(admin.Command({"FLUSHALL"}).ok());

  // The coordinator reserves ids 64 at a time: the 65th submission after
  // the loss takes a new block from Redis' restarted sequence (1..64).
  std::set<std::string> ids = {*first};
  std::string second;
  for (int i = 2; i <= 66; ++i) {
    auto id = farm.Submit(spec_into("out" + std::to_string(i)));
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_TRUE(ids.insert(*id).second) << *id << " was handed out again";
    second = *id;
  }
  EXPECT_EQ(farm.Delivery(*first).value("output_dir", ""), farm.dir() + "/out1")
      << "the earlier delivery is not overwritten";
  // Said in the log, /healthz and the metrics.
  auto health = farm.Get("/healthz");
  EXPECT_EQ(health.value("ok", true), false) << health.dump();
  EXPECT_NE(health.value("error", "").find("redis lost its data"), std::string::npos);
  std::stringstream log;
  log << std::ifstream(farm.dir() + "/coordinator.log").rdbuf();
  EXPECT_NE(log.str().find("redis lost its data"), std::string::npos);
  std::string metrics;
  RunArgv({"curl", "-s", "http://127.0.0.1:" + std::to_string(farm.metrics_port()) + "/metrics"},
          &metrics);
  EXPECT_NE(metrics.find("\nreelfarm_redis_data_lost 1"), std::string::npos);

  // Redis itself refuses to store a delivery over an existing id.
  JobStore store(&admin);
  DeliveryRecord d;
  d.id = second;
  d.name = "epoch";
  Status again = store.SaveNewDelivery(d, {});
  EXPECT_EQ(again.code(), Status::Code::kFailedPrecondition) << again.ToString();
}

}  // namespace
}  // namespace reelfarm::testing
