// Issue 10: thread budgets and memory limits that hold at any core count, an
// out-of-memory attempt retried with fewer threads, and work spread over
// workers that join after the delivery was submitted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "common/probe.h"
#include "common/process_runner.h"
#include "planning/planner.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

// Runs processes for real and remembers how each was started.
class RecordingRunner final : public ProcessRunner {
 public:
  StatusOr<ProcessResult> Run(const ProcessOptions& options) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(options);
    }
    return real_.Run(options);
  }
  std::vector<ProcessOptions> ffmpeg_runs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ProcessOptions> out;
    for (const auto& o : seen_) {
      if (fs::path(o.argv[0]).filename() == "ffmpeg") out.push_back(o);
    }
    return out;
  }

 private:
  PosixProcessRunner real_;
  std::mutex mu_;
  std::vector<ProcessOptions> seen_;
};

std::string ValueAfter(const std::vector<std::string>& argv, const std::string& option) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == option) return argv[i + 1];
  }
  return "";
}

// On a 16-core host x264 starts about 24 threads; an address-space limit
// sized for 2 cores failed the 9:16 chunk with "Error submitting video frame
// to the encoder". With 24 threads and the worker's default limits it runs.
TEST(Scaling, ChunkOfTheVerticalDeliverableRunsWith24ThreadsUnderTheDefaultLimits) {
  std::string dir = MakeTempDir("reelfarm-24threads");
  std::string source = MakeTestSource(dir, "1920x1080", 2);
  RecordingRunner runner;
  auto facts = ProbeSource(runner, "ffprobe", source);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  DeliverySpec spec;
  spec.spec_file = "scaling.yaml";
  spec.name = "scaling";
  spec.source = source;
  spec.output_dir = dir + "/out";
  DeliverableSpec vertical;
  vertical.name = "vertical";
  vertical.preset = "social-h264";
  vertical.height = 1920;
  vertical.aspect_num = 9;
  vertical.aspect_den = 16;
  vertical.loudness = std::optional<LoudnessChoice>();  // the chunk alone (no analyse job)
  vertical.qc = QcChoice{.none = true};
  spec.deliverables = {vertical};
  PlannerOptions planner;
  planner.min_chunk_s = 1;
  planner.piece_cost = 1;  // 2 s of 1080x1920 x264: two chunks
  PlanResult planned = PlanDelivery(spec, *facts, planner);
  ASSERT_TRUE(planned.errors.empty());
  ASSERT_EQ(planned.plan.jobs(0).kind(), "chunk");

  JobExecutorOptions options;  // the worker's defaults ...
  options.threads = 24;        // ... on a host whose budget is 24 threads a slot
  RealClock clock;
  JobExecutor executor(&runner, options, &clock);
  pb::Assign assign;
  *assign.mutable_job() = planned.plan.jobs(0);
  assign.set_token(1);
  pb::JobResult result = executor.Execute(assign, nullptr, nullptr);
  ASSERT_TRUE(result.ok()) << result.error() << "\n" << result.log_tail();
  EXPECT_EQ(result.threads(), 24);
  auto runs = runner.ffmpeg_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(ValueAfter(runs[0].argv, "-threads"), "24");
  EXPECT_EQ(ValueAfter(runs[0].argv, "-filter_complex_threads"), "24");
  EXPECT_GT(runs[0].memory_limit_bytes, 0u) << "the job's memory limit was on";
  std::cout << "[ figures ] 1080x1920 x264 chunk, 24 threads: address-space limit "
            << (runs[0].memory_limit_bytes >> 20) << " MiB\n";
  fs::remove_all(dir);
}

// An "FFmpeg" that runs out of memory whenever it is given more than one
// thread: the first attempt (the worker's budget of 4) fails, the retry
// runs with half the threads... until it fits.
TEST(Scaling, OutOfMemoryIsRetriedWithFewerThreadsAndDelivers) {
  std::string tools = MakeTempDir("reelfarm-oom");
  std::string wrapper = tools + "/oom-ffmpeg.sh";
  std::ofstream(wrapper)
      << "#!/bin/sh\n"
         "prev=\"\"\n"
         "for a in \"$@\"; do\n"
         "  if [ \"$prev\" = \"-threads\" ] && [ \"$a\" -gt 1 ]; then\n"
         "    echo \"[libx264 @ 0x5581] malloc of size 8294400 failed\" >&2\n"
         "    i=0; while [ $i -lt 400 ]; do echo \"[aac @ 0x5582] filler line $i\" >&2; "
         "i=$((i+1)); done\n"
         "    echo \"[aac @ 0x5582] 2 frames left in the queue on closing\" >&2\n"
         "    exit 1\n"
         "  fi\n"
         "  prev=\"$a\"\n"
         "done\n"
         "exec ffmpeg \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_worker_args = {"--ffmpeg-override", wrapper, "--threads", "4", "--encoders",
                            "libx264,aac,mjpeg"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 1);
  std::string spec = farm.dir() + "/spec.yaml";
  std::ofstream(spec) << "version: 1\nname: oom\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n  - {name: web, preset: web-h264, height: 120}\n";
  auto id = farm.Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 120))
      << farm.LogTail("worker-0");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered") << d.dump(2);
  ASSERT_EQ(d["items"].size(), 1u);
  // 4 threads, then 2, then 1: the third attempt fits.
  EXPECT_EQ(d["items"][0].value("attempts", 0), 3);
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
  // The worker told the real cause, found far before the log's tail.
  std::string log = farm.LogTail("worker-0");
  EXPECT_NE(log.find("ran out of memory"), std::string::npos);
  EXPECT_NE(log.find("malloc of size 8294400 failed"), std::string::npos);
  fs::remove_all(tools);
}

}  // namespace
}  // namespace reelfarm::testing

namespace reelfarm::testing {
namespace {

// The delivery's shape does not depend on who is connected at submit: with
// one worker there and seven joining a moment later, all eight take pieces.
TEST(Scaling, WorkersJoiningAfterTheSubmitShareTheDelivery) {
  LocalFarmOptions opts;
  opts.workers = 8;
  opts.extra_worker_args = {"--cores", "1", "--encoders", "libx264,libx265,aac,mjpeg"};
  // Small pieces of a small source: about 20 chunks.
  opts.piece_cost = 0.2;
  opts.extra_coordinator_args = {"--min-chunk-s", "0.5"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  ASSERT_TRUE(farm.StartWorker(0).ok());
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto w = farm.Get("/api/v1/workers");
        return w.is_object() && w["workers"].size() == 1;
      },
      30));
  MakeTestSource(farm.dir(), "640x360", 4);
  std::string spec = farm.dir() + "/spec.yaml";
  std::ofstream(spec) << "version: 1\nname: spread\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n"
                         "  - {name: web, preset: web-h264}\n"
                         "  - {name: hevc, preset: web-hevc}\n"
                         "  - {name: square, preset: social-h264, aspect: \"1:1\", height: 360}\n";
  auto id = farm.Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  for (int i = 1; i < 8; ++i) ASSERT_TRUE(farm.StartWorker(i).ok());
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(*id)); }, 240))
      << farm.LogTail("coordinator");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered") << d.dump(2);
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
  auto workers = farm.Get("/api/v1/workers");
  ASSERT_EQ(workers["workers"].size(), 8u);
  std::string figures;
  for (const auto& w : workers["workers"]) {
    figures += " " + w.value("name", "") + "=" + std::to_string(w.value("jobs_done", 0));
    EXPECT_GE(w.value("jobs_done", 0), 1) << w.value("name", "") << " took no piece";
  }
  std::cout << "[ figures ] jobs done per worker:" << figures << "\n";
}

}  // namespace
}  // namespace reelfarm::testing
