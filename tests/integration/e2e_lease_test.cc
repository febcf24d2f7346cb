// One active coordinator (issue 16): a second coordinator against the same
// Redis waits as standby, takes over within 5 s of the first being
// SIGKILLed (workers follow it through their list of endpoints), and a
// coordinator paused past its lease and resumed cannot write.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/embedded_farm.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

struct Reply {
  int status = 0;  // 0: no answer
  nlohmann::json body;
};

Reply Http(int port, const std::string& method, const std::string& path,
           const std::string& body = "") {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(10);
  auto r = method == "GET" ? client.Get(path) : client.Post(path, body, "application/json");
  if (!r) return {};
  return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
}

std::string Role(int port) {
  Reply r = Http(port, "GET", "/healthz");
  return r.body.is_object() ? r.body.value("role", "") : "";
}

class E2eLease : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalFarmOptions options;
    options.workers = 0;
    farm_ = std::make_unique<LocalFarm>(options);
    ASSERT_TRUE(farm_->Start().ok());
    GenerateSource(SourceKind::kPlain, farm_->dir() + "/film.mov", 1.0);
  }

  // Another coordinator on ports of its own, against the farm's Redis.
  int StartCoordinator(const std::string& name) {
    auto ports = cli::PickFreePorts(2);
    EXPECT_TRUE(ports.ok());
    if (!ports.ok()) return 0;
    const int http = (*ports)[0];
    zmq_[name] = "tcp://127.0.0.1:" + std::to_string((*ports)[1]);
    EXPECT_TRUE(
        farm_
            ->Spawn(name, {std::string(REELFARM_BIN_DIR) + "/reelfarm-coordinator", "--redis",
                           "redis://127.0.0.1:" + std::to_string(farm_->redis_port()), "--bind",
                           zmq_[name], "--http", "127.0.0.1:" + std::to_string(http), "--metrics",
                           "", "--heartbeat-ms", "250", "--liveness", "3"})
            .ok());
    return http;
  }

  // Submits a one-poster spec named `name` through the API at `port`.
  Reply Submit(int port, const std::string& name) {
    const std::string spec = "version: 1\nname: " + name +
                             "\nsource: film.mov\noutput_dir: " + name +
                             "\ndeliverables:\n  - name: poster\n    preset: thumbnail-jpg\n";
    return Http(port, "POST", "/api/v1/deliveries",
                nlohmann::json{{"spec", spec}, {"base_dir", farm_->dir()}}.dump());
  }

  bool Delivered(int port, const std::string& id) {
    return LocalFarm::WaitFor(
        [&] {
          Reply r = Http(port, "GET", "/api/v1/deliveries/" + id);
          return r.body.is_object() && r.body.value("state", "") == "delivered";
        },
        60);
  }

  std::unique_ptr<LocalFarm> farm_;
  std::map<std::string, std::string> zmq_;
};

TEST_F(E2eLease, AStandbyTakesOverAndAPausedCoordinatorCannotWrite) {
  const int a = farm_->http_port();
  EXPECT_EQ(Role(a), "active");
  const int b = StartCoordinator("coordinator-b");
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return Role(b) == "standby"; }, 15))
      << farm_->LogTail("coordinator-b");
  EXPECT_EQ(Http(b, "GET", "/healthz").status, 503);
  EXPECT_EQ(Http(b, "GET", "/api/v1/deliveries").status, 503) << "a standby answers nothing";

  // A worker that knows both.
  ASSERT_TRUE(
      farm_
          ->Spawn("worker-x", {std::string(REELFARM_BIN_DIR) + "/reelfarm-worker", "--coordinator",
                               farm_->zmq_endpoint() + "," + zmq_["coordinator-b"], "--name", "wx",
                               "--slots", "1", "--metrics", "", "--drain-timeout", "0"})
          .ok());
  Reply first = Submit(a, "first");
  ASSERT_EQ(first.status, 201) << first.body.dump();
  ASSERT_TRUE(Delivered(a, first.body.value("id", "")));

  // The active one dies: the standby takes over within 5 s.
  farm_->Signal("coordinator", SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return Role(b) == "active"; }, 15))
      << farm_->LogTail("coordinator-b");
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LT(took, 5.0);
  std::cout << "standby took over " << took << " s after the active coordinator was killed\n";
  // It has the farm (the first delivery) and the worker found it.
  EXPECT_EQ(Http(b, "GET", "/api/v1/deliveries/" + first.body.value("id", "")).status, 200);
  Reply second = Submit(b, "second");
  ASSERT_EQ(second.status, 201) << second.body.dump();
  ASSERT_TRUE(Delivered(b, second.body.value("id", ""))) << farm_->LogTail("worker-x");

  // Fencing: b paused past its lease, c takes over; b, resumed, cannot write.
  const int c = StartCoordinator("coordinator-c");
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return Role(c) == "standby"; }, 15));
  farm_->Signal("coordinator-b", SIGSTOP);
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return Role(c) == "active"; }, 15))
      << farm_->LogTail("coordinator-c");
  farm_->Signal("coordinator-b", SIGCONT);
  Reply stale = Submit(b, "stale");
  EXPECT_NE(stale.status, 201) << "a coordinator that lost its lease wrote: " << stale.body.dump();
  std::cout << "resumed coordinator answered " << stale.status << " " << stale.body.dump() << "\n";
  // Nothing of it reached Redis; it stops on its own.
  Reply list = Http(c, "GET", "/api/v1/deliveries");
  ASSERT_EQ(list.status, 200);
  for (const auto& d : list.body["deliveries"]) EXPECT_NE(d.value("name", ""), "stale");
  EXPECT_EQ(list.body["deliveries"].size(), 2u);
  EXPECT_TRUE(LocalFarm::WaitFor([&] { return farm_->Exited("coordinator-b"); }, 15))
      << farm_->LogTail("coordinator-b");
}

}  // namespace
}  // namespace reelfarm::testing
