// PosixProcessRunner against real processes.
#include "common/process_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/memory_cgroup.h"

namespace reelfarm {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

// True when `pid` no longer runs (gone, or a zombie nobody reaped yet).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() &&
         line[close_paren + 2] == 'Z';
}

// Waits (bounded, short steps) for a condition that is expected to become
// true soon; returns whether it did.
template <typename Pred>
bool EventuallyTrue(Pred pred, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

ProcessResult MustRun(const ProcessOptions& opts) {
  PosixProcessRunner runner;
  StatusOr<ProcessResult> r = runner.Run(opts);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ProcessResult{};
}

ProcessOptions Sh(const std::string& script) {
  ProcessOptions opts;
  opts.argv = {"/bin/sh", "-c", script};
  opts.timeout_s = 20;  // a safety net; no test should come near it
  return opts;
}

TEST(ProcessRunnerTest, SuccessAndExitCodes) {
  ProcessResult ok = MustRun(Sh("exit 0"));
  EXPECT_TRUE(ok.Succeeded());
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.Describe(), "exit code 0");

  ProcessResult three = MustRun(Sh("exit 3"));
  EXPECT_FALSE(three.Succeeded());
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_EQ(three.term_signal, 0);
  EXPECT_EQ(three.Describe(), "exit code 3");

  // A program that ran and exited 127 is not "could not run".
  ProcessResult r127 = MustRun(Sh("exit 127"));
  EXPECT_EQ(r127.exit_code, 127);
}

TEST(ProcessRunnerTest, ReportsTheKillingSignal) {
  ProcessResult r = MustRun(Sh("kill -SEGV $$"));
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.term_signal, SIGSEGV);
  EXPECT_FALSE(r.timed_out);
  EXPECT_THAT(r.Describe(), HasSubstr("killed by signal 11"));
}

TEST(ProcessRunnerTest, SplitsStdoutIntoLines) {
  ProcessOptions opts = Sh("printf 'alpha\\nbeta\\n\\ngamma'");
  std::vector<std::string> lines;
  opts.on_stdout_line = [&](std::string_view line) { lines.emplace_back(line); };
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_THAT(lines, ElementsAre("alpha", "beta", "", "gamma"));
  EXPECT_TRUE(r.stdout_data.empty());
}

TEST(ProcessRunnerTest, CollectsStdoutWithoutCallback) {
  ProcessResult r = MustRun(Sh("echo one; echo two >&2; echo three"));
  EXPECT_EQ(r.stdout_data, "one\nthree\n");
  EXPECT_EQ(r.stderr_tail, "two\n");
}

TEST(ProcessRunnerTest, StderrTailIsBoundedAndKeepsTheEnd) {
  // ~200 KB of stderr, then a marker.
  ProcessOptions opts =
      Sh("i=0; while [ $i -lt 4000 ]; do echo 'noise noise noise noise noise noise' >&2; "
         "i=$((i+1)); done; echo THE-END >&2");
  opts.stderr_tail_bytes = 1000;
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.stderr_tail.size(), 1000u);
  EXPECT_THAT(r.stderr_tail, EndsWith("noise\nTHE-END\n"));
}

TEST(ProcessRunnerTest, StdinIsDevNull) {
  ProcessOptions opts;
  opts.argv = {"cat"};  // would block forever on an inherited terminal/pipe
  opts.timeout_s = 20;
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "");
}

TEST(ProcessRunnerTest, TimeoutKillsTheProcess) {
  ProcessOptions opts;
  opts.argv = {"sleep", "30"};
  opts.timeout_s = 0.3;
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_THAT(r.Describe(), HasSubstr("timed out"));
}

TEST(ProcessRunnerTest, TimeoutKillsTheWholeProcessGroup) {
  // The shell prints its background child's pid, then waits for it.
  ProcessOptions opts = Sh("sleep 30 & echo $!; wait");
  opts.timeout_s = 0.5;
  pid_t grandchild = 0;
  opts.on_stdout_line = [&](std::string_view line) {
    grandchild = std::atoi(std::string(line).c_str());
  };
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.timed_out);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(EventuallyTrue([&] { return ProcessGone(grandchild); }))
      << "grandchild " << grandchild << " survived the timeout";
}

TEST(ProcessRunnerTest, StragglersInTheGroupDieWhenTheChildExits) {
  ProcessOptions opts = Sh("sleep 30 & echo $!; exit 0");
  pid_t straggler = 0;
  opts.on_stdout_line = [&](std::string_view line) {
    straggler = std::atoi(std::string(line).c_str());
  };
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_FALSE(r.timed_out);  // returned without waiting for the straggler's pipe
  ASSERT_GT(straggler, 0);
  EXPECT_TRUE(EventuallyTrue([&] { return ProcessGone(straggler); }));
}

TEST(ProcessRunnerTest, TimeoutAppliesEvenWhenTheChildClosesItsPipes) {
  ProcessOptions opts = Sh("exec sleep 30 >&- 2>&-");
  opts.timeout_s = 0.3;
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.timed_out);
}

TEST(ProcessRunnerTest, CancelFlagKillsTheProcess) {
  std::atomic<bool> cancel{false};
  ProcessOptions opts = Sh("echo started; exec sleep 30");
  opts.cancel = &cancel;
  // Cancel once the child is known to be running.
  opts.on_stdout_line = [&](std::string_view line) {
    if (line == "started") cancel = true;
  };
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_THAT(r.Describe(), HasSubstr("cancelled"));
}

TEST(ProcessRunnerTest, MissingProgramIsNotFound) {
  PosixProcessRunner runner;
  ProcessOptions opts;
  opts.argv = {"reelfarm-no-such-program-xyz", "-version"};
  StatusOr<ProcessResult> r = runner.Run(opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(r.status().message(),
            "cannot run reelfarm-no-such-program-xyz: No such file or directory");

  // With a '/', the exec itself fails in the child and reports back.
  opts.argv = {"/nonexistent/dir/ffmpeg"};
  r = runner.Run(opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("No such file or directory"));
}

TEST(ProcessRunnerTest, NonExecutableIsAnIOError) {
  char dir_template[] = "/tmp/reelfarm-pr-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = std::string(dir_template) + "/not-executable";
  std::ofstream(path) << "#!/bin/sh\necho hi\n";
  ::chmod(path.c_str(), 0644);
  PosixProcessRunner runner;
  ProcessOptions opts;
  opts.argv = {path};
  StatusOr<ProcessResult> r = runner.Run(opts);
  ::unlink(path.c_str());
  ::rmdir(dir_template);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kIOError);
  EXPECT_THAT(r.status().message(), HasSubstr("Permission denied"));
}

TEST(ProcessRunnerTest, AppliesTheMemoryLimit) {
  ProcessOptions opts = Sh("ulimit -v");
  opts.memory_limit_bytes = 512ull << 20;
  ProcessResult r = MustRun(opts);
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.stdout_data, "524288\n");  // KiB
}

TEST(ProcessRunnerTest, ChildDoesNotInheritBlockedSignals) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  ProcessResult r = MustRun(Sh("kill -TERM $$; exit 0"));
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(r.term_signal, SIGTERM);
}

TEST(ProcessRunnerTest, ManyThreadsAtOnce) {
  constexpr int kThreads = 8;
  PosixProcessRunner runner;
  std::vector<std::string> outputs(kThreads);
  std::vector<bool> ok(kThreads, false);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        ProcessOptions opts;
        opts.argv = {"/bin/sh", "-c", "echo \"$0\"", "job-" + std::to_string(i)};
        opts.timeout_s = 20;
        StatusOr<ProcessResult> r = runner.Run(opts);
        ok[i] = r.ok() && r->Succeeded();
        if (!ok[i]) return;
        outputs[i] = r->stdout_data;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_TRUE(ok[i]) << i;
    EXPECT_EQ(outputs[i], "job-" + std::to_string(i) + "\n");
  }
}

TEST(ProcessRunnerTest, ChildDiesWithItsParent) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    // The helper runs `sleep 30` through the runner and reports its pid.
    ::close(report[0]);
    PosixProcessRunner runner;
    ProcessOptions opts;
    opts.argv = {"/bin/sh", "-c", "echo $$; exec sleep 30"};
    opts.on_stdout_line = [&](std::string_view line) {
      std::string msg = std::string(line) + "\n";
      ssize_t ignored = ::write(report[1], msg.data(), msg.size());
      (void)ignored;
    };
    (void)runner.Run(opts);
    ::_exit(0);
  }
  ::close(report[1]);
  std::string got;
  char c;
  while (::read(report[0], &c, 1) == 1 && c != '\n') got.push_back(c);
  ::close(report[0]);
  pid_t sleeper = std::atoi(got.c_str());
  ASSERT_GT(sleeper, 0) << "helper did not report a pid";
  EXPECT_FALSE(ProcessGone(sleeper));

  ::kill(helper, SIGKILL);
  int status;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  EXPECT_TRUE(EventuallyTrue([&] { return ProcessGone(sleeper); }))
      << "sleep " << sleeper << " outlived its SIGKILLed parent";
}

}  // namespace
}  // namespace reelfarm

// ---- stderr lines and memory cgroups (issue 10) ---------------------------

namespace reelfarm {
namespace {

TEST(ProcessRunnerTest, EveryStderrLineReachesTheCallbackHoweverLongTheLog) {
  ProcessOptions opts =
      Sh("echo 'FIRST malloc failed' >&2; i=0; while [ $i -lt 4000 ]; do "
         "echo 'noise noise noise noise' >&2; i=$((i+1)); done; printf 'last-no-newline' >&2");
  opts.stderr_tail_bytes = 100;
  std::vector<std::string> lines;
  opts.on_stderr_line = [&](std::string_view line) { lines.emplace_back(line); };
  ProcessResult r = MustRun(opts);
  ASSERT_EQ(lines.size(), 4002u);
  EXPECT_EQ(lines.front(), "FIRST malloc failed");
  EXPECT_EQ(lines.back(), "last-no-newline");
  EXPECT_THAT(r.stderr_tail, Not(HasSubstr("FIRST")));  // long gone from the tail
}

// The cgroup a test may create children in, or a skip with the reason.
#define REQUIRE_MEMORY_CGROUPS(parent)                                    \
  auto parent##_or = MemoryCgroupParent::Open("");                        \
  if (!parent##_or.ok()) GTEST_SKIP() << parent##_or.status().ToString(); \
  std::unique_ptr<MemoryCgroupParent> parent = std::move(*parent##_or)

TEST(MemoryCgroupTest, AProcessOverItsLimitIsKilledAndTheKillIsCounted) {
  REQUIRE_MEMORY_CGROUPS(parent);
  auto cg = parent->Create("reelfarm-test-" + std::to_string(::getpid()) + "-big", 64ull << 20);
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  // 256 MiB written (so really in use) under a 64 MiB limit.
  ProcessOptions opts;
  opts.argv = {"python3", "-c", "b = bytearray(b'x' * (256 << 20)); print(len(b))"};
  opts.timeout_s = 30;
  opts.cgroup_procs_file = (*cg)->procs_file();
  ProcessResult r = MustRun(opts);
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.term_signal, SIGKILL) << r.Describe() << r.stderr_tail;
  EXPECT_GE((*cg)->OomKills(), 1);
}

TEST(MemoryCgroupTest, APeakUnderTheLimitIsMeasuredAndTheCgroupRemoved) {
  REQUIRE_MEMORY_CGROUPS(parent);
  std::string dir;
  {
    auto cg =
        parent->Create("reelfarm-test-" + std::to_string(::getpid()) + "-small", 512ull << 20);
    ASSERT_TRUE(cg.ok()) << cg.status().ToString();
    dir = (*cg)->dir();
    ProcessOptions opts;
    opts.argv = {"python3", "-c", "b = bytearray(b'x' * (100 << 20)); print(len(b))"};
    opts.timeout_s = 30;
    opts.cgroup_procs_file = (*cg)->procs_file();
    ProcessResult r = MustRun(opts);
    EXPECT_TRUE(r.Succeeded()) << r.Describe() << r.stderr_tail;
    EXPECT_EQ((*cg)->OomKills(), 0);
    EXPECT_GE((*cg)->PeakBytes(), 100ull << 20);
    EXPECT_LT((*cg)->PeakBytes(), 512ull << 20);
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << "removed with its handle";
}

TEST(MemoryCgroupTest, NamesThatLeaveTheParentAreRefused) {
  REQUIRE_MEMORY_CGROUPS(parent);
  EXPECT_FALSE(parent->Create("../escape", 1 << 20).ok());
  EXPECT_FALSE(parent->Create("", 1 << 20).ok());
}

}  // namespace
}  // namespace reelfarm
