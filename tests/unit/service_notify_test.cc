// The service manager notifications' pure core: what is sent, and how often
// the watchdog is pinged.
#include "common/service_notify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reelfarm {
namespace {

using ::testing::ElementsAre;

TEST(ServiceNotifierTest, ReadyAndStoppingCarryAOneLineStatus) {
  FakeClock clock;
  std::vector<std::string> sent;
  ServiceNotifier n([&](const std::string& s) { sent.push_back(s); }, std::chrono::seconds(0),
                    &clock);
  n.Ready("coordinator: workers on tcp://0.0.0.0:8471");
  n.Status("two\nlines");
  n.Stopping("coordinator stopping");
  EXPECT_THAT(sent, ElementsAre("READY=1\nSTATUS=coordinator: workers on tcp://0.0.0.0:8471",
                                "STATUS=two lines", "STOPPING=1\nSTATUS=coordinator stopping"));
}

TEST(ServiceNotifierTest, TheWatchdogIsPingedEveryHalfIntervalFromTheLoop) {
  FakeClock clock;
  std::vector<std::string> sent;
  ServiceNotifier n([&](const std::string& s) { sent.push_back(s); }, std::chrono::seconds(2),
                    &clock);
  n.Alive();  // the first turn pings at once
  clock.Advance(std::chrono::milliseconds(999));
  n.Alive();  // a busy loop does not flood the manager
  EXPECT_EQ(sent.size(), 1u);
  clock.Advance(std::chrono::milliseconds(1));
  n.Alive();
  EXPECT_THAT(sent, ElementsAre("WATCHDOG=1", "WATCHDOG=1"));
}

TEST(ServiceNotifierTest, WithoutAWatchdogAliveSendsNothing) {
  FakeClock clock;
  int sent = 0;
  ServiceNotifier n([&](const std::string&) { ++sent; }, std::chrono::microseconds(0), &clock);
  for (int i = 0; i < 3; ++i) {
    n.Alive();
    clock.Advance(std::chrono::seconds(10));
  }
  EXPECT_EQ(sent, 0);
}

}  // namespace
}  // namespace reelfarm
