// A delivery's priority changed while it waits (issue 14's finer control):
// `reelfarm priority ID N` through the API, kept across a coordinator
// restart, refused clearly when out of range or unknown.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

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

}  // namespace
}  // namespace reelfarm::testing
