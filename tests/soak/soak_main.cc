// The long soak of issue 3 (not part of CI; run with scripts/soak): many
// small jobs across several real workers while a random worker is SIGKILLed
// every few seconds and redis-server is SIGKILLed and restarted once. At the
// end every deliverable must be published exactly once, with nothing lost.
// Prints the figures docs/reliability.md records: jobs, kills, lost,
// duplicated, and the time from a kill to the re-dispatch of each job the
// killed worker was running (p50/p99/max).
#include <signal.h>

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct SoakOptions {
  int deliveries = 100;
  int workers = 4;
  double kill_every_s = 3;
  double redis_restart_at = 0.4;  // fraction of deliveries finished
  uint64_t seed = 1;
  bool fan_out = true;  // false: one job per deliverable
};


// Ten small deliverables (about 1,000 jobs with the default 100 deliveries).
constexpr char kDeliverables[] =
    "  - {name: poster, preset: thumbnail-jpg}\n"
    "  - {name: poster-small, preset: thumbnail-jpg, height: 90}\n"
    "  - {name: wav, preset: audio-wav}\n"
    "  - {name: web, preset: web-h264, height: 90}\n"
    "  - {name: web-120, preset: web-h264, height: 120}\n"
    "  - {name: square, preset: social-h264, aspect: \"1:1\", height: 90}\n"
    "  - {name: vertical, preset: social-h264, aspect: \"9:16\", height: 160}\n"
    "  - {name: portrait, preset: social-h264, aspect: \"4:5\", height: 100}\n"
    "  - {name: hevc, preset: web-hevc, height: 90}\n"
    "  - {name: master, preset: master-prores}\n";
constexpr int kPerDelivery = 10;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * v.size())) - 1;
  return v[std::min(i, v.size() - 1)];
}

// Running jobs by worker name -> {job id -> attempts}, over `ids`.
std::map<std::string, std::map<std::string, int>> RunningByWorker(
    LocalFarm& farm, const std::vector<std::string>& ids) {
  std::map<std::string, std::map<std::string, int>> out;
  for (const auto& id : ids) {
    auto d = farm.Delivery(id);
    if (!d.is_object() || IsFinished(d)) continue;
    for (const auto& item : d["items"]) {
      if (item.value("state", "") == "running") {
        out[item.value("worker", "")][item.value("job", "")] = item.value("attempts", 0);
      }
    }
  }
  return out;
}

int Soak(const SoakOptions& o) {
  LocalFarmOptions fo;
  fo.workers = o.workers;
  fo.extra_coordinator_args = {"--max-attempts", "50"};
  // The coordinator's own default piece (LocalFarm's is 0, one job per
  // deliverable): cheap pictures share decode-once groups.
  fo.piece_cost = o.fan_out ? 4 : 0;
  if (!o.fan_out) fo.extra_coordinator_args.push_back("--no-fan-out");
  fo.extra_worker_args = {"--encoders", "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le"};
  LocalFarm farm(fo);
  Status started = farm.Start();
  if (!started.ok()) {
    std::cerr << "cannot start the farm: " << started.ToString() << "\n";
    return 1;
  }
  std::cout << "farm in " << farm.dir() << "\n";
  GenerateSource(SourceKind::kPlain, farm.dir() + "/source.mov", 2.0);

  const auto t0 = Clock::now();
  std::vector<std::string> ids;
  for (int i = 0; i < o.deliveries; ++i) {
    std::string spec = farm.dir() + "/spec-" + std::to_string(i) + ".yaml";
    std::ofstream(spec) << "version: 1\nname: soak\nsource: source.mov\noutput_dir: out/"
                        << i << "\ndeliverables:\n"
                        << kDeliverables;
    auto id = farm.Submit(spec);
    if (!id.ok()) {
      std::cerr << "submit " << i << " refused: " << id.status().ToString() << "\n";
      return 1;
    }
    ids.push_back(*id);
  }
  std::cout << "submitted " << ids.size() * kPerDelivery << " jobs in " << ids.size()
            << " deliveries\n";

  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  int kills = 0;
  bool redis_restarted = false;
  std::vector<double> redispatch_s;
  // Jobs the last victim was running, awaiting re-dispatch: job -> attempts.
  std::map<std::string, int> pending;
  Clock::time_point killed_at{};
  Clock::time_point next_kill = Clock::now();
  std::vector<std::string> unfinished = ids;

  auto finished_count = [&] {
    std::vector<std::string> still;
    for (const auto& id : unfinished) {
      if (!IsFinished(farm.Delivery(id))) still.push_back(id);
    }
    unfinished.swap(still);
    return ids.size() - unfinished.size();
  };
  const auto deadline = Clock::now() + std::chrono::minutes(60);
  while (finished_count() < ids.size()) {
    if (Clock::now() > deadline) {
      std::cerr << "not finished after 60 minutes\n";
      return 1;
    }
    farm.ReviveDeadWorkers();
    // Re-dispatch of the last victim's jobs: running again with a new
    // attempt, or finished.
    for (auto it = pending.begin(); it != pending.end();) {
      std::string delivery = it->first.substr(0, it->first.rfind('.'));
      auto d = farm.Delivery(delivery);
      bool again = false;
      if (d.is_object()) {
        for (const auto& item : d["items"]) {
          if (item.value("job", "") != it->first) continue;
          std::string state = item.value("state", "");
          again = (state == "running" && item.value("attempts", 0) > it->second) ||
                  state == "delivered" || state == "failed";
        }
      }
      if (again) {
        redispatch_s.push_back(std::chrono::duration<double>(Clock::now() - killed_at).count());
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (!redis_restarted && finished_count() >= o.redis_restart_at * ids.size()) {
      std::cout << "SIGKILL redis-server and restart it\n";
      farm.Signal("redis", SIGKILL);
      Status s = farm.StartRedis();
      if (!s.ok()) {
        std::cerr << "redis did not come back: " << s.ToString() << "\n";
        return 1;
      }
      redis_restarted = true;
    }
    if (pending.empty() && Clock::now() >= next_kill) {
      auto running = RunningByWorker(farm, unfinished);
      if (!running.empty()) {
        auto victim = running.begin();
        std::advance(victim, rng() % running.size());
        farm.Signal(LocalFarm::ProcessOfWorker(victim->first), SIGKILL);
        killed_at = Clock::now();
        pending = victim->second;
        ++kills;
      }
      next_kill = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(o.kill_every_s * jitter(rng)));
    }
    // Polling real processes' state, not waiting on time.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // Exactly once: each delivery's folder holds one file per deliverable and
  // its manifest, no temporaries, checksums as the manifest says.
  int delivered = 0, lost = 0, duplicated = 0, attempts = 0;
  std::set<std::string> jobs;  // a decode-once group serves several deliverables
  for (size_t i = 0; i < ids.size(); ++i) {
    auto d = farm.Delivery(ids[i]);
    for (const auto& item : d["items"]) {
      if (jobs.insert(item.value("job", "")).second) attempts += item.value("attempts", 0);
      if (item.value("state", "") == "delivered") {
        ++delivered;
      } else {
        ++lost;
        std::cerr << ids[i] << " " << item.dump() << "\n";
      }
    }
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(farm.dir() + "/out/" + std::to_string(i))) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename().string();
      if (name == "manifest.json") continue;
      ++files;
      if (name[0] == '.') ++duplicated;  // a temporary left behind
    }
    duplicated += std::max(0, files - static_cast<int>(d["items"].size()));
    ExpectPublishedExactlyOnce(farm.dir() + "/out/" + std::to_string(i), d);
  }
  std::cout << "[ figures ] deliverables: " << ids.size() * kPerDelivery
            << ", jobs that published them: " << jobs.size() << ", workers: " << o.workers
            << ", worker kills: " << kills << ", redis restarts: " << (redis_restarted ? 1 : 0)
            << ", attempts: " << attempts << ", delivered: " << delivered << ", lost: " << lost
            << ", duplicated: " << duplicated << ", wall: " << wall_s << " s\n";
  std::cout << "[ figures ] re-dispatch after a kill (" << redispatch_s.size()
            << " jobs): p50 " << Percentile(redispatch_s, 0.5) << " s, p99 "
            << Percentile(redispatch_s, 0.99) << " s, max " << Percentile(redispatch_s, 1.0)
            << " s\n";
  bool ok = lost == 0 && duplicated == 0 && !::testing::Test::HasFailure();
  std::cout << (ok ? "SOAK PASSED" : "SOAK FAILED") << "\n";
  return ok ? 0 : 1;
}

SoakOptions* options = nullptr;  // set by main before the test runs

TEST(Soak, RandomWorkerKillsAndARedisRestartLoseAndDoubleNothing) {
  EXPECT_EQ(Soak(*options), 0);
}

}  // namespace
}  // namespace reelfarm::testing

int main(int argc, char** argv) {
  reelfarm::testing::SoakOptions o;
  reelfarm::testing::options = &o;
  ::testing::InitGoogleTest(&argc, argv);  // takes its --gtest_* flags out
  CLI::App app{"reelfarm soak: kills and a Redis restart under load; exactly-once check"};
  app.add_option("--deliveries", o.deliveries, "deliveries of 10 small deliverables each")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "worker processes")->capture_default_str();
  app.add_option("--kill-every-s", o.kill_every_s, "mean seconds between worker kills")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_flag("--fan-out,!--no-fan-out", o.fan_out,
               "let the coordinator group deliverables (fewer, bigger jobs)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return RUN_ALL_TESTS();
}
