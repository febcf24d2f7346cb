// Graceful drain (issue 16): SIGTERM puts a worker in `draining`; it takes
// no new work, finishes what it runs, and exits once that is acknowledged;
// past --drain-timeout it hands back what is left, which another worker
// then makes. The coordinator shows it draining and assigns it nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

// A spec with one deliverable that takes a few seconds to encode.
std::string WriteSpec(const std::string& dir) {
  EXPECT_EQ(RunArgv(LavfiArgv({"testsrc2=s=960x540:r=25:d=8", "sine=f=440:r=48000:d=8"},
                              {"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset",
                               "ultrafast", "-c:a", "aac", dir + "/film.mov"})),
            0);
  std::ofstream(dir + "/spec.yaml") << "version: 1\nname: drain\nsource: film.mov\n"
                                       "output_dir: out\ndeliverables:\n"
                                       "  - name: web\n    preset: web-h264\n"
                                       "    loudness: none\n    qc: none\n";
  return dir + "/spec.yaml";
}

std::string WorkerState(LocalFarm& farm, const std::string& name) {
  nlohmann::json workers = farm.Get("/api/v1/workers")["workers"];
  if (!workers.is_array()) return "";
  for (const auto& w : workers) {
    if (w.value("name", "") == name) return w.value("state", "");
  }
  return "";
}

// Waits until the delivery's only item runs; returns the delivery id.
std::string SubmitAndWaitRunning(LocalFarm& farm) {
  auto id = farm.Submit(WriteSpec(farm.dir()));
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  if (!id.ok()) return "";
  EXPECT_TRUE(LocalFarm::WaitFor(
      [&] {
        nlohmann::json d = farm.Delivery(*id);
        return d.is_object() && d["items"].size() == 1 &&
               d["items"][0].value("state", "") == "running";
      },
      60));
  return *id;
}

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

// One worker, draining for at most `drain_timeout` seconds.
LocalFarmOptions OneWorker(const std::string& drain_timeout) {
  LocalFarmOptions options;
  options.workers = 1;
  options.worker_args[0] = {"--drain-timeout", drain_timeout};
  return options;
}

// The delivery ends delivered, its job after `attempts` attempts.
void ExpectDelivered(LocalFarm& farm, const std::string& id, int attempts) {
  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return farm.Delivery(id).value("state", "") == "delivered"; }, 120))
      << farm.Delivery(id).dump(2);
  EXPECT_EQ(farm.Delivery(id)["items"][0].value("attempts", 0), attempts);
}

// What a draining worker does: its encode goes on to the end (delivered by
// the first attempt), then it leaves by itself.
void ExpectFinishedThenLeft(LocalFarm& farm, const std::string& id) {
  ExpectDelivered(farm, id, 1);
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return farm.Exited("worker-0"); }, 30));
  EXPECT_NE(farm.LogTail("worker-0").find("drained"), std::string::npos)
      << farm.LogTail("worker-0");
}

TEST(E2eDrain, SigtermFinishesWhatRunsTakesNothingNewAndExits) {
  LocalFarm farm(OneWorker("60"));
  ASSERT_TRUE(farm.Start().ok());
  const std::string id = SubmitAndWaitRunning(farm);
  ASSERT_FALSE(id.empty());

  ASSERT_EQ(::kill(farm.pid("worker-0"), SIGTERM), 0);
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return WorkerState(farm, "local-0") == "draining"; }, 10));
  ExpectFinishedThenLeft(farm, id);
}

TEST(E2eDrain, PastTheDrainTimeoutWhatIsLeftIsHandedBackAndMadeElsewhere) {
  LocalFarm farm(OneWorker("0.2"));
  ASSERT_TRUE(farm.Start().ok());
  const std::string id = SubmitAndWaitRunning(farm);
  ASSERT_FALSE(id.empty());

  ASSERT_EQ(::kill(farm.pid("worker-0"), SIGTERM), 0);
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return farm.Exited("worker-0"); }, 30));
  EXPECT_NE(farm.LogTail("worker-0").find("drain timeout: handing back 1 attempt"),
            std::string::npos)
      << farm.LogTail("worker-0");
  // Another worker makes it: a second attempt, not a failure.
  ASSERT_TRUE(farm.StartWorker(1).ok());
  ExpectDelivered(farm, id, 2);
}

TEST(E2eDrain, ADrainAskedThroughTheApiEndsTheWorkerTheSameWay) {
  LocalFarm farm(OneWorker("60"));
  ASSERT_TRUE(farm.Start().ok());
  const std::string id = SubmitAndWaitRunning(farm);
  ASSERT_FALSE(id.empty());

  // `reelfarm workers drain local-0`, the CLI over the API.
  std::string out;
  ASSERT_EQ(
      RunArgv({kReelfarm, "--coordinator", farm.api_url(), "workers", "drain", "local-0"}, &out), 0)
      << out;
  EXPECT_NE(out.find("Draining local-0"), std::string::npos) << out;
  EXPECT_EQ(WorkerState(farm, "local-0"), "draining") << "at once";
  ExpectFinishedThenLeft(farm, id);
  // An unknown worker is a clear error.
  EXPECT_NE(
      RunArgv({kReelfarm, "--coordinator", farm.api_url(), "workers", "drain", "nobody"}, &out), 0);
}

}  // namespace
}  // namespace reelfarm::testing
