// SubmissionPipeline: the one parse -> roots -> files -> probe -> plan path
// of Coordinator::Submit and `reelfarm plan`.
#include "planning/submission.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/fake_probe_runner.h"

namespace reelfarm {
namespace {

using testing::FakeProbeRunner;

class SubmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("reelfarm-submission-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "master.mov", std::ios::binary) << "first bytes of a movie";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Submission Run(const std::string& spec, SubmissionOptions options = {}) {
    return SubmissionPipeline(options, &runner_, &cache_).Run(spec, "spec.yaml", dir_.string());
  }

  std::filesystem::path dir_;
  FakeProbeRunner runner_;
  ProbeCache cache_;
};

constexpr char kSpec[] = R"(version: 1
name: film
source: master.mov
deliverables:
  - name: web
    preset: web-h264
  - name: social
    preset: social-h264
  - name: poster
    preset: thumbnail-jpg
)";

TEST_F(SubmissionTest, AValidSpecIsProbedOnceAndPlannedByCost) {
  SubmissionOptions options;
  Submission s = Run(kSpec, options);
  ASSERT_TRUE(s.ok()) << s.errors.front().ToString();
  ASSERT_TRUE(s.spec.has_value());
  EXPECT_EQ(s.spec->name, "film");
  EXPECT_TRUE(s.probe_status.ok());
  // The source is measured once (loudness, QC); two cheap moving pictures
  // share a decode; the poster is alone.
  ASSERT_EQ(s.plan.jobs_size(), 3);
  EXPECT_EQ(s.plan.jobs(0).kind(), "analyse");
  EXPECT_EQ(s.plan.jobs(1).kind(), "group");
  ASSERT_EQ(s.plan.jobs(1).depends_on_size(), 1);
  EXPECT_EQ(s.plan.jobs(1).depends_on(0), "analyse");
  EXPECT_EQ(s.plan.source().width(), 320);

  ASSERT_TRUE(Run(kSpec).ok());
  EXPECT_EQ(runner_.runs, 1);  // the second probe came from the cache
}

TEST_F(SubmissionTest, ParseErrorsStopBeforeAnyProbe) {
  Submission s = Run("version: 1\nname: film\n");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(s.spec.has_value());
  EXPECT_EQ(s.errors.front().file, "spec.yaml");
  EXPECT_EQ(runner_.runs, 0);
}

TEST_F(SubmissionTest, ASourceOutsideTheAllowedFoldersIsRefusedUnprobed) {
  SubmissionOptions options;
  options.allowed_roots = {(dir_ / "elsewhere").string()};
  std::filesystem::create_directories(dir_ / "elsewhere");
  Submission s = Run(kSpec, options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.errors.front().field, "source");
  EXPECT_EQ(runner_.runs, 0);
}

TEST_F(SubmissionTest, AMissingSourceIsASpecErrorUnprobed) {
  std::filesystem::remove(dir_ / "master.mov");
  Submission s = Run(kSpec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.errors.front().field, "source");
  EXPECT_EQ(s.errors.front().line, 3);
  EXPECT_TRUE(s.probe_status.ok());
  EXPECT_EQ(runner_.runs, 0);
}

TEST_F(SubmissionTest, AFailedProbeIsOneErrorOnTheSourceWithItsStatus) {
  runner_.fail = true;
  Submission s = Run(kSpec);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].field, "source");
  EXPECT_EQ(s.errors[0].line, 3);
  EXPECT_FALSE(s.probe_status.ok());
  EXPECT_EQ(s.errors[0].message, s.probe_status.message());
}

TEST_F(SubmissionTest, PlannerErrorsAreSpecErrors) {
  Submission s = Run(std::string(kSpec) + "    at: 5\n");  // the source is 2 s long
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].field, "deliverables[2].at");
  EXPECT_EQ(s.errors[0].line, 11);
  EXPECT_FALSE(s.spec.has_value());
}

}  // namespace
}  // namespace reelfarm
