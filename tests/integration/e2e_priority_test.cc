// Producers' finer control (issue 14): a delivery's priority changed while
// it waits (kept across a coordinator restart, refused clearly when out of
// range or unknown); one deliverable cancelled, then run again.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

TEST(E2ePriority, AQueuedDeliveryGetsANewPriorityThatSurvivesARestart) {
  LocalFarmOptions options;
  options.workers = 0;  // nothing runs: the delivery stays queued
  LocalFarm farm(options);
  ASSERT_TRUE(farm.Start().ok());
  GenerateSource(SourceKind::kPlain, farm.dir() + "/film.mov", 1.0);
  std::ofstream(farm.dir() + "/spec.yaml")
      << "version: 1\nname: prio\nsource: film.mov\noutput_dir: out\ndeliverables:\n"
         "  - name: web\n    preset: web-h264\n";
  auto id = farm.Submit(farm.dir() + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const std::string cli = std::string(REELFARM_BIN_DIR) + "/reelfarm";

  std::string out;
  ASSERT_EQ(RunArgv({cli, "--coordinator", farm.api_url(), "priority", *id, "80"}, &out), 0) << out;
  EXPECT_NE(out.find("now has priority 80"), std::string::npos) << out;
  EXPECT_EQ(farm.Delivery(*id).value("priority", 0), 80);
  // Out of range (the CLI's check) and unknown (the API's 404): errors.
  EXPECT_NE(RunArgv({cli, "--coordinator", farm.api_url(), "priority", *id, "101"}, &out), 0);
  EXPECT_NE(RunArgv({cli, "--coordinator", farm.api_url(), "priority", "nope-1", "10"}, &out), 0);

  // Stored: a restarted coordinator has it.
  farm.Signal("coordinator", SIGTERM);
  ASSERT_TRUE(farm.StartCoordinator().ok());
  EXPECT_EQ(farm.Delivery(*id).value("priority", 0), 80);
}

TEST(E2ePriority, OneDeliverableIsCancelledAndLaterRunAgainAlone) {
  LocalFarmOptions options;
  options.workers = 0;  // queued until a worker comes
  LocalFarm farm(options);
  ASSERT_TRUE(farm.Start().ok());
  GenerateSource(SourceKind::kPlain, farm.dir() + "/film.mov", 1.0);
  // web and square share a decode (one group job); the poster is alone.
  std::ofstream(farm.dir() + "/spec.yaml")
      << "version: 1\nname: ctl\nsource: film.mov\noutput_dir: out\ndeliverables:\n"
         "  - name: web\n    preset: web-h264\n    height: 144\n"
         "  - name: square\n    preset: social-h264\n    aspect: \"1:1\"\n    height: 144\n"
         "  - name: poster\n    preset: thumbnail-jpg\n";
  auto id = farm.Submit(farm.dir() + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const std::string cli = std::string(REELFARM_BIN_DIR) + "/reelfarm";
  std::string out;
  ASSERT_EQ(RunArgv({cli, "--coordinator", farm.api_url(), "cancel", *id, "square"}, &out), 0)
      << out;
  EXPECT_NE(RunArgv({cli, "--coordinator", farm.api_url(), "cancel", *id, "nope"}, &out), 0);

  ASSERT_TRUE(farm.StartWorker(0).ok());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 60));
  nlohmann::json d = farm.Delivery(*id);
  EXPECT_EQ(d.value("delivered", 0), 2) << d.dump(2);
  EXPECT_EQ(d.value("cancelled", 0), 1) << d.dump(2);
  for (const auto& item : d["items"]) {
    EXPECT_EQ(item.value("state", ""), item["name"] == "square" ? "cancelled" : "delivered");
  }

  // Run again: the cancelled one alone; the delivered ones are not touched.
  ASSERT_EQ(RunArgv({cli, "--coordinator", farm.api_url(), "retry", *id, "square"}, &out), 0)
      << out;
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 60));
  d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered") << d.dump(2);
  for (const auto& item : d["items"]) EXPECT_EQ(item.value("attempts", 0), 1) << item.dump();
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
  // Its manifest is written again, the same version.
  const nlohmann::json manifest =
      nlohmann::json::parse(ReadFileBytes(farm.dir() + "/out/manifest.json"), nullptr, false);
  EXPECT_EQ(manifest.value("state", ""), "delivered") << manifest.dump(2);
  EXPECT_EQ(manifest.value("version", 0), 1);
  // Nothing left to run again: refused (409).
  EXPECT_NE(RunArgv({cli, "--coordinator", farm.api_url(), "retry", *id}, &out), 0);
}

}  // namespace
}  // namespace reelfarm::testing
