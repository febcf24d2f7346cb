// JobExecutor with real FFmpeg and ffprobe on a tiny generated source.
#include "worker/job_executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/memory_cgroup.h"
#include "common/probe.h"
#include "common/process_runner.h"
#include "tests/support/media_fixtures.h"
#include "worker/package.h"

namespace reelfarm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr uint64_t kToken = 42;

class JobExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    source_dir_ = new std::string(testing::MakeTempDir("reelfarm-exec-src"));
    source_ = new std::string(
        testing::GenerateSource(testing::SourceKind::kPlain, *source_dir_ + "/source.mov", 1.0));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*source_dir_, ec);
    delete source_dir_;
    delete source_;
  }

  void SetUp() override {
    ASSERT_FALSE(source_->empty());
    dir_ = testing::MakeTempDir("reelfarm-exec");
    final_ = dir_ + "/web/web-180.mp4";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // ffmpeg argv prefix as the planner writes it.
  static std::vector<std::string> Prefix() {
    return {"ffmpeg",  "-hide_banner", "-nostdin",  "-y",    "-loglevel",
            "warning", "-nostats",     "-progress", "pipe:1"};
  }

  // One job: the source to a 320x180 H.264 + AAC mp4 at final_.
  pb::Assign Mp4Assign(int expect_height = 180) const {
    pb::Assign a;
    a.set_token(kToken);
    a.set_attempt(1);
    pb::Job* job = a.mutable_job();
    job->set_id("d.0");
    job->set_kind("encode");
    for (const auto& s : Prefix()) job->add_argv(s);
    for (const auto& s : std::vector<std::string>{"-protocol_whitelist",
                                                  "file",
                                                  "-f",
                                                  "mov",
                                                  "-i",
                                                  *source_,
                                                  "-map",
                                                  "0:v:0",
                                                  "-map",
                                                  "0:a:0",
                                                  "-c:v",
                                                  "libx264",
                                                  "-preset",
                                                  "ultrafast",
                                                  "-pix_fmt",
                                                  "yuv420p",
                                                  "-c:a",
                                                  "aac",
                                                  "-f",
                                                  "mp4",
                                                  final_}) {
      job->add_argv(s);
    }
    job->add_inputs(*source_);
    job->set_media_duration_s(1.0);
    job->set_timeout_s(60);
    pb::JobOutput* out = job->add_outputs();
    out->set_deliverable("web");
    out->set_preset("web-h264");
    out->set_path(final_);
    pb::MediaInfo* e = out->mutable_expect();
    e->set_format_name("mp4");
    e->set_has_video(true);
    e->set_video_codec("h264");
    e->set_width(320);
    e->set_height(expect_height);
    e->set_pix_fmt("yuv420p");
    e->set_fps_num(25);
    e->set_fps_den(1);
    e->set_duration_s(1.0);
    e->set_has_audio(true);
    e->set_audio_codec("aac");
    e->set_audio_channels(2);
    return a;
  }

  // Adds a second output to `a`: the audio as 24-bit WAV in dir_/audio/;
  // returns its path.
  std::string AddWavOutput(pb::Assign* a) const {
    std::string wav = dir_ + "/audio/mix.wav";
    for (const auto& s :
         std::vector<std::string>{"-map", "0:a:0", "-c:a", "pcm_s24le", "-f", "wav", wav}) {
      a->mutable_job()->add_argv(s);
    }
    pb::JobOutput* out = a->mutable_job()->add_outputs();
    out->set_deliverable("audio");
    out->set_path(wav);
    out->mutable_expect()->set_format_name("wav");
    out->mutable_expect()->set_has_audio(true);
    out->mutable_expect()->set_audio_codec("pcm_s24le");
    out->mutable_expect()->set_duration_s(1.0);
    return wav;
  }

  // A job that would run for 30 s (real-time input), for timeouts and cancels.
  pb::Assign SlowAssign(double timeout_s) const {
    pb::Assign a;
    a.set_token(kToken);
    pb::Job* job = a.mutable_job();
    job->set_id("d.slow");
    for (const auto& s : Prefix()) job->add_argv(s);
    for (const auto& s :
         std::vector<std::string>{"-re", "-f", "lavfi", "-i", "testsrc=s=64x64:r=25:d=30", "-c:v",
                                  "mjpeg", "-f", "mov", final_}) {
      job->add_argv(s);
    }
    job->set_media_duration_s(30);
    job->set_timeout_s(timeout_s);
    pb::JobOutput* out = job->add_outputs();
    out->set_deliverable("slow");
    out->set_path(final_);
    return a;
  }

  // Everything under dir_ that is a file (finals and temporaries).
  std::vector<std::string> FilesLeft() const {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.is_regular_file()) files.push_back(e.path().string());
    }
    return files;
  }

  pb::JobResult Run(const pb::Assign& a, JobExecutorOptions options = {},
                    const JobExecutor::ProgressFn& progress = nullptr,
                    const std::atomic<bool>* cancel = nullptr) {
    JobExecutor executor(&runner_, std::move(options), &clock_);
    return executor.Execute(a, progress, cancel);
  }

  static std::string* source_dir_;
  static std::string* source_;
  PosixProcessRunner runner_;
  RealClock clock_;
  std::string dir_;
  std::string final_;
};

std::string* JobExecutorTest::source_dir_ = nullptr;
std::string* JobExecutorTest::source_ = nullptr;

TEST(TempPathTest, HiddenBesideTheFinalAndUniquePerToken) {
  EXPECT_EQ(TempPathFor("/out/film/web.mp4", 7), "/out/film/.web.mp4.7.part");
  EXPECT_NE(TempPathFor("/out/film/web.mp4", 7), TempPathFor("/out/film/web.mp4", 8));
}

TEST_F(JobExecutorTest, PublishesAVerifiedOutput) {
  std::vector<pb::Progress> progress;
  pb::JobResult r = Run(Mp4Assign(), {}, [&](const pb::Progress& p) { progress.push_back(p); });
  ASSERT_TRUE(r.ok()) << r.error() << "\n" << r.log_tail();
  EXPECT_EQ(r.job_id(), "d.0");
  EXPECT_EQ(r.token(), kToken);
  EXPECT_GT(r.encode_seconds(), 0);
  ASSERT_EQ(r.outputs_size(), 1);
  const pb::OutputResult& out = r.outputs(0);
  EXPECT_EQ(out.deliverable(), "web");
  EXPECT_EQ(out.path(), final_);
  EXPECT_EQ(out.bytes(), static_cast<int64_t>(fs::file_size(final_)));
  EXPECT_EQ(out.media().height(), 180);
  EXPECT_EQ(out.media().video_codec(), "h264");

  // The recorded hash is the published file's, computed independently.
  std::string sha_out;
  ASSERT_EQ(testing::RunArgv({"sha256sum", final_}, &sha_out), 0);
  EXPECT_EQ(out.sha256(), sha_out.substr(0, 64));
  EXPECT_EQ(Sha256File(final_).value(), out.sha256());

  EXPECT_THAT(FilesLeft(), ::testing::ElementsAre(final_));  // no *.part left

  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().job_id(), "d.0");
  EXPECT_EQ(progress.back().token(), kToken);
  EXPECT_DOUBLE_EQ(progress.back().fraction(), 1.0);
  EXPECT_GT(progress.back().frame(), 0);
  for (const auto& p : progress) {
    EXPECT_GE(p.fraction(), 0.0);
    EXPECT_LE(p.fraction(), 1.0);
  }
}

TEST_F(JobExecutorTest, PublishesSeveralOutputsOfOneProcess) {
  pb::Assign a = Mp4Assign();
  const std::string wav = AddWavOutput(&a);

  pb::JobResult r = Run(a);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r.outputs_size(), 2);
  EXPECT_EQ(r.outputs(1).path(), wav);
  EXPECT_EQ(r.outputs(1).media().audio_codec(), "pcm_s24le");
  EXPECT_TRUE(fs::exists(final_));
  EXPECT_TRUE(fs::exists(wav));
  EXPECT_EQ(FilesLeft().size(), 2u);
}

// Issue 12, item 14: what reached its final name is reported, not hidden.
TEST_F(JobExecutorTest, ARenameFailingPartWayReportsExactlyWhatWasPublished) {
  pb::Assign a = Mp4Assign();
  const std::string wav = AddWavOutput(&a);
  // A non-empty folder at the second output's final name: its rename fails
  // after the first output's succeeded.
  fs::create_directories(wav);
  std::ofstream(wav + "/in-the-way") << "x";

  pb::JobResult r = Run(a);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable()) << "a rerun would rename over the published output";
  EXPECT_THAT(r.error(), HasSubstr("cannot publish audio: rename to " + wav));
  EXPECT_THAT(r.error(), HasSubstr("(published: web)"));
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_EQ(r.outputs(0).deliverable(), "web");
  EXPECT_EQ(r.outputs(0).sha256(), Sha256File(final_).value());
  EXPECT_THAT(FilesLeft(), ::testing::UnorderedElementsAre(final_, wav + "/in-the-way"))
      << "no temporary left behind";
}

TEST_F(JobExecutorTest, AStaleTemporaryOfTheAttemptIsReplaced) {
  fs::create_directories(fs::path(final_).parent_path());
  std::ofstream(TempPathFor(final_, kToken)) << "junk from a crashed run";
  pb::JobResult r = Run(Mp4Assign());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_THAT(FilesLeft(), ::testing::ElementsAre(final_));
}

TEST_F(JobExecutorTest, VerificationMismatchPublishesNothing) {
  pb::JobResult r = Run(Mp4Assign(/*expect_height=*/720));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_EQ(r.error(), "verification failed for web: height 180, expected 720");
  EXPECT_EQ(r.outputs_size(), 0);
  EXPECT_FALSE(fs::exists(final_));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, FailingFfmpegLeavesNothing) {
  JobExecutorOptions options;
  options.ffmpeg_override = "/bin/false";
  pb::JobResult r = Run(Mp4Assign(), options);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_EQ(r.error(), "ffmpeg exited with code 1");
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, FfmpegErrorNamesItsLastMeaningfulLine) {
  pb::Assign a = Mp4Assign();
  // An encoder option x264 refuses.
  auto* argv = a.mutable_job()->mutable_argv();
  for (int i = 0; i < argv->size(); ++i) {
    if (argv->Get(i) == "ultrafast") *argv->Mutable(i) = "no-such-preset";
  }
  pb::JobResult r = Run(a);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_THAT(r.error(), StartsWith("ffmpeg exited with code 1: "));
  // The error line, not a generic trailer or a later warning ("[aac @ 0x..]
  // 2 frames left in the queue on closing").
  EXPECT_THAT(r.error(), HasSubstr("Error"));
  EXPECT_THAT(r.error(), ::testing::Not(HasSubstr("Conversion failed")));
  EXPECT_THAT(r.error(), ::testing::Not(HasSubstr("frames left")));
  EXPECT_THAT(r.error(), ::testing::Not(HasSubstr(" @ 0x")));
  EXPECT_THAT(r.log_tail(), HasSubstr("no-such-preset"));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, MissingSourceIsNotRetryable) {
  pb::Assign a = Mp4Assign();
  std::string missing = dir_ + "/gone.mov";
  auto* argv = a.mutable_job()->mutable_argv();
  for (int i = 0; i < argv->size(); ++i) {
    if (argv->Get(i) == *source_) *argv->Mutable(i) = missing;
  }
  a.mutable_job()->set_inputs(0, missing);
  pb::JobResult r = Run(a);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_THAT(r.error(), StartsWith("source " + missing + " is missing"));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, MissingProgramIsRetryable) {
  JobExecutorOptions options;
  options.ffmpeg_override = "/nonexistent/ffmpeg";
  pb::JobResult r = Run(Mp4Assign(), options);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_THAT(r.error(), HasSubstr("cannot run /nonexistent/ffmpeg"));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, ArgvMustNameEachOutput) {
  pb::Assign a = Mp4Assign();
  a.mutable_job()->mutable_outputs(0)->set_path(dir_ + "/elsewhere.mp4");
  pb::JobResult r = Run(a);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_THAT(r.error(), HasSubstr("does not name its output"));
}

TEST_F(JobExecutorTest, MemoryLimitStopsAnEncodeThatNeedsMoreAndSaysSoRetryably) {
  pb::Assign a = Mp4Assign();
  // The worker's ceiling: enough to load FFmpeg, too little for the
  // encoder's frames.
  JobExecutorOptions options;
  options.memory_limit_bytes = uint64_t{300} << 20;
  pb::JobResult r = Run(a, options);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable()) << "fewer threads or another host may fit";
  EXPECT_TRUE(r.out_of_memory());
  EXPECT_THAT(r.error(), HasSubstr("ran out of memory under its limit of 300 MiB"));
  EXPECT_THAT(FilesLeft(), IsEmpty());
  // The same job within its planned need publishes.
  options.memory_limit_bytes = 0;
  a.mutable_job()->set_memory_mb(1100);
  EXPECT_TRUE(Run(a, options).ok());
  // Turned off, the job's own need is not enforced.
  a.mutable_job()->set_memory_mb(40);
  options.job_memory_limits = false;
  fs::remove_all(dir_ + "/web");
  EXPECT_TRUE(Run(a, options).ok());
}

TEST_F(JobExecutorTest, MemoryInUseOverTheJobsNeedIsKilledByItsCgroupAndRetryable) {
  auto parent = MemoryCgroupParent::Open("");
  if (!parent.ok()) GTEST_SKIP() << parent.status().ToString();
  pb::Assign a = Mp4Assign();
  // Far below what x264 holds in memory of its own (about 16 MiB here for
  // this tiny picture: shared library pages already cached are charged to
  // the cgroup that first read them, not this one).
  a.mutable_job()->set_memory_mb(4);
  a.mutable_job()->set_memory_per_thread_mb(1);
  JobExecutorOptions options;
  options.threads = 1;
  options.cgroups = parent->get();
  pb::JobResult r = Run(a, options);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_TRUE(r.out_of_memory()) << r.error();
  EXPECT_THAT(r.error(), HasSubstr("cgroup limit of 5 MiB"));
  EXPECT_THAT(FilesLeft(), IsEmpty());
  // Within its need it publishes, and the peak in use is reported.
  a.mutable_job()->set_memory_mb(1100);
  r = Run(a, options);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_GT(r.peak_memory_bytes(), uint64_t{10} << 20);
  EXPECT_LT(r.peak_memory_bytes(), uint64_t{1108} << 20);
  std::cout << "[ figures ] 320x180 x264, 1 thread: peak " << (r.peak_memory_bytes() >> 20)
            << " MiB in use\n";
}

TEST_F(JobExecutorTest, InputsAndOutputsOutsideTheAllowedRootsAreRefused) {
  JobExecutorOptions options;
  options.allowed_roots = {dir_};
  pb::JobResult r = Run(Mp4Assign(), options);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_THAT(r.error(), HasSubstr("is outside this worker's allowed folders"));
  options.allowed_roots = {dir_, *source_dir_};
  EXPECT_TRUE(Run(Mp4Assign(), options).ok());
}

TEST_F(JobExecutorTest, TimeoutFailsAndCleansUp) {
  pb::JobResult r = Run(SlowAssign(/*timeout_s=*/0.5));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.retryable());
  EXPECT_EQ(r.error(), "ffmpeg timed out after 0.5 s");
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, CancelStopsTheAttempt) {
  std::atomic<bool> cancel{false};
  int samples = 0;
  // Cancel once FFmpeg reports progress, i.e. the output exists and grows.
  pb::JobResult r = Run(
      SlowAssign(/*timeout_s=*/60), {},
      [&](const pb::Progress& p) {
        ++samples;
        cancel = true;
      },
      &cancel);
  EXPECT_GE(samples, 1);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_EQ(r.error(), "cancelled");
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorTest, RunProbeReadsOddNamesLiterally) {
  // A leading '-' and a ':' would be an option and a protocol to ffprobe.
  std::string odd = dir_ + "/-odd:name.mov";
  fs::copy_file(*source_, odd);
  StatusOr<std::string> json = RunProbe(runner_, "ffprobe", odd);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(*json);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->width(), 320);
  EXPECT_NEAR(info->duration_s(), 1.0, 0.1);

  // A relative name starting with '-' too.
  std::string cwd = fs::current_path();
  fs::current_path(dir_);
  StatusOr<std::string> rel = RunProbe(runner_, "ffprobe", "-odd:name.mov");
  fs::current_path(cwd);
  EXPECT_TRUE(rel.ok()) << rel.status().ToString();
}

TEST_F(JobExecutorTest, RunProbeExplainsWhatItCannotRead) {
  std::string missing = dir_ + "/missing.mov";
  StatusOr<std::string> json = RunProbe(runner_, "ffprobe", missing);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(json.status().message(), StartsWith("ffprobe could not read " + missing + ": "));
  EXPECT_THAT(json.status().message(), HasSubstr("No such file or directory"));

  std::string text = dir_ + "/empty.mov";
  std::ofstream{text};
  json = RunProbe(runner_, "ffprobe", text);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), Status::Code::kInvalidArgument);

  json = RunProbe(runner_, "reelfarm-no-such-ffprobe", text);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// Publish fencing: a refused or expired grant publishes nothing.
class JobExecutorGateTest : public JobExecutorTest {
 protected:
  pb::JobResult RunGated(const JobExecutor::PublishGate& gate) {
    JobExecutor executor(&runner_, {}, &clock_);
    return executor.Execute(Mp4Assign(), nullptr, nullptr, gate);
  }
};

TEST_F(JobExecutorGateTest, RefusedGrantPublishesNothing) {
  int asked = 0;
  pb::JobResult r = RunGated([&]() -> StatusOr<std::chrono::steady_clock::time_point> {
    ++asked;
    EXPECT_FALSE(fs::exists(final_)) << "asked only before any rename";
    return Status::Cancelled("the coordinator gave this job to a newer attempt");
  });
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("not published"));
  EXPECT_FALSE(fs::exists(final_));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorGateTest, ExpiredGrantPublishesNothing) {
  pb::JobResult r = RunGated([]() -> StatusOr<std::chrono::steady_clock::time_point> {
    return std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  });
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("expired"));
  EXPECT_FALSE(fs::exists(final_));
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorGateTest, ACancelArrivingWithTheGrantPublishesNothing) {
  std::atomic<bool> cancel{false};
  JobExecutor executor(&runner_, {}, &clock_);
  pb::JobResult r = executor.Execute(
      Mp4Assign(), nullptr, &cancel, [&]() -> StatusOr<std::chrono::steady_clock::time_point> {
        cancel = true;  // the cancel arrives just after the grant
        return std::chrono::steady_clock::now() + std::chrono::seconds(30);
      });
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_THAT(r.error(), HasSubstr("cancelled before web was published"));
  EXPECT_EQ(r.outputs_size(), 0);
  EXPECT_THAT(FilesLeft(), IsEmpty());
}

TEST_F(JobExecutorGateTest, GrantedPublishes) {
  pb::JobResult r = RunGated([]() -> StatusOr<std::chrono::steady_clock::time_point> {
    return std::chrono::steady_clock::now() + std::chrono::seconds(30);
  });
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(fs::exists(final_));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// ---- streaming packages (issue 13) -------------------------------------------------------

// One FFmpeg encoding the 1 s source into a two-rendition HLS package (two
// sizes, 5-frame segments) and its sound, as a package job names them.
pb::Assign PackageAssign(const std::string& source, const std::string& folder, int top_width) {
  pb::Assign a;
  a.set_token(kToken);
  pb::Job* job = a.mutable_job();
  job->set_id("d.package");
  job->set_kind("package");
  for (const auto& s : std::vector<std::string>{"ffmpeg",
                                                "-hide_banner",
                                                "-nostdin",
                                                "-y",
                                                "-loglevel",
                                                "warning",
                                                "-nostats",
                                                "-protocol_whitelist",
                                                "file",
                                                "-f",
                                                "mov",
                                                "-i",
                                                source,
                                                "-filter_complex",
                                                "[0:v:0]split=2[a][b];[b]scale=160:90[c]",
                                                "-map",
                                                "[a]",
                                                "-map",
                                                "[c]",
                                                "-map",
                                                "0:a:0",
                                                "-c:v",
                                                "libx264",
                                                "-preset",
                                                "ultrafast",
                                                "-g",
                                                "5",
                                                "-keyint_min",
                                                "5",
                                                "-sc_threshold",
                                                "0",
                                                "-pix_fmt",
                                                "yuv420p",
                                                "-c:a",
                                                "aac",
                                                "-f",
                                                "hls",
                                                "-hls_time",
                                                "0.200000",
                                                "-hls_playlist_type",
                                                "vod",
                                                "-hls_segment_type",
                                                "fmp4",
                                                "-hls_fmp4_init_filename",
                                                "init.mp4",
                                                "-hls_segment_filename",
                                                folder + "/%v/seg_%05d.m4s",
                                                "-var_stream_map",
                                                "v:0,name:v180 v:1,name:v90 a:0,name:audio",
                                                folder + "/%v/index.m3u8"}) {
    job->add_argv(s);
  }
  job->add_inputs(source);
  job->set_media_duration_s(1.0);
  job->set_timeout_s(60);
  pb::JobOutput* out = job->add_outputs();
  out->set_deliverable("stream");
  out->set_preset("hls-h264");
  out->set_path(folder);
  out->set_relative_path("stream");
  pb::StreamingPackage* pkg = out->mutable_package();
  pkg->set_master("master.m3u8");
  pkg->set_segment_s(0.2);
  const std::vector<std::pair<int, int>> sizes = {{top_width, 180}, {160, 90}};
  for (const auto& [w, h] : sizes) {
    pb::Rendition* r = pkg->add_renditions();
    r->set_name("v" + std::to_string(h));
    r->set_playlist(r->name() + "/index.m3u8");
    r->mutable_expect()->set_has_video(true);
    r->mutable_expect()->set_video_codec("h264");
    r->mutable_expect()->set_width(w);
    r->mutable_expect()->set_height(h);
    r->mutable_expect()->set_duration_s(1.0);
  }
  pb::Rendition* r = pkg->add_renditions();
  r->set_name("audio");
  r->set_playlist("audio/index.m3u8");
  r->set_audio(true);
  r->mutable_expect()->set_has_audio(true);
  r->mutable_expect()->set_audio_codec("aac");
  return a;
}

TEST_F(JobExecutorTest, APackageIsCheckedGivenItsMasterAndPublishedWhole) {
  const std::string folder = dir_ + "/stream";
  pb::JobResult r = Run(PackageAssign(*source_, folder, 320));
  ASSERT_TRUE(r.ok()) << r.error() << "\n" << r.log_tail();
  ASSERT_EQ(r.outputs_size(), 1);
  const pb::OutputResult& out = r.outputs(0);
  EXPECT_EQ(out.path(), folder);
  ASSERT_EQ(out.renditions_size(), 3);
  EXPECT_EQ(out.renditions(0).width(), 320);
  EXPECT_EQ(out.renditions(0).segments(), 5);
  // x264 ultrafast: Constrained Baseline (profile 66, constraint flags c0).
  EXPECT_THAT(out.renditions(0).codecs(), StartsWith("avc1.42c0"));
  EXPECT_EQ(out.renditions(2).codecs(), "mp4a.40.2");
  EXPECT_GT(out.renditions(0).peak_bps(), out.renditions(1).peak_bps());
  const std::string master = testing::ReadFileBytes(folder + "/master.m3u8");
  EXPECT_THAT(master, HasSubstr("RESOLUTION=320x180"));
  EXPECT_THAT(master, HasSubstr("RESOLUTION=160x90"));
  EXPECT_THAT(master, HasSubstr("URI=\"audio/index.m3u8\""));
  // Every file listed once, hashed; sizes add up; nothing else left here.
  std::vector<std::string> listed;
  int64_t bytes = 0;
  for (const auto& f : out.files()) {
    listed.push_back(folder + "/" + f.relative_path());
    EXPECT_EQ(f.bytes(), static_cast<int64_t>(fs::file_size(folder + "/" + f.relative_path())));
    EXPECT_EQ(f.sha256(), *Sha256File(folder + "/" + f.relative_path()));
    bytes += f.bytes();
  }
  EXPECT_EQ(out.bytes(), bytes);
  std::vector<std::string> files = FilesLeft();
  std::sort(files.begin(), files.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(files, listed) << "no temporary left beside the package";

  // A file no playlist names is never part of a package.
  const pb::Assign assign = PackageAssign(*source_, folder, 320);
  std::ofstream(folder + "/v90/notes.txt") << "not media";
  StatusOr<FinishedPackage> stray =
      FinishPackage(runner_, "ffprobe", folder, assign.job().outputs(0));
  EXPECT_FALSE(stray.ok());
  EXPECT_THAT(stray.status().message(), HasSubstr("v90/notes.txt, which no playlist names"));
  fs::remove(folder + "/v90/notes.txt");

  // Again over it: the new package replaces the earlier one whole (an old
  // segment the new one does not have is gone).
  std::ofstream(folder + "/v90/seg_00099.m4s") << "from an earlier package";
  pb::JobResult again = Run(assign);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_FALSE(fs::exists(folder + "/v90/seg_00099.m4s"));
  EXPECT_TRUE(fs::exists(folder + "/master.m3u8"));
}

TEST_F(JobExecutorTest, AQualityFloorAloneIsMeasuredOnAPictureWithoutSound) {
  // A video-only output whose only gate is an SSIM floor against the source.
  pb::Assign a;
  a.set_token(kToken);
  pb::Job* job = a.mutable_job();
  job->set_id("d.q");
  for (const auto& s : Prefix()) job->add_argv(s);
  for (const auto& s : std::vector<std::string>{
           "-protocol_whitelist", "file", "-f", "mov", "-i", *source_, "-map", "0:v:0", "-c:v",
           "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", final_}) {
    job->add_argv(s);
  }
  job->add_inputs(*source_);
  job->set_media_duration_s(1.0);
  job->set_timeout_s(60);
  pb::JobOutput* out = job->add_outputs();
  out->set_deliverable("web");
  out->set_path(final_);
  out->mutable_expect()->set_has_video(true);
  out->mutable_expect()->set_video_codec("h264");
  pb::QcGates* qc = out->mutable_qc();
  qc->set_ssim_min(0.5);
  qc->set_reference_filter("format=yuv420p");
  qc->set_reference_format("mov");
  qc->set_reference_path(*source_);
  qc->set_sample_every(5);
  pb::JobResult r = Run(a);
  ASSERT_TRUE(r.ok()) << r.error() << "\n" << r.log_tail();
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_TRUE(r.outputs(0).qc().measured().quality_measured());
  EXPECT_GT(r.outputs(0).qc().measured().ssim(), 0.9);
}

TEST_F(JobExecutorTest, APackageNeverReplacesWhatItDidNotMake) {
  const std::string folder = dir_ + "/stream";
  fs::create_directories(folder);
  std::ofstream(folder + "/keep.txt") << "a user's file";
  pb::JobResult r = Run(PackageAssign(*source_, folder, 320));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable()) << "no attempt can publish there";
  EXPECT_THAT(r.error(), HasSubstr("already exists and is not a package reelfarm made"));
  EXPECT_EQ(FilesLeft(), std::vector<std::string>{folder + "/keep.txt"})
      << "the user's folder is untouched and the attempt's temporary folder is gone";
}

TEST_F(JobExecutorTest, APackageThatFailsItsCheckNeverAppears) {
  const std::string folder = dir_ + "/stream";
  // The plan wants its top rendition 640 wide; FFmpeg makes it 320.
  pb::JobResult r = Run(PackageAssign(*source_, folder, 640));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable()) << "the same job makes the same package";
  EXPECT_THAT(r.error(), HasSubstr("rendition v180: width 320, expected 640"));
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_THAT(FilesLeft(), IsEmpty()) << "the attempt's temporary folder is gone too";

  // A plan naming a playlist outside the package is refused, not followed.
  pb::Assign outside = PackageAssign(*source_, folder, 320);
  outside.mutable_job()->mutable_outputs(0)->mutable_package()->mutable_renditions(0)->set_playlist(
      "../v180/index.m3u8");
  r = Run(outside);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("is not inside the package's folder"));
  EXPECT_FALSE(fs::exists(folder));
}

}  // namespace
}  // namespace reelfarm
