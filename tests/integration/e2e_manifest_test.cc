// Issue 12, items 9-10 and 15: the manifest is published only when written,
// its failures are reported and retried, it is written into the folder that
// was checked, and a refused submission leaves nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <latch>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/cli_run.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

std::string PosterSpec(const std::string& dir, const std::string& out) {
  std::string name = out;
  std::replace(name.begin(), name.end(), '/', '-');
  std::string spec = dir + "/spec-" + name + ".yaml";
  std::ofstream(spec) << "version: 1\nname: manifest\nsource: source.mov\noutput_dir: " << out
                      << "\ndeliverables:\n  - {name: poster, preset: thumbnail-jpg}\n";
  return spec;
}

std::string Metrics(LocalFarm& farm) {
  std::string text;
  RunArgv({"curl", "-s", "http://127.0.0.1:" + std::to_string(farm.metrics_port()) + "/metrics"},
          &text);
  return text;
}

TEST(E2eManifest, AFailedWriteIsReportedNotAdvertisedAndRetriedWithoutARestart) {
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_coordinator_args = {"--manifest-retry-ms", "100", "--manifest-retry-max-ms", "400"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 1);
  // A folder where the manifest goes: every write of it fails (as in a
  // read-only or full folder, even for root); the poster itself publishes.
  fs::create_directories(farm.dir() + "/out/manifest.json");
  auto id = farm.Submit(PosterSpec(farm.dir(), "out"));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return farm.Delivery(*id).value("manifest_failures", 0) >= 3; }, 60))
      << farm.Delivery(*id).dump(2) << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_FALSE(d.contains("manifest")) << "no manifest path is advertised: " << d.dump(2);
  EXPECT_EQ(d.value("state", ""), "running") << "not finished until the manifest is written";
  EXPECT_NE(d.value("manifest_error", "").find("manifest.json"), std::string::npos) << d.dump(2);
  EXPECT_EQ(d["items"][0].value("state", ""), "delivered");
  std::string metrics = Metrics(farm);
  EXPECT_NE(metrics.find("\nreelfarm_manifests_failing 1"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("\nreelfarm_manifest_write_failures_total 0"), std::string::npos);

  // `watch` says so and exits 5 (documented), without waiting forever.
  CliRun watch = RunCli({"watch", *id, "--coordinator", farm.api_url()});
  EXPECT_EQ(watch.rc, 5) << watch.out << watch.err;
  EXPECT_NE(watch.err.find("the manifest cannot be written"), std::string::npos) << watch.err;

  // Fixed: the next retry writes it, no restart needed.
  fs::remove(farm.dir() + "/out/manifest.json");
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 30))
      << farm.Delivery(*id).dump(2) << farm.LogTail("coordinator");
  d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered");
  EXPECT_EQ(d.value("manifest", ""), farm.dir() + "/out/manifest.json");
  EXPECT_FALSE(d.contains("manifest_error"));
  ASSERT_TRUE(fs::is_regular_file(farm.dir() + "/out/manifest.json"));
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
  EXPECT_NE(Metrics(farm).find("\nreelfarm_manifests_failing 0"), std::string::npos);
  watch = RunCli({"watch", *id, "--coordinator", farm.api_url()});
  EXPECT_EQ(watch.rc, 0) << watch.out << watch.err;
}

TEST(E2eManifest, AnOutputDirSwappedForASymlinkGetsNothingOutsideTheRoots) {
  const std::string root = MakeTempDir("reelfarm-swap");
  const std::string media = root + "/media", deliveries = root + "/deliveries",
                    elsewhere = root + "/elsewhere";
  for (const auto& d : {media, deliveries, elsewhere}) fs::create_directories(d);
  // Something of the victim's in the symlink's target, where the parts
  // folder would be removed.
  fs::create_directories(elsewhere + "/.parts");
  std::ofstream(elsewhere + "/.parts/keep") << "mine\n";
  LocalFarmOptions opts;
  opts.workers = 1;  // started after the swap
  opts.extra_worker_args = {"--allowed-root", media, "--allowed-root", deliveries};
  opts.extra_coordinator_args = {
      "--allowed-root",      media, "--allowed-root",          deliveries,
      "--manifest-retry-ms", "100", "--manifest-retry-max-ms", "200"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  GenerateSource(SourceKind::kPlain, media + "/film.mov", 1.0);
  std::ofstream(root + "/spec.yaml")
      << "version: 1\nname: swap\nsource: media/film.mov\noutput_dir: deliveries/out\n"
         "deliverables:\n  - {name: poster, preset: thumbnail-jpg}\n";
  auto id = farm.Submit(root + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  // After the checks at submission, the folder becomes a symlink out.
  fs::remove_all(deliveries + "/out");
  fs::create_directory_symlink(elsewhere, deliveries + "/out");
  ASSERT_TRUE(farm.StartWorker(0).ok());
  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return farm.Delivery(*id).value("manifest_failures", 0) >= 2; }, 60))
      << farm.Delivery(*id).dump(2) << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  auto d = farm.Delivery(*id);
  EXPECT_NE(d.value("manifest_error", "").find("outside every allowed root"), std::string::npos)
      << d.dump(2);
  EXPECT_FALSE(fs::exists(elsewhere + "/manifest.json")) << "nothing written through the link";
  EXPECT_TRUE(fs::exists(elsewhere + "/.parts/keep")) << "nothing removed through the link";
  EXPECT_FALSE(fs::exists(elsewhere + "/poster.jpg")) << "the worker refused its output too";
  fs::remove_all(root);
}

TEST(E2eManifest, ARedisRefusingWritesFailsHealthAndARefusedSubmissionLeavesNoFolder) {
  LocalFarmOptions opts;
  opts.workers = 0;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 1);
  EXPECT_EQ(farm.Get("/healthz").value("ok", false), true);

  // Full: Redis answers PING and reads, and refuses every write.
  ASSERT_TRUE(farm.RedisConfigSet("maxmemory-policy", "noeviction").ok());
  ASSERT_TRUE(farm.RedisConfigSet("maxmemory", "1").ok());
  auto health = farm.Get("/healthz");
  EXPECT_EQ(health.value("ok", true), false) << health.dump();
  EXPECT_NE(health.value("error", "").find("refuses writes"), std::string::npos) << health.dump();

  auto refused = farm.Submit(PosterSpec(farm.dir(), "nested/out"));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("redis"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(fs::exists(farm.dir() + "/nested")) << "the folders made for it are taken back";

  ASSERT_TRUE(farm.RedisConfigSet("maxmemory", "0").ok());
  EXPECT_EQ(farm.Get("/healthz").value("ok", false), true);
  auto accepted = farm.Submit(PosterSpec(farm.dir(), "nested/out"));
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_TRUE(fs::is_directory(farm.dir() + "/nested/out"));
}

// Submissions are persisted several at once (each on a Redis connection of
// its own): into one folder only one of them is accepted, however they
// race, and ids are never handed out twice.
TEST(E2eManifest, ConcurrentSubmissionsIntoOneFolderAcceptOneAndNeverShareAnId) {
  LocalFarmOptions opts;
  opts.workers = 0;  // nothing finishes: a second delivery into the folder must be refused
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 1);
  // The source probed, hashed and FFmpeg's version asked once before: the
  // racing submissions then meet at the folder check, not at ffprobe.
  ASSERT_TRUE(farm.Submit(PosterSpec(farm.dir(), "warm")).ok());
  constexpr int kRacing = 6;
  std::vector<std::string> specs;
  for (int i = 0; i < kRacing; ++i) specs.push_back(PosterSpec(farm.dir(), "same"));
  for (int i = 0; i < kRacing; ++i)
    specs.push_back(PosterSpec(farm.dir(), "own" + std::to_string(i)));
  std::vector<StatusOr<std::string>> results(specs.size(), Status::Internal("not run"));
  std::latch start(static_cast<std::ptrdiff_t>(specs.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < specs.size(); ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = farm.Submit(specs[i]);
    });
  }
  for (auto& t : threads) t.join();

  std::set<std::string> ids;
  int accepted_same = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const bool same = i < static_cast<size_t>(kRacing);
    if (results[i].ok()) {
      EXPECT_TRUE(ids.insert(*results[i]).second) << "id handed out twice: " << *results[i];
      accepted_same += same ? 1 : 0;
      continue;
    }
    EXPECT_TRUE(same) << "a submission into a folder of its own was refused: "
                      << results[i].status().ToString();
    EXPECT_NE(results[i].status().message().find("output_dir"), std::string::npos)
        << results[i].status().ToString();
    EXPECT_NE(results[i].status().message().find("is in use by"), std::string::npos)
        << results[i].status().ToString();
  }
  EXPECT_EQ(accepted_same, 1);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRacing) + 1);  // and the warm-up's is not among them
  // The accepted one's folder stays, whatever the refused ones made.
  EXPECT_TRUE(fs::is_directory(farm.dir() + "/same"));
}

}  // namespace

}  // namespace reelfarm::testing
