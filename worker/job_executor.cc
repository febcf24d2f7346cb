#include "worker/job_executor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "common/fs_util.h"
#include "common/output_cache.h"
#include "common/probe.h"
#include "common/qc.h"
#include "common/secure.h"
#include "common/thread_budget.h"
#include "worker/package.h"
#include "worker/progress_parser.h"

namespace reelfarm {
namespace {

namespace fs = std::filesystem;

constexpr size_t kLogTailBytes = 8192;

double Seconds(SteadyTime since, SteadyTime now) {
  return std::chrono::duration<double>(now - since).count();
}

// "30", "2.5": a timeout as people write it.
std::string FormatSeconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// The line of FFmpeg's log that best says why it failed: the last one that
// reads like an error, else the last non-empty one. Generic trailers
// ("Conversion failed!") are skipped, "[libx264 @ 0x55d0c8] msg" reads
// "libx264: msg", and the result is capped at 300 characters.
std::string LastMeaningfulLine(const std::string& log) {
  static const std::regex kContext(R"(^\[([^\]@]+) @ 0x[0-9a-fA-F]+\] *)");
  static const std::regex kErrorish(
      R"(error|invalid|no such|not found|failed|unable|cannot|could not|denied|unknown)",
      std::regex::icase);
  std::istringstream in(log);
  std::string line, last, last_error;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line == "Conversion failed!" || line.rfind("frame=", 0) == 0 ||
        line.rfind("size=", 0) == 0) {
      continue;
    }
    std::smatch m;
    if (std::regex_search(line, m, kContext)) {
      std::string who = m[1].str();
      while (!who.empty() && who.back() == ' ') who.pop_back();
      line = who + ": " + line.substr(m[0].length());
    }
    last = line;
    if (std::regex_search(line, kErrorish)) last_error = line;
  }
  std::string out = last_error.empty() ? last : last_error;
  if (out.size() > 300) out = out.substr(0, 297) + "...";
  return out;
}

// Why an input of the job cannot be used, "" when each is a regular file.
// A missing source or one replaced by a FIFO/device is the job's problem, not
// the host's: no retry can fix it. stat() does not open, so a FIFO cannot
// block here.
// How an error names the job's input `i`: its first is the source; a
// subtitle file says so; other inputs (parts) are inputs.
std::string InputName(const pb::Job& job, int i) {
  const std::string& path = job.inputs(i);
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* sub : {".srt", ".ass", ".ssa", ".vtt"}) {
    if (ext == sub) return "subtitle file " + path;
  }
  return (i == 0 ? "source " : "input ") + path;
}

std::string InputProblem(const pb::Job& job) {
  for (int i = 0; i < job.inputs_size(); ++i) {
    std::error_code ec;
    fs::file_status st = fs::status(job.inputs(i), ec);
    if (st.type() == fs::file_type::not_found) return InputName(job, i) + " is missing";
    if (ec) continue;  // unknown (e.g. a flaky mount): let FFmpeg try
    if (st.type() != fs::file_type::regular) {
      return InputName(job, i) + " is not a regular file (a FIFO, device or folder)";
    }
  }
  return "";
}

// True when FFmpeg's log says it failed on the input's data (truncated,
// corrupt, not media): the same source fails the same way on any host, so
// such a failure is not retried. A log that also shows host trouble (full
// disk, I/O error, no memory) stays retryable.
bool IsInputDataError(const std::string& log) {
  static const std::regex kInputData(
      R"(moov atom not found|Invalid data found when processing input|error reading header|)"
      R"(Error while decoding stream|could not find codec parameters|)"
      R"(Invalid NAL unit size|EBML header parsing failed)",
      std::regex::icase);
  static const std::regex kHost(
      R"(No space left|Input/output error|Cannot allocate memory|Permission denied|)"
      R"(Disk quota exceeded|Stale file handle)",
      std::regex::icase);
  return std::regex_search(log, kInputData) && !std::regex_search(log, kHost);
}

// The input FFmpeg's log blames: the one whose path begins an error line
// ("PATH: Invalid data found...") or that the subtitles filter could not
// open, longest paths first (a path may contain another); the source when
// none is named.
std::string FailingInput(const pb::Job& job, const std::string& log) {
  if (job.inputs_size() == 0) return "the input";
  std::vector<int> order(job.inputs_size());
  for (int i = 0; i < job.inputs_size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return job.inputs(a).size() > job.inputs(b).size(); });
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    for (int i : order) {
      const std::string& path = job.inputs(i);
      if (path.empty()) continue;
      // A demuxer's error, or the subtitles filter's (burned subtitles).
      if (line.rfind(path + ": ", 0) == 0 ||
          line.find("Unable to open " + path) != std::string::npos) {
        return InputName(job, i);
      }
    }
  }
  return InputName(job, 0);
}

// The first line of a log in which FFmpeg reports damaged input that it
// concealed (it still exits 0): a byte-flipped or half-written source. ""
// when there is none.
std::string ConcealedDamageLine(const std::string& log) {
  static const std::regex kDamage(
      R"(Error while decoding stream|corrupt decoded frame|: partial file|Packet corrupt)",
      std::regex::icase);
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (std::regex_search(line, kDamage)) {
      if (line.size() > 200) line = line.substr(0, 197) + "...";
      return line;
    }
  }
  return "";
}

double FrameDuration(const pb::MediaInfo& m) {
  if (m.fps_num() <= 0 || m.fps_den() <= 0) return 0.04;
  return static_cast<double>(m.fps_den()) / m.fps_num();
}

pb::JobResult Failure(const std::string& error, bool retryable, const std::string& log = "") {
  pb::JobResult r;
  r.set_ok(false);
  r.set_retryable(retryable);
  r.set_error(error);
  r.set_log_tail(log);
  return r;
}

// Removes temporary files (or a package's folders) that earlier attempts
// (smaller tokens) of the same output left behind, e.g. when their worker
// was killed, and those of any token untouched for longer than `stale_s`
// (left by an earlier farm whose tokens counted higher: no live attempt
// outlives its timeout). A newer attempt's live file is never touched.
void RemoveOlderTemps(const std::string& final_path, uint64_t token, double stale_s) {
  fs::path p(final_path);
  const std::string prefix = "." + p.filename().string() + ".";
  const std::string suffix = ".part";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(p.parent_path(), ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    uint64_t other = std::stoull(digits);
    bool stale = other < token;
    if (!stale) {
      const auto written = fs::last_write_time(entry.path(), ec);
      stale = !ec &&
              fs::file_time_type::clock::now() - written > std::chrono::duration<double>(stale_s);
    }
    if (stale) fs::remove_all(entry.path(), ec);  // a file, or a package's folder
  }
}

}  // namespace

std::string TempPathFor(const std::string& final_path, uint64_t token) {
  fs::path p(final_path);
  return (p.parent_path() / ("." + p.filename().string() + "." + std::to_string(token) + ".part"))
      .string();
}

std::string CompareMedia(const pb::MediaInfo& want, const pb::MediaInfo& got) {
  std::vector<std::string> bad;
  auto mismatch = [&](const std::string& field, const std::string& actual,
                      const std::string& expected) {
    bad.push_back(field + " " + actual + ", expected " + expected);
  };
  if (!want.format_name().empty() &&
      got.format_name().find(want.format_name()) == std::string::npos) {
    mismatch("format", got.format_name(), want.format_name());
  }
  if (want.has_video() != got.has_video()) {
    mismatch("video stream", got.has_video() ? "present" : "missing",
             want.has_video() ? "present" : "none");
  }
  if (want.has_audio() != got.has_audio()) {
    mismatch("audio stream", got.has_audio() ? "present" : "missing",
             want.has_audio() ? "present" : "none");
  }
  if (want.has_subtitle() != got.has_subtitle()) {
    mismatch("subtitle stream", got.has_subtitle() ? "present" : "missing",
             want.has_subtitle() ? "present" : "none");
  }
  if (want.has_video() && got.has_video()) {
    if (!want.video_codec().empty() && want.video_codec() != got.video_codec()) {
      mismatch("video codec", got.video_codec(), want.video_codec());
    }
    if (!want.video_profile().empty() && want.video_profile() != got.video_profile()) {
      mismatch("video profile", got.video_profile(), want.video_profile());
    }
    if (want.width() > 0 && want.width() != got.width()) {
      mismatch("width", std::to_string(got.width()), std::to_string(want.width()));
    }
    if (want.height() > 0 && want.height() != got.height()) {
      mismatch("height", std::to_string(got.height()), std::to_string(want.height()));
    }
    if (!want.pix_fmt().empty() && want.pix_fmt() != got.pix_fmt()) {
      mismatch("pixel format", got.pix_fmt(), want.pix_fmt());
    }
    if (want.fps_num() > 0 && want.fps_den() > 0) {
      double a = static_cast<double>(want.fps_num()) * got.fps_den();
      double b = static_cast<double>(got.fps_num()) * want.fps_den();
      if (got.fps_den() <= 0 || std::fabs(a - b) > 0.001 * std::fabs(a)) {
        mismatch("frame rate", std::to_string(got.fps_num()) + "/" + std::to_string(got.fps_den()),
                 std::to_string(want.fps_num()) + "/" + std::to_string(want.fps_den()));
      }
    }
    // Scan and colour tags: players read them, so they are checked like the
    // size (an empty expectation checks nothing). Names for the same thing
    // count as one: MXF, for one, records BT.601's transfer as BT.709's
    // (the same curve) and its 525- and 625-line matrices alike.
    auto canonical = [](const std::string& field, const std::string& v) -> std::string {
      if (field == "colour transfer" &&
          (v == "smpte170m" || v == "bt2020-10" || v == "bt2020-12")) {
        return "bt709";
      }
      if (field == "colour matrix" && v == "smpte170m") return "bt470bg";
      return v;
    };
    for (const auto& [field, w, g] :
         {std::tuple<std::string, const std::string&, const std::string&>{
              "field order", want.field_order(), got.field_order()},
          {"colour primaries", want.color_primaries(), got.color_primaries()},
          {"colour transfer", want.color_transfer(), got.color_transfer()},
          {"colour matrix", want.color_space(), got.color_space()},
          {"colour range", want.color_range(), got.color_range()}}) {
      if (!w.empty() && canonical(field, w) != canonical(field, g)) {
        mismatch(field, g.empty() ? "unset" : g, w);
      }
    }
    if (got.rotation() != want.rotation()) {
      mismatch("rotation", std::to_string(got.rotation()), std::to_string(want.rotation()));
    }
  }
  if (want.has_audio() && got.has_audio()) {
    if (!want.audio_codec().empty() && want.audio_codec() != got.audio_codec()) {
      mismatch("audio codec", got.audio_codec(), want.audio_codec());
    }
    if (want.audio_channels() > 0 && want.audio_channels() != got.audio_channels()) {
      mismatch("audio channels", std::to_string(got.audio_channels()),
               std::to_string(want.audio_channels()));
    }
    if (want.audio_sample_rate() > 0 && want.audio_sample_rate() != got.audio_sample_rate()) {
      mismatch("audio sample rate", std::to_string(got.audio_sample_rate()),
               std::to_string(want.audio_sample_rate()));
    }
  }
  if (want.has_subtitle() && got.has_subtitle() && !want.subtitle_codec().empty() &&
      want.subtitle_codec() != got.subtitle_codec()) {
    mismatch("subtitle codec", got.subtitle_codec(), want.subtitle_codec());
  }
  if (want.duration_s() > 0) {
    double tolerance = want.has_video() ? 2 * FrameDuration(want) + 0.05 : 0.1;
    if (std::fabs(got.duration_s() - want.duration_s()) > tolerance) {
      std::ostringstream a, e;
      a.precision(3);
      e.precision(3);
      a << std::fixed << got.duration_s() << " s";
      e << std::fixed << want.duration_s() << " s";
      mismatch("duration", a.str(), e.str());
    }
  }
  std::string out;
  for (const auto& b : bad) out += (out.empty() ? "" : "; ") + b;
  return out;
}

namespace {

// Whether `path` lies in the folder of one of the job's outputs (resolved).
bool InsideOutputFolders(const pb::Job& job, const std::string& path) {
  for (const auto& out : job.outputs()) {
    if (PathInsideRoots(path, {fs::path(out.path()).parent_path().string()})) return true;
  }
  return false;
}

// A QC pass over `out`'s attempt at `path` (verified, `probed`): the
// detectors `gates` need, run by `ffmpeg` under the attempt's limits. A
// streaming package is measured through its master playlist: its top
// rendition's picture and its sound.
StatusOr<pb::MediaAnalysis> MeasureOutput(ProcessRunner& runner, const std::string& ffmpeg,
                                          const pb::JobOutput& out, const std::string& path,
                                          const pb::QcGates& gates, const pb::MediaInfo& probed,
                                          double gain_db, int threads, const ProcessOptions& limits,
                                          const std::atomic<bool>* cancel) {
  const DetectorOptions o =
      QcDetectors(gates, probed.has_video(), probed.has_audio(), kSilenceThresholdDb + gain_db);
  if (!o.any()) return pb::MediaAnalysis();
  ProcessOptions popts;
  popts.argv = {ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-nostats",
                "-loglevel",
                "info",
                "-threads",
                std::to_string(std::max(1, threads)),
                "-protocol_whitelist",
                "file"};
  if (out.has_package()) {
    for (const char* a : {"-f", "hls", "-allowed_extensions", "mp4,m4s,m3u8"}) {
      popts.argv.push_back(a);
    }
    popts.argv.push_back("-i");
    popts.argv.push_back((fs::path(path) / out.package().master()).string());
  } else {
    popts.argv.push_back("-i");
    popts.argv.push_back(path);
  }
  if (o.quality) {
    // The source, as the planner's chains read it (stored orientation).
    for (const char* a : {"-noautorotate", "-protocol_whitelist", "file"}) {
      popts.argv.push_back(a);
    }
    if (!gates.reference_format().empty()) {
      popts.argv.push_back("-f");
      popts.argv.push_back(gates.reference_format());
    }
    popts.argv.push_back("-i");
    popts.argv.push_back(gates.reference_path());
  }
  for (auto& a : DetectorArgs(o)) popts.argv.push_back(a);
  // Decoding one output is a small part of making it.
  popts.timeout_s = 60 + (o.quality ? 10 : 2) * probed.duration_s();
  popts.memory_limit_bytes = limits.memory_limit_bytes;
  popts.env = limits.env;
  popts.cancel = cancel;
  popts.stderr_tail_bytes = 4096;
  AnalysisParser parser(o);
  popts.on_stderr_line = [&](std::string_view line) { parser.Feed(line); };
  StatusOr<ProcessResult> ran = runner.Run(popts);
  if (!ran.ok()) return ran.status();
  if (ran->cancelled) return Status::Cancelled("cancelled");
  if (!ran->Succeeded()) {
    return Status::Internal("ffmpeg " +
                            (ran->timed_out ? std::string("timed out") : ran->Describe()) + ": " +
                            LastMeaningfulLine(ran->stderr_tail));
  }
  return parser.Finish(probed.duration_s());
}

}  // namespace

uint64_t ResidentLimitFor(const pb::Job& job, const JobExecutorOptions& options, unsigned threads) {
  if (!options.job_memory_limits || job.memory_mb() == 0) return 0;
  const uint64_t per_thread = job.memory_per_thread_mb() > 0
                                  ? job.memory_per_thread_mb()
                                  : static_cast<uint64_t>(options.headroom_per_thread_mb);
  return (job.memory_mb() + per_thread * std::max(1u, threads)) << 20;
}

uint64_t AddressSpaceSlackMb(unsigned threads) {
  return 384 + 96 * static_cast<uint64_t>(std::max(1u, threads));
}

uint64_t MemoryLimitFor(const pb::Job& job, const JobExecutorOptions& options, unsigned threads) {
  uint64_t limit = ResidentLimitFor(job, options, threads);
  if (limit > 0) limit += AddressSpaceSlackMb(threads) << 20;
  if (options.memory_limit_bytes > 0 && (limit == 0 || options.memory_limit_bytes < limit)) {
    limit = options.memory_limit_bytes;
  }
  return limit;
}

int AttemptThreads(const JobExecutorOptions& options, const pb::Assign& assign,
                   unsigned hardware_threads) {
  int threads = options.threads > 0 ? options.threads : static_cast<int>(hardware_threads);
  if (assign.max_threads() > 0) threads = std::min(threads, assign.max_threads());
  return std::max(1, threads);
}

bool IsOutOfMemoryLine(std::string_view line) {
  static const std::regex kOom(
      R"(Cannot allocate memory|malloc of size [0-9]+ failed|[Oo]ut of memory|std::bad_alloc)");
  return std::regex_search(line.begin(), line.end(), kOom);
}

bool IsGpuUnavailableLine(std::string_view line) {
  static const std::regex kGpu(
      R"(nvenc|NVENC|OpenEncodeSessionEx|libcuda|libnvidia-encode|CUDA_ERROR|)"
      R"(No capable devices found|Error while opening encoder)");
  return std::regex_search(line.begin(), line.end(), kGpu);
}

JobExecutor::JobExecutor(ProcessRunner* runner, JobExecutorOptions options, const Clock* clock)
    : runner_(runner), options_(std::move(options)), clock_(clock) {}

// Retry policy (JobResult.retryable):
//  - could not start FFmpeg, killed by a signal, timed out, non-zero exit:
//    retryable (host trouble or transient: OOM kill, full disk, a flaky
//    mount; out of memory is retryable too, with fewer threads or on another
//    worker, and says so in out_of_memory), except when an input is missing or not a regular file
//    (checked before FFmpeg starts and again after it fails or times out), or a non-zero exit whose
//    log says the input's data is bad (truncated, corrupt, not media): no retry can fix those;
//  - FFmpeg succeeded but reported concealed decoding errors (damaged
//    source), verification mismatch, an output ffprobe cannot read: not
//    retryable (the same command makes the same file);
//  - cancelled: not retryable (the coordinator asked for it).
pb::JobResult JobExecutor::Execute(const pb::Assign& assign, const ProgressFn& progress,
                                   const std::atomic<bool>* cancel, const PublishGate& gate) {
  const pb::Job& job = assign.job();
  const uint64_t token = assign.token();
  const SteadyTime started = clock_->Now();
  const int threads = AttemptThreads(options_, assign, std::thread::hardware_concurrency());
  uint64_t peak_memory = 0;  // once FFmpeg has run under a memory cgroup
  std::vector<std::string> temps;
  // Every result names its attempt and what it ran with.
  auto stamped = [&](pb::JobResult r) {
    r.set_gpu(assign.gpu());
    r.set_job_id(job.id());
    r.set_token(token);
    r.set_threads(threads);
    r.set_peak_memory_bytes(peak_memory);
    r.set_encode_seconds(Seconds(started, clock_->Now()));
    return r;
  };
  auto fail = [&](const std::string& error, bool retryable, const std::string& log = "") {
    std::error_code ec;
    for (const auto& t : temps) fs::remove_all(t, ec);  // a file, or a package's folder
    return stamped(Failure(error, retryable, log));
  };

  if (job.kind() == "reuse") return stamped(Reuse(assign, cancel, gate));
  if (job.argv_size() == 0) return fail("the job has no command", false);
  if (std::string bad = InputProblem(job); !bad.empty()) return fail(bad, false);
  for (const auto& in : job.inputs()) {
    if (!PathInsideRoots(in, options_.allowed_roots)) {
      return fail("input " + in + " is outside this worker's allowed folders", false);
    }
  }
  for (const auto& out : job.outputs()) {
    if (!PathInsideRoots(out.path(), options_.allowed_roots)) {
      return fail("output " + out.path() + " is outside this worker's allowed folders", false);
    }
    // A QC reference is read like an input, so it must be one.
    const std::string& reference = out.qc().reference_path();
    if (!reference.empty() &&
        std::find(job.inputs().begin(), job.inputs().end(), reference) == job.inputs().end()) {
      return fail("the QC reference " + reference + " is not an input of the job", false);
    }
  }
  std::vector<std::string> argv(job.argv().begin(), job.argv().end());
  if (!options_.ffmpeg_override.empty()) argv[0] = options_.ffmpeg_override;
  // Loudness normalisation from the delivery's measurement of the source.
  const pb::MediaAnalysis* source_analysis =
      assign.has_source_analysis() ? &assign.source_analysis() : nullptr;
  {
    auto filled = FillLoudnorm(argv, job, source_analysis);
    if (!filled.ok()) return fail(filled.status().message(), false);
    argv = *std::move(filled);
  }
  // An analyse job: its result is what its detectors log.
  std::optional<AnalysisParser> analysis;
  if (job.kind() == "analyse" && job.outputs_size() == 0) analysis.emplace(DetectorsIn(argv));
  if (options_.threads > 0 || assign.max_threads() > 0) {
    std::vector<std::string> outputs;
    for (const auto& out : job.outputs()) outputs.push_back(out.path());
    argv = ApplyThreadBudget(argv, outputs, threads);
  }
  for (const auto& out : job.outputs()) {
    std::string dir = fs::path(out.path()).parent_path().string();
    Status made = CreateDirsDurably(dir);
    if (!made.ok()) return fail(made.message(), true);
    std::string temp = TempPathFor(out.path(), token);
    // A stale one from an earlier run of this attempt, or an earlier farm's.
    RemoveOlderTemps(out.path(), token + 1, 2 * std::max(job.timeout_s(), 3600.0));
    temps.push_back(temp);
    bool found = false;
    // A package is a folder: FFmpeg writes under it (its argv names files
    // inside), here under the attempt's temporary folder.
    const std::string inside = out.path() + "/";
    for (size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == out.path()) {
        argv[i] = temp;
        found = true;
      } else if (out.has_package() && argv[i].rfind(inside, 0) == 0) {
        argv[i] = temp + "/" + argv[i].substr(inside.size());
        found = true;
      }
    }
    if (out.has_package()) {
      Status made = CreateDirsDurably(temp);
      if (!made.ok()) return fail(made.message(), true);
    }
    if (!found) return fail("the job's command does not name its output " + out.path(), false);
  }

  // Files the job needs written first (an assemble job's concat list).
  for (const auto& file : job.write_files()) {
    if (!InsideOutputFolders(job, file.path())) {
      return fail("the job's file " + file.path() + " is outside its output folders", false);
    }
    Status made = CreateDirsDurably(fs::path(file.path()).parent_path().string());
    if (made.ok()) made = WriteFileAtomically(file.path(), file.content());
    if (!made.ok()) return fail("cannot write " + file.path() + ": " + made.message(), true);
  }

  ProgressParser parser;
  ProcessOptions popts;
  popts.argv = argv;
  popts.timeout_s = job.timeout_s();
  popts.memory_limit_bytes = MemoryLimitFor(job, options_, threads);
  // Memory in use, where the machine lets us limit it: a cgroup of its own.
  std::unique_ptr<MemoryCgroup> cgroup;
  if (const uint64_t resident = ResidentLimitFor(job, options_, threads);
      options_.cgroups != nullptr && resident > 0) {
    auto made = options_.cgroups->Create(
        "reelfarm-" + std::to_string(::getpid()) + "-" + std::to_string(token), resident);
    if (!made.ok()) return fail("cannot limit ffmpeg's memory: " + made.status().message(), true);
    cgroup = std::move(*made);
    popts.cgroup_procs_file = cgroup->procs_file();
  }
  // glibc reserves 64 MiB of address space per malloc arena, up to 8 per
  // core; bounded here so a many-core host stays inside the limit.
  if (popts.memory_limit_bytes > 0) popts.env = {"MALLOC_ARENA_MAX=4"};
  popts.cancel = cancel;
  popts.stderr_tail_bytes = kLogTailBytes;
  // Out of memory is told from the whole log as it streams: a big job's
  // first failed allocation is often long gone from the tail by the end.
  std::string oom_line;
  std::string gpu_line;  // a GPU attempt's encoder that did not open
  popts.on_stderr_line = [&](std::string_view line) {
    if (analysis) analysis->Feed(line);
    if (assign.gpu() && gpu_line.empty() && IsGpuUnavailableLine(line)) {
      gpu_line = LastMeaningfulLine(std::string(line));
    }
    if (oom_line.empty() && IsOutOfMemoryLine(line)) {
      oom_line = LastMeaningfulLine(std::string(line));
    }
  };
  popts.on_stdout_line = [&](std::string_view line) {
    std::optional<ProgressSample> sample = parser.Feed(line);
    if (!sample || !progress) return;
    pb::Progress p;
    p.set_job_id(job.id());
    p.set_token(token);
    double total = job.media_duration_s();
    double fraction = total > 0 ? sample->out_time_s / total : 0;
    if (sample->end) fraction = 1;
    p.set_fraction(std::clamp(fraction, 0.0, 1.0));
    p.set_fps(sample->fps);
    p.set_speed(sample->speed);
    p.set_frame(sample->frame);
    progress(p);
  };
  StatusOr<ProcessResult> ran = runner_->Run(popts);
  if (!ran.ok()) return fail(ran.status().message(), true);
  const ProcessResult& pr = *ran;
  peak_memory = cgroup ? cgroup->PeakBytes() : 0;
  // Killed by the kernel at its cgroup's limit: that is the cause, whatever
  // the log says.
  const bool cgroup_oom = cgroup && cgroup->OomKills() > 0;
  cgroup.reset();
  if (pr.cancelled) return fail("cancelled", false, pr.stderr_tail);
  if (pr.timed_out) {
    std::string why = "ffmpeg timed out after " + FormatSeconds(job.timeout_s()) + " s";
    if (std::string bad = InputProblem(job); !bad.empty()) {
      return fail(bad + " (" + why + ")", false, pr.stderr_tail);
    }
    return fail(why, true, pr.stderr_tail);
  }
  if (!pr.Succeeded()) {
    std::string why = pr.term_signal != 0
                          ? "ffmpeg was " + pr.Describe()
                          : "ffmpeg exited with code " + std::to_string(pr.exit_code);
    std::string last = LastMeaningfulLine(pr.stderr_tail);
    if (!last.empty()) why += ": " + last;
    if (std::string bad = InputProblem(job); !bad.empty()) {
      return fail(bad + " (" + why + ")", false, pr.stderr_tail);
    }
    if (!gpu_line.empty() && !cgroup_oom) {
      // The GPU's trouble, not the job's: it runs again at once, on the CPU
      // where it may, and this host is not blamed (FarmState).
      pb::JobResult r = fail("the GPU encoder could not be used: " + gpu_line + " (" + why + ")",
                             true, pr.stderr_tail);
      r.set_gpu_unavailable(true);
      return r;
    }
    if (cgroup_oom || !oom_line.empty()) {
      // Worth another attempt: with fewer threads (less memory) or on a
      // host with more of it. The first failed allocation is the cause;
      // what FFmpeg said last is its consequence.
      const std::string with = " with " + std::to_string(threads) + " threads";
      std::string error =
          cgroup_oom ? "ffmpeg ran out of memory: killed at its cgroup limit of " +
                           std::to_string(ResidentLimitFor(job, options_, threads) >> 20) +
                           " MiB in use" + with
                     : "ffmpeg ran out of memory" +
                           (popts.memory_limit_bytes > 0
                                ? " under its limit of " +
                                      std::to_string(popts.memory_limit_bytes >> 20) + " MiB"
                                : std::string()) +
                           with + ": " + oom_line;
      pb::JobResult r = fail(error + " (" + why + ")", true, pr.stderr_tail);
      r.set_out_of_memory(true);
      return r;
    }
    if (pr.term_signal == 0 && IsInputDataError(pr.stderr_tail)) {
      return fail(FailingInput(job, pr.stderr_tail) + " cannot be decoded (" + why + ")", false,
                  pr.stderr_tail);
    }
    return fail(why, true, pr.stderr_tail);
  }

  // FFmpeg conceals damaged input and exits 0; such an output would verify
  // and still carry the damage, so it is refused (and not retried: the
  // source is the same on every host).
  if (std::string damage = ConcealedDamageLine(pr.stderr_tail); !damage.empty()) {
    std::string source = job.inputs_size() > 0 ? job.inputs(0) : "the input";
    return fail("source " + source + " is damaged: FFmpeg reported decoding errors (" + damage +
                    "); nothing was published",
                false, pr.stderr_tail);
  }

  if (analysis) {
    pb::JobResult result;
    result.set_ok(true);
    *result.mutable_analysis() = analysis->Finish(job.media_duration_s());
    result.set_log_tail(pr.stderr_tail);
    return stamped(std::move(result));
  }

  // Verify every output before publishing any. A group (decode once,
  // encode many) publishes those that verify and reports the others: each
  // runs again on its own.
  const bool group = job.members_size() > 0 && job.members_size() == job.outputs_size();
  std::vector<pb::MediaInfo> probed(job.outputs_size());
  std::vector<std::optional<FinishedPackage>> packages(job.outputs_size());
  std::vector<bool> publish(job.outputs_size(), true);
  std::string refused;  // why the first refused output was refused
  bool refused_by_host = false;
  std::error_code ec_unused;
  for (int i = 0; i < job.outputs_size(); ++i) {
    const auto& out = job.outputs(i);
    std::string why;
    bool host = false;
    if (out.has_package()) {
      // A streaming package: each rendition checked, the master written.
      StatusOr<FinishedPackage> finished = FinishPackage(*runner_, options_.ffprobe, temps[i], out);
      if (finished.ok()) {
        probed[i] = finished->media;
        packages[i] = *std::move(finished);
      } else {
        host = finished.status().code() != Status::Code::kInvalidArgument;
        why = finished.status().message();
      }
    } else if (StatusOr<std::string> json = RunProbe(*runner_, options_.ffprobe, temps[i]);
               !json.ok()) {
      // InvalidArgument: ffprobe ran and could not read the file (the job's
      // fault); anything else is ffprobe itself failing on this host.
      host = json.status().code() != Status::Code::kInvalidArgument;
      why = json.status().message();
    } else if (StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(*json); !info.ok()) {
      why = info.status().message();
    } else if (std::string diff = CompareMedia(out.expect(), *info); !diff.empty()) {
      why = diff;
    } else {
      probed[i] = *std::move(info);
    }
    if (why.empty()) continue;
    if (!group)
      return fail("verification failed for " + out.deliverable() + ": " + why, host,
                  pr.stderr_tail);
    publish[i] = false;
    fs::remove_all(temps[i], ec_unused);
    if (refused.empty()) {
      refused = "verification failed for " + out.deliverable() + ": " + why;
      refused_by_host = host;
    }
  }
  // QC gates, on what verified: a failing gate refuses the output for good
  // (the same input makes the same file).
  std::vector<pb::QcReport> qc(job.outputs_size());
  std::vector<pb::OutputResult> qc_rejected;
  for (int i = 0; i < job.outputs_size(); ++i) {
    const auto& out = job.outputs(i);
    if (!publish[i] || !out.has_qc() || out.intermediate()) continue;
    const double gain = out.has_normalise() && source_analysis != nullptr
                            ? NormalisationGain(out.normalise(), *source_analysis)
                            : 0;
    StatusOr<pb::MediaAnalysis> measured = MeasureOutput(*runner_, argv[0], out, temps[i], out.qc(),
                                                         probed[i], gain, threads, popts, cancel);
    if (!measured.ok()) {
      return fail("QC of " + out.deliverable() + " could not run: " + measured.status().message(),
                  true, pr.stderr_tail);
    }
    qc[i] = EvaluateQc(out.qc(), *measured, source_analysis, gain);
    if (qc[i].passed()) continue;
    pb::OutputResult rejected;
    rejected.set_deliverable(out.deliverable());
    rejected.set_path(out.path());
    *rejected.mutable_media() = probed[i];
    *rejected.mutable_qc() = qc[i];
    qc_rejected.push_back(std::move(rejected));
    const std::string why = QcRefusal(out.deliverable(), qc[i]);
    publish[i] = false;
    fs::remove_all(temps[i], ec_unused);  // a file, or a package's folder
    if (refused.empty()) {
      refused = why;
      refused_by_host = false;
    }
  }
  auto with_rejected = [&](pb::JobResult r) {
    for (const auto& q : qc_rejected) *r.add_qc_rejected() = q;
    return r;
  };
  if (std::count(publish.begin(), publish.end(), true) == 0) {
    return with_rejected(fail(refused, refused_by_host, pr.stderr_tail));
  }
  if (cancel != nullptr && cancel->load()) return fail("cancelled", false, pr.stderr_tail);

  // Make every temp durable and hash it, then rename them all, then make the
  // renames durable. A failure before the first rename publishes nothing;
  // one during the renames may leave earlier outputs of this job published,
  // which is harmless: each is complete and verified.
  std::vector<std::string> sums(job.outputs_size());
  std::vector<int64_t> sizes(job.outputs_size());
  for (int i = 0; i < job.outputs_size(); ++i) {
    if (!publish[i]) continue;
    const auto& out = job.outputs(i);
    if (packages[i]) {  // made durable and hashed file by file
      sums[i] = packages[i]->sha256;
      sizes[i] = packages[i]->bytes;
      continue;
    }
    Status synced = FsyncFile(temps[i]);
    if (!synced.ok())
      return fail("cannot publish " + out.deliverable() + ": " + synced.message(), true);
    StatusOr<std::string> sha = Sha256File(temps[i]);
    if (!sha.ok())
      return fail("cannot publish " + out.deliverable() + ": " + sha.status().message(), true);
    std::error_code ec;
    auto bytes = fs::file_size(temps[i], ec);
    if (ec) return fail("cannot publish " + out.deliverable() + ": " + ec.message(), true);
    sums[i] = *sha;
    sizes[i] = static_cast<int64_t>(bytes);
  }
  // Fencing: only the current attempt renames, and only inside its grant.
  std::optional<SteadyTime> publish_until;
  if (gate) {
    auto granted = gate();
    // Superseded: final. No answer (the coordinator is down or holding its
    // messages while Redis is away): worth another attempt.
    if (!granted.ok()) {
      return fail("not published: " + granted.status().message(),
                  granted.status().code() != Status::Code::kCancelled);
    }
    publish_until = *granted;
  }
  // Renames, each re-checking the cancel and the grant. One that fails
  // part-way leaves the earlier outputs at their final names: the result
  // reports exactly those (never retried as a whole, which would rename
  // over them) and why the rest were not published.
  std::set<std::string> dirs;
  std::vector<std::string> renamed;
  std::string publish_error;
  bool publish_retryable = true;
  for (int i = 0; i < job.outputs_size(); ++i) {
    if (!publish[i]) continue;
    const auto& out = job.outputs(i);
    if (cancel != nullptr && cancel->load()) {
      publish_error = "cancelled before " + out.deliverable() + " was published";
      publish_retryable = false;
    } else if (publish_until && clock_->Now() > *publish_until) {
      publish_error = "not published: the publish grant for " + out.deliverable() +
                      " expired before the rename (the attempt stalled)";
    } else if (packages[i]) {
      if (Status moved = PublishFolder(temps[i], out.path()); !moved.ok()) {
        publish_error = "cannot publish " + out.deliverable() + ": " + moved.message();
        // Something not ours at the name: no attempt can publish there.
        publish_retryable = moved.code() != Status::Code::kInvalidArgument;
      }
    } else if (std::rename(temps[i].c_str(), out.path().c_str()) != 0) {
      publish_error = "cannot publish " + out.deliverable() + ": rename to " + out.path() + ": " +
                      std::strerror(errno);
    }
    if (!publish_error.empty()) {
      for (int k = i; k < job.outputs_size(); ++k) {
        if (publish[k]) fs::remove_all(temps[k], ec_unused);
        publish[k] = false;
      }
      break;
    }
    renamed.push_back(out.deliverable());
    dirs.insert(fs::path(out.path()).parent_path().string());
  }
  for (const auto& dir : dirs) {
    Status synced = FsyncDir(dir);
    if (!synced.ok() && publish_error.empty()) {
      publish_error = "cannot publish: " + synced.message() +
                      " (the renamed outputs may not survive a crash of this host)";
    }
  }
  if (!publish_error.empty() && renamed.empty()) {
    return with_rejected(fail(publish_error, publish_retryable));
  }
  if (!publish_error.empty()) {
    std::string names;
    for (const auto& n : renamed) names += (names.empty() ? "" : ", ") + n;
    refused = publish_error + " (published: " + names + ")";
  }
  // The parts this job joined are no longer needed.
  for (const auto& path : job.remove_after()) {
    if (InsideOutputFolders(job, path)) (void)RemoveIfExists(path);
  }

  pb::JobResult result;
  result.set_ok(refused.empty());
  if (!refused.empty()) {
    result.set_retryable(false);
    result.set_error(publish_error.empty() ? refused + " (the group's other outputs are published)"
                                           : refused);
  }
  result.set_log_tail(pr.stderr_tail);
  for (int i = 0; i < job.outputs_size(); ++i) {
    if (!publish[i]) continue;
    const auto& out = job.outputs(i);
    pb::OutputResult* r = result.add_outputs();
    r->set_deliverable(out.deliverable());
    r->set_path(out.path());
    r->set_bytes(sizes[i]);
    r->set_sha256(sums[i]);
    *r->mutable_media() = probed[i];
    if (out.has_qc() && !out.intermediate()) *r->mutable_qc() = qc[i];
    if (packages[i]) {
      for (const auto& f : packages[i]->files) *r->add_files() = f;
      for (const auto& rendition : packages[i]->renditions) *r->add_renditions() = rendition;
    }
    KeepInCache(out, *r);
  }
  result.set_ffmpeg_version(options_.ffmpeg_version);
  return with_rejected(stamped(std::move(result)));
}

void JobExecutor::KeepInCache(const pb::JobOutput& out, const pb::OutputResult& published) const {
  const pb::CacheStore& store = out.cache();
  if (store.entry().empty() || out.intermediate()) return;
  // Under another FFmpeg than its key names, the entry would lie.
  if (options_.ffmpeg_version.empty() || store.ffmpeg_version() != options_.ffmpeg_version) return;
  if (!PathInsideRoots(store.entry(), options_.allowed_roots)) {
    spdlog::warn("not keeping {} in the output cache: {} is outside this worker's allowed folders",
                 out.deliverable(), store.entry());
    return;
  }
  Status kept = StoreCacheEntry(store, out.path(), published, clock_->WallMillis());
  // The output is published either way; a later version encodes it again.
  if (!kept.ok()) {
    spdlog::warn("could not keep {} in the output cache: {}", out.deliverable(), kept.message());
  }
}

pb::JobResult JobExecutor::Reuse(const pb::Assign& assign, const std::atomic<bool>* cancel,
                                 const PublishGate& gate) const {
  const pb::Job& job = assign.job();
  if (job.outputs_size() != 1) return Failure("a reuse job publishes one output", false, "");
  const pb::JobOutput& out = job.outputs(0);
  const pb::Reuse& reuse = job.reuse();
  for (const auto& path : {out.path(), reuse.entry()}) {
    if (!PathInsideRoots(path, options_.allowed_roots)) {
      return Failure(path + " is outside this worker's allowed folders", false, "");
    }
  }
  Status made = CreateDirsDurably(fs::path(out.path()).parent_path().string());
  if (!made.ok()) return Failure(made.message(), true, "");
  const std::string temp = TempPathFor(out.path(), assign.token());
  std::error_code ec;
  fs::remove_all(temp, ec);
  Status copied = MaterializeCacheEntry(reuse, out.has_package(), temp);
  if (!copied.ok()) {
    // A changed entry is taken out of the cache; the coordinator has the
    // output made again (the reuse job's fallback).
    if (copied.code() == Status::Code::kDataLoss) DiscardCacheEntry(reuse.entry());
    return Failure("not reused: " + copied.message(), false, "");
  }
  auto give_up = [&](const std::string& why, bool retryable) {
    fs::remove_all(temp, ec);
    return Failure(why, retryable, "");
  };
  if (cancel != nullptr && cancel->load()) return give_up("cancelled", false);
  if (gate) {
    auto granted = gate();
    if (!granted.ok()) {
      return give_up("not published: " + granted.status().message(),
                     granted.status().code() != Status::Code::kCancelled);
    }
    if (clock_->Now() > *granted) {
      return give_up("not published: the publish grant expired before the rename", true);
    }
  }
  Status moved =
      out.has_package() ? PublishFolder(temp, out.path()) : RenameDurably(temp, out.path());
  if (!moved.ok()) {
    return give_up("cannot publish " + out.deliverable() + ": " + moved.message(),
                   moved.code() != Status::Code::kInvalidArgument);
  }
  // The name may already hold this very file (a link of the entry, from
  // the version before): rename(2) then leaves both names; the temporary
  // one goes.
  fs::remove(temp, ec);
  (void)FsyncDir(fs::path(out.path()).parent_path().string());
  TouchCacheEntry(reuse.entry());
  pb::JobResult result;
  result.set_ok(true);
  pb::OutputResult* r = result.add_outputs();
  *r = reuse.original();
  r->set_deliverable(out.deliverable());
  r->set_path(out.path());
  r->clear_files();
  if (out.has_package()) {
    for (const auto& f : reuse.files()) *r->add_files() = f;
  }
  return result;
}

}  // namespace reelfarm
