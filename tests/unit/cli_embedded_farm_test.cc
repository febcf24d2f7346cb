// The pure pieces of `reelfarm run`'s process management. Starting a whole
// farm is the integration tests' job (tests/integration/e2e_*).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "cli/embedded_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::cli {
namespace {

namespace fs = std::filesystem;

FarmPorts Ports() {
  FarmPorts p;
  p.redis = 7001;
  p.zmq = 7002;
  p.http = 7003;
  p.metrics = 7004;
  p.worker_metrics = {7005, 7006};
  return p;
}

TEST(EmbeddedFarmArgvTest, Redis) {
  EXPECT_EQ(RedisArgv("redis-server", 7001, "/tmp/s"),
            (std::vector<std::string>{"redis-server", "--bind", "127.0.0.1", "--port", "7001",
                                      "--dir", "/tmp/s", "--appendonly", "yes", "--appendfsync",
                                      "always", "--save", "", "--daemonize", "no"}));
}

TEST(EmbeddedFarmArgvTest, CoordinatorOnLoopback) {
  EXPECT_EQ(CoordinatorArgv("/b/reelfarm-coordinator", Ports()),
            (std::vector<std::string>{"/b/reelfarm-coordinator", "--redis",
                                      "redis://127.0.0.1:7001", "--bind", "tcp://127.0.0.1:7002",
                                      "--http", "127.0.0.1:7003", "--metrics", "127.0.0.1:7004"}));
}

TEST(EmbeddedFarmArgvTest, WorkersAreNamedAndGetTheirOwnMetricsPort) {
  EXPECT_EQ(WorkerArgv("reelfarm-worker", Ports(), 1, {8, 3}),
            (std::vector<std::string>{"reelfarm-worker", "--coordinator", "tcp://127.0.0.1:7002",
                                      "--cores", "8", "--name", "local-2", "--drain-timeout", "0",
                                      "--slots", "3", "--metrics", "127.0.0.1:7006"}));
  // Slots 0: the worker's own default (one per 4 of its cores). A private
  // farm's workers stop at once (no drain).
  EXPECT_EQ(WorkerArgv("reelfarm-worker", Ports(), 0, {2, 0}),
            (std::vector<std::string>{"reelfarm-worker", "--coordinator", "tcp://127.0.0.1:7002",
                                      "--cores", "2", "--name", "local-1", "--drain-timeout", "0",
                                      "--metrics", "127.0.0.1:7005"}));
}

class EmbeddedFarmFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("reelfarm-farm"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(EmbeddedFarmFilesTest, DaemonPathPrefersAnExecutableNextToUs) {
  EXPECT_EQ(DaemonPath("", "reelfarm-worker"), "reelfarm-worker");
  EXPECT_EQ(DaemonPath(dir_, "reelfarm-worker"), "reelfarm-worker");  // not there: PATH
  std::string plain = dir_ + "/reelfarm-worker";
  std::ofstream(plain) << "#!/bin/sh\n";
  EXPECT_EQ(DaemonPath(dir_, "reelfarm-worker"), "reelfarm-worker");  // not executable
  chmod(plain.c_str(), 0755);
  EXPECT_EQ(DaemonPath(dir_, "reelfarm-worker"), plain);
  fs::create_directory(dir_ + "/reelfarm-coordinator");  // a folder is not a binary
  EXPECT_EQ(DaemonPath(dir_, "reelfarm-coordinator"), "reelfarm-coordinator");
}

TEST_F(EmbeddedFarmFilesTest, SelfBinDirIsThisTestsFolder) {
  std::string dir = SelfBinDir();
  ASSERT_FALSE(dir.empty());
  EXPECT_TRUE(fs::is_directory(dir));
}

TEST_F(EmbeddedFarmFilesTest, TailOfFileStartsAtALine) {
  std::string path = dir_ + "/log";
  EXPECT_EQ(TailOfFile(path), "");  // missing
  {
    std::ofstream out(path);
    for (int i = 0; i < 100; ++i) out << "line " << i << "\n";
  }
  std::string tail = TailOfFile(path, 30);
  EXPECT_LE(tail.size(), 30u);
  EXPECT_EQ(tail.substr(0, 5), "line ") << tail;
  EXPECT_EQ(tail.substr(tail.size() - 8), "line 99\n");
  std::string whole = TailOfFile(path, 100000);
  EXPECT_EQ(whole.substr(0, 7), "line 0\n");
}

TEST(PickFreePortsTest, DistinctBindablePorts) {
  StatusOr<std::vector<int>> ports = PickFreePorts(6);
  ASSERT_TRUE(ports.ok()) << ports.status().ToString();
  ASSERT_EQ(ports->size(), 6u);
  std::set<int> distinct(ports->begin(), ports->end());
  EXPECT_EQ(distinct.size(), 6u);
  for (int p : *ports) {
    EXPECT_GT(p, 0);
    EXPECT_LT(p, 65536);
  }
}

TEST_F(EmbeddedFarmFilesTest, StartFailsClearlyWhenRedisCannotBeStarted) {
  EmbeddedFarmOptions options;
  options.redis_server = dir_ + "/no-such-redis-server";
  options.tmp_dir = dir_;
  options.workers = 1;
  std::string state;
  {
    EmbeddedFarm farm(options);
    Status s = farm.Start();
    EXPECT_EQ(s.code(), Status::Code::kUnavailable);
    EXPECT_NE(s.message().find("no-such-redis-server"), std::string::npos) << s.message();
    state = farm.state_dir();
    EXPECT_TRUE(fs::is_directory(state));
  }
  EXPECT_FALSE(fs::exists(state)) << "Stop (in the destructor) removes the state folder";
}

TEST_F(EmbeddedFarmFilesTest, ADeadChildIsReportedWithItsLog) {
  // A "redis-server" that prints and exits at once stands in for a crash.
  std::string fake = dir_ + "/fake-redis";
  std::ofstream(fake) << "#!/bin/sh\necho 'fatal: cannot open the AOF file' >&2\nexit 3\n";
  chmod(fake.c_str(), 0755);
  EmbeddedFarmOptions options;
  options.redis_server = fake;
  options.tmp_dir = dir_;
  options.keep_state = true;
  EmbeddedFarm farm(options);
  Status s = farm.Start();
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
  EXPECT_NE(s.message().find("the redis-server"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("exit code 3"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fatal: cannot open the AOF file"), std::string::npos) << s.message();
  farm.Stop();
  EXPECT_TRUE(fs::exists(farm.state_dir() + "/redis.log")) << "keep_state keeps the logs";
}

}  // namespace
}  // namespace reelfarm::cli
