// ProbeCache: a source is probed again exactly when its identity changed.
#include "common/probe_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/fake_probe_runner.h"

namespace reelfarm {
namespace {

using testing::FakeProbeRunner;

class ProbeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("reelfarm-probe-cache-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    WriteSource(source(), "first bytes of a movie");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string source() const { return (dir_ / "master.mov").string(); }
  static void WriteSource(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  StatusOr<pb::SourceFacts> Probe(const std::string& path) {
    return cache_.Probe(runner_, "ffprobe", path);
  }

  std::filesystem::path dir_;
  FakeProbeRunner runner_;
  ProbeCache cache_{2};
};

TEST_F(ProbeCacheTest, AnUnchangedSourceIsProbedOnce) {
  auto first = Probe(source());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = Probe(source());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(runner_.runs, 1);
  EXPECT_EQ(second->width(), 320);
  EXPECT_EQ(second->path(), source());
  EXPECT_EQ(cache_.hits(), 1u);
  EXPECT_EQ(cache_.misses(), 1u);
}

TEST_F(ProbeCacheTest, AWriteToTheSourceProbesItAgain) {
  ASSERT_TRUE(Probe(source()).ok());
  WriteSource(source(), "other bytes, same path");
  ASSERT_TRUE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 2);
}

TEST_F(ProbeCacheTest, ATouchedOrReplacedSourceIsProbedAgain) {
  ASSERT_TRUE(Probe(source()).ok());
  struct timespec times[2] = {{0, UTIME_NOW}, {123456789, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, source().c_str(), times, 0), 0);
  ASSERT_TRUE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 2) << "a new modification time";

  std::string replacement = (dir_ / "new.mov").string();
  WriteSource(replacement, "first bytes of a movie");
  std::filesystem::rename(replacement, source());
  ASSERT_TRUE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 3) << "another inode at the same path";
}

TEST_F(ProbeCacheTest, FailuresAreNotRemembered) {
  runner_.fail = true;
  EXPECT_FALSE(Probe(source()).ok());
  EXPECT_FALSE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 2);
  runner_.fail = false;
  EXPECT_TRUE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 3);
}

TEST_F(ProbeCacheTest, RefusedContentIsRefusedWithoutProbing) {
  std::string playlist = (dir_ / "list.mov").string();
  WriteSource(playlist, "#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/x.ts\n");
  auto refused = Probe(playlist);
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(runner_.runs, 0);
}

TEST_F(ProbeCacheTest, TheLeastRecentlyUsedSourceMakesRoom) {
  std::string b = (dir_ / "b.mov").string(), c = (dir_ / "c.mov").string();
  WriteSource(b, "b");
  WriteSource(c, "c");
  ASSERT_TRUE(Probe(source()).ok());
  ASSERT_TRUE(Probe(b).ok());
  ASSERT_TRUE(Probe(source()).ok());  // a hit: b is now the oldest
  ASSERT_TRUE(Probe(c).ok());         // capacity 2: b goes
  EXPECT_EQ(runner_.runs, 3);
  ASSERT_TRUE(Probe(source()).ok());
  EXPECT_EQ(runner_.runs, 3);
  ASSERT_TRUE(Probe(b).ok());
  EXPECT_EQ(runner_.runs, 4);
}

}  // namespace
}  // namespace reelfarm
