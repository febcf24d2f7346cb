// Fault injection against real processes (issue 3): frozen and killed
// workers, orphaned encoders, poison jobs that kill their worker, and a host
// whose FFmpeg is broken. Each test states its figures in its output.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/output_cache.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

std::string WriteSpec(const std::string& dir, const std::string& deliverables) {
  std::string spec = dir + "/spec.yaml";
  std::ofstream(spec) << "version: 1\nname: faults\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n"
                      << deliverables;
  return spec;
}

// The first item running with real progress, as {job, worker}.
std::pair<std::string, std::string> RunningItem(const nlohmann::json& d,
                                                const std::string& preset = "") {
  if (!d.is_object()) return {};
  for (const auto& item : d["items"]) {
    if (item.value("state", "") == "running" && item.value("progress", 0.0) > 0.0 &&
        (preset.empty() || item.value("preset", "") == preset)) {
      return {item.value("job", ""), item.value("worker", "")};
    }
  }
  return {};
}

nlohmann::json WorkerByName(LocalFarm& farm, const std::string& name) {
  auto w = farm.Get("/api/v1/workers");
  if (!w.is_object()) return nullptr;
  for (const auto& x : w["workers"]) {
    if (x.value("name", "") == name) return x;
  }
  return nullptr;
}

// A process that is gone or a zombie no longer runs.
bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close == std::string::npos || line.size() < close + 3 || line[close + 2] == 'Z';
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(parent) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t p; in >> p;) out.push_back(p);
  }
  return out;
}

TEST(E2eFaults, FrozenWorkerIsReplacedAndItsStaleAttemptPublishesNothing) {
  LocalFarmOptions opts;
  opts.workers = 2;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "1280x720", 6);
  auto id = farm.Submit(WriteSpec(farm.dir(), "  - {name: hevc, preset: web-hevc}\n"));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  std::pair<std::string, std::string> victim;
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] { return !(victim = RunningItem(farm.Delivery(*id))).first.empty(); }, 60));
  std::string process = LocalFarm::ProcessOfWorker(victim.second);
  farm.Signal(process, SIGSTOP);  // its FFmpeg (own process group) encodes on
  // The job moves to the other worker and is delivered there.
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 180))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  ASSERT_EQ(d.value("state", ""), "delivered");
  EXPECT_NE(d["items"][0].value("worker", ""), victim.second);
  EXPECT_GE(d["items"][0].value("attempts", 0), 2);

  // Wake the frozen worker: it finds its attempt superseded and must not
  // publish over the delivered file.
  farm.Signal(process, SIGCONT);
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto w = WorkerByName(farm, victim.second);
        return w.is_object() && w.value("connected", false) && w.value("running", 1) == 0;
      },
      60))
      << farm.LogTail(process);
  // Its encoder has ended (no temp file is being written any more).
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        for (const auto& e : fs::directory_iterator(farm.dir() + "/out")) {
          if (e.path().filename().string()[0] == '.' &&
              e.path().filename() != kDeliveryCacheFolder) {
            return false;
          }
        }
        return true;
      },
      60));
  ExpectPublishedExactlyOnce(farm.dir() + "/out", farm.Delivery(*id));
}

TEST(E2eFaults, KillingOnlyTheWorkerProcessKillsItsEncoder) {
  LocalFarmOptions opts;
  opts.workers = 1;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "1280x720", 6);
  auto id = farm.Submit(WriteSpec(farm.dir(), "  - {name: hevc, preset: web-hevc}\n"));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return !RunningItem(farm.Delivery(*id)).first.empty(); }, 60));
  pid_t worker = farm.pid("worker-0");
  std::vector<pid_t> encoders = ChildrenOf(worker);
  ASSERT_FALSE(encoders.empty()) << "the worker runs its FFmpeg as a child";
  kill(worker, SIGKILL);  // the worker only, not its process group
  auto t0 = std::chrono::steady_clock::now();
  bool gone = LocalFarm::WaitFor(
      [&] {
        for (pid_t p : encoders) {
          if (!ProcessGone(p)) return false;
        }
        return true;
      },
      1.0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(gone) << "an orphaned encoder kept running";
  std::cout << "[ figures ] orphaned encoders: " << encoders.size() << ", gone after " << seconds
            << " s\n";
}

TEST(E2eFaults, TwentyWorkerKillsInARowStillPublishEachDeliverableExactlyOnce) {
  LocalFarmOptions opts;
  opts.workers = 2;
  opts.extra_coordinator_args = {"--max-attempts", "30"};
  // Skip the encoder probe so a revived worker is back at once.
  opts.extra_worker_args = {"--encoders", "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "640x360", 8);
  auto id = farm.Submit(WriteSpec(farm.dir(),
                                  "  - {name: hevc, preset: web-hevc}\n"
                                  "  - {name: web, preset: web-h264}\n"
                                  "  - {name: master, preset: master-prores}\n"));
  ASSERT_TRUE(id.ok());
  // Each kill hits a live worker process in the middle of a fresh attempt
  // (a (job, attempt) pair not killed before).
  int kills = 0;
  std::set<std::pair<std::string, int>> killed;
  while (kills < 20) {
    std::string process;
    bool finished = false;
    bool found = LocalFarm::WaitFor(
        [&] {
          farm.ReviveDeadWorkers();
          auto d = farm.Delivery(*id);
          if (IsFinished(d)) return finished = true;
          if (!d.is_object()) return false;
          for (const auto& item : d["items"]) {
            auto key = std::make_pair(item.value("job", ""), item.value("attempts", 0));
            if (item.value("state", "") != "running" || item.value("progress", 0.0) <= 0.0 ||
                killed.count(key)) {
              continue;
            }
            process = LocalFarm::ProcessOfWorker(item.value("worker", ""));
            if (farm.pid(process) <= 0) continue;
            killed.insert(key);
            return true;
          }
          return false;
        },
        60);
    ASSERT_TRUE(found);
    if (finished) break;  // finished before 20 kills
    farm.Signal(process, SIGKILL);
    ++kills;
  }
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        farm.ReviveDeadWorkers();
        return IsFinished(farm.Delivery(*id));
      },
      240));
  auto d = farm.Delivery(*id);
  int attempts = 0;
  for (const auto& item : d["items"]) attempts += item.value("attempts", 0);
  std::cout << "[ figures ] kills: " << kills << ", deliverables: " << d["items"].size()
            << ", attempts: " << attempts << ", state: " << d.value("state", "") << "\n";
  EXPECT_EQ(kills, 20);
  EXPECT_GE(attempts, 3 + kills) << "every kill cost an attempt";
  EXPECT_EQ(d.value("state", ""), "delivered");
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
}

TEST(E2eFaults, JobThatKillsItsWorkerEveryTimeFailsAfterMaxAttemptsOthersDeliver) {
  LocalFarmOptions opts;
  opts.workers = 2;
  // An "FFmpeg" that kills its worker for the poison deliverable only.
  std::string wrapper = MakeTempDir("reelfarm-poison") + "/poison-ffmpeg.sh";
  std::ofstream(wrapper) << "#!/bin/sh\n"
                            "for a in \"$@\"; do case \"$a\" in *poison*) kill -9 $PPID; exit 1;; "
                            "esac; done\nexec ffmpeg \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  opts.extra_worker_args = {"--ffmpeg-override", wrapper, "--encoders",
                            "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le"};
  LocalFarm poisoned(opts);
  ASSERT_TRUE(poisoned.Start().ok()) << poisoned.LogTail("coordinator");
  MakeTestSource(poisoned.dir(), "320x180", 2);
  auto id = poisoned.Submit(WriteSpec(poisoned.dir(),
                                      "  - {name: poison, preset: web-h264}\n"
                                      "  - {name: web, preset: web-h264, height: 120}\n"
                                      "  - {name: poster, preset: thumbnail-jpg}\n"));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        poisoned.ReviveDeadWorkers();
        return IsFinished(poisoned.Delivery(*id));
      },
      120))
      << poisoned.LogTail("coordinator");
  auto d = poisoned.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "failed");
  for (const auto& item : d["items"]) {
    if (item.value("name", "") == "poison") {
      EXPECT_EQ(item.value("state", ""), "failed");
      EXPECT_EQ(item.value("attempts", 0), 3);
      EXPECT_NE(item.value("error", "").find("gave up after 3 attempts"), std::string::npos)
          << item.value("error", "");
    } else {
      EXPECT_EQ(item.value("state", ""), "delivered") << item.dump();
    }
  }
  EXPECT_FALSE(fs::exists(poisoned.dir() + "/out/poison.mp4"));
  ExpectPublishedExactlyOnce(poisoned.dir() + "/out", d);
}

TEST(E2eFaults, WorkerWithBrokenFfmpegIsQuarantinedAndItsJobsCompleteElsewhere) {
  LocalFarmOptions opts;
  opts.workers = 2;
  opts.worker_args[0] = {"--ffmpeg-override", "/bin/false"};
  opts.extra_worker_args = {"--encoders", "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le"};
  // One job per deliverable, so the broken host fails several in a row.
  opts.extra_coordinator_args = {"--no-fan-out"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 2);
  std::string deliverables;
  for (int i = 0; i < 5; ++i) {
    deliverables += "  - {name: web" + std::to_string(i) + ", preset: web-h264, height: 120}\n";
  }
  auto id = farm.Submit(WriteSpec(farm.dir(), deliverables));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 120))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered");
  for (const auto& item : d["items"]) EXPECT_EQ(item.value("worker", ""), "local-1");
  auto broken = WorkerByName(farm, "local-0");
  ASSERT_TRUE(broken.is_object());
  EXPECT_EQ(broken.value("state", ""), "quarantined") << broken.dump();
  EXPECT_EQ(WorkerByName(farm, "local-1").value("state", ""), "ready");
  std::cout << "[ figures ] broken worker failures: " << broken.value("jobs_failed", 0)
            << ", quarantined: " << broken.value("state", "") << "\n";
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
}

}  // namespace
}  // namespace reelfarm::testing

namespace reelfarm::testing {
namespace {

TEST(E2eFaults, RedisKilledDuringASubmissionBurstLosesNoAcknowledgedDelivery) {
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_worker_args = {"--encoders", "libx264,aac,mjpeg"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  GenerateSource(SourceKind::kPlain, farm.dir() + "/source.mov", 1.0);
  // Each delivery its own output folder (a folder serves one unfinished
  // delivery at a time).
  auto spec_for = [&](int i) {
    std::string path = farm.dir() + "/spec" + std::to_string(i) + ".yaml";
    std::ofstream(path) << "version: 1\nname: burst\nsource: source.mov\noutput_dir: out" << i
                        << "\ndeliverables:\n  - {name: poster, preset: thumbnail-jpg}\n";
    return path;
  };

  std::vector<std::string> acked;
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    if (i == 15) farm.Signal("redis", SIGKILL);  // mid-burst
    if (i == 25) {
      ASSERT_TRUE(farm.StartRedis().ok());
    }
    auto id = farm.Submit(spec_for(i));
    if (id.ok()) {
      acked.push_back(*id);
    } else {
      ++refused;
    }
  }
  // A fresh coordinator knows only what Redis kept.
  farm.Signal("coordinator", SIGKILL);
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  auto list = farm.Get("/api/v1/deliveries");
  ASSERT_TRUE(list.is_object());
  std::set<std::string> known;
  for (const auto& d : list["deliveries"]) known.insert(d.value("id", ""));
  int lost = 0;
  for (const auto& id : acked) lost += known.count(id) ? 0 : 1;
  std::cout << "[ figures ] submissions: 40, acknowledged: " << acked.size()
            << ", refused while Redis was down: " << refused << ", lost: " << lost << "\n";
  EXPECT_EQ(lost, 0);
  EXPECT_GT(refused, 0) << "the kill landed inside the burst";
  EXPECT_GE(acked.size(), 25u);
  // And they all complete.
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        for (const auto& id : acked) {
          if (!IsFinished(farm.Delivery(id))) return false;
        }
        return true;
      },
      120));
  for (const auto& id : acked) EXPECT_EQ(farm.Delivery(id).value("state", ""), "delivered") << id;
}

}  // namespace
}  // namespace reelfarm::testing

namespace reelfarm::testing {
namespace {

TEST(E2eFaults, FullOutputFilesystemLeavesNothingAtTheFinalNameOthersDeliver) {
  std::string mnt = MakeTempDir("reelfarm-tinyfs");
  if (RunArgv({"mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt}) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root); disk-full not tested";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { RunArgv({"umount", "-l", path}); }
  } unmount{mnt};

  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_worker_args = {"--encoders", "libx264,aac,mjpeg,prores_ks,pcm_s24le"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "640x360", 4);
  std::ofstream(farm.dir() + "/spec.yaml")
      << "version: 1\nname: tiny\nsource: source.mov\noutput_dir: " << mnt
      << "/out\ndeliverables:\n"
         "  - {name: master, preset: master-prores}\n"  // tens of MB: cannot fit
         "  - {name: poster, preset: thumbnail-jpg}\n";
  auto id = farm.Submit(farm.dir() + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 120))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "failed");
  for (const auto& item : d["items"]) {
    if (item.value("name", "") == "master") {
      EXPECT_EQ(item.value("state", ""), "failed");
      EXPECT_NE(item.value("error", "").find("No space left"), std::string::npos)
          << item.value("error", "");
    } else {
      EXPECT_EQ(item.value("state", ""), "delivered") << item.dump();
    }
  }
  EXPECT_FALSE(fs::exists(mnt + "/out/master.mov"));
  ExpectPublishedExactlyOnce(mnt + "/out", d);
}

}  // namespace
}  // namespace reelfarm::testing
