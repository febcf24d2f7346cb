// Each candidate is opened by a real FFmpeg on a tiny lavfi input with a
// pixel format it accepts; all tests run in parallel (a few processes of a
// fraction of a second each). mov_text needs a subtitle input to open, so it
// counts as available when `ffmpeg -encoders` lists it.
#include "worker/encoder_probe.h"

#include <algorithm>
#include <future>
#include <optional>
#include <sstream>

namespace reelfarm {
namespace {

constexpr double kTestTimeoutS = 20;

bool IsAudioEncoder(const std::string& e) {
  return e == "aac" || e == "pcm_s24le" || e == "libmp3lame" || e == "libopus";
}

}  // namespace

const std::vector<std::string>& CandidateEncoders() {
  static const std::vector<std::string> kEncoders = {
      "libx264",   "libx265",  "prores_ks",  "dnxhd",      "mjpeg",    "aac",
      "pcm_s24le", "mov_text", "h264_nvenc", "hevc_nvenc", "av1_nvenc"};
  return kEncoders;
}

std::vector<std::string> EncoderTestArgv(const std::string& ffmpeg, const std::string& encoder) {
  if (encoder == "mov_text") return {ffmpeg, "-hide_banner", "-nostdin", "-encoders"};
  std::vector<std::string> argv = {ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"};
  if (IsAudioEncoder(encoder)) {
    argv.insert(argv.end(),
                {"-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "0.1", "-c:a", encoder});
  } else {
    // Sizes and formats every candidate accepts (NVENC needs >= 145x49ish).
    argv.insert(argv.end(), {"-f", "lavfi", "-i", "color=c=black:s=256x144:r=25:d=0.2"});
    if (encoder == "prores_ks") {
      argv.insert(argv.end(), {"-pix_fmt", "yuv422p10le"});
    } else if (encoder == "dnxhd") {
      argv.insert(argv.end(), {"-pix_fmt", "yuv422p", "-profile:v", "dnxhr_hq"});
    } else if (encoder == "mjpeg") {
      argv.insert(argv.end(), {"-pix_fmt", "yuvj420p"});
    } else {
      argv.insert(argv.end(), {"-pix_fmt", "yuv420p"});
    }
    argv.insert(argv.end(), {"-frames:v", "3", "-c:v", encoder});
  }
  argv.insert(argv.end(), {"-f", "null", "-"});
  return argv;
}

std::vector<std::string> GpuSessionTestArgv(const std::string& ffmpeg, const std::string& encoder,
                                            int sessions) {
  std::vector<std::string> argv = {
      ffmpeg,      "-hide_banner", "-nostdin",
      "-loglevel", "error",        "-f",
      "lavfi",     "-i",           "color=c=black:s=256x144:r=25:d=0.2"};
  for (int k = 0; k < sessions; ++k) {
    argv.insert(argv.end(), {"-map", "0:v", "-frames:v", "3", "-pix_fmt", "yuv420p", "-c:v",
                             encoder, "-f", "null", "-"});
  }
  return argv;
}

std::vector<std::string> CuvidCodecs(const std::string& decoders_listing) {
  std::vector<std::string> codecs;
  std::istringstream lines(decoders_listing);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string flags, name;
    if (!(words >> flags >> name) || flags.size() != 6 || flags[0] != 'V') continue;
    const std::string suffix = "_cuvid";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      codecs.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  std::sort(codecs.begin(), codecs.end());
  return codecs;
}

EncoderProbeResult ProbeEncoders(ProcessRunner& runner, const std::string& ffmpeg,
                                 int max_gpu_sessions) {
  EncoderProbeResult result;
  // Every test runs at once (a worker's start-up waits for the slowest, not
  // for their sum).
  auto run_async = [&runner](ProcessOptions o) {
    return std::async(std::launch::async, [&runner, o = std::move(o)] {
      StatusOr<ProcessResult> r = runner.Run(o);
      return r.ok() && r->Succeeded() ? std::optional<std::string>(r->stdout_data)
                                      : std::optional<std::string>();
    });
  };
  // Encoders FFmpeg lists (mov_text is judged by the list: it needs a
  // subtitle input to open).
  ProcessOptions list;
  list.argv = EncoderTestArgv(ffmpeg, "mov_text");
  list.timeout_s = kTestTimeoutS;
  auto listing = run_async(std::move(list));

  std::vector<std::pair<std::string, std::future<std::optional<std::string>>>> tests;
  for (const auto& enc : CandidateEncoders()) {
    if (enc == "mov_text") continue;
    ProcessOptions o;
    o.argv = EncoderTestArgv(ffmpeg, enc);
    o.timeout_s = kTestTimeoutS;
    tests.emplace_back(enc, run_async(std::move(o)));
  }

  // A usable CUDA device (NVDEC decode and CUDA filters need one).
  ProcessOptions cuda;
  cuda.argv = {ffmpeg,
               "-hide_banner",
               "-nostdin",
               "-loglevel",
               "error",
               "-init_hw_device",
               "cuda=gpu",
               "-f",
               "lavfi",
               "-i",
               "color=s=64x64:d=0.1",
               "-f",
               "null",
               "-"};
  cuda.timeout_s = kTestTimeoutS;
  auto gpu = run_async(std::move(cuda));

  ProcessOptions decoders;
  decoders.argv = {ffmpeg, "-hide_banner", "-nostdin", "-decoders"};
  decoders.timeout_s = kTestTimeoutS;
  auto decoder_listing = run_async(std::move(decoders));

  ProcessOptions smi;
  smi.argv = {"nvidia-smi", "--query-gpu=name", "--format=csv,noheader"};
  smi.timeout_s = 10;
  auto names = run_async(std::move(smi));

  for (auto& [enc, fut] : tests) {
    (fut.get() ? result.encoders : result.failed).push_back(enc);
  }
  std::optional<std::string> listed = listing.get();
  if (listed && listed->find(" mov_text ") != std::string::npos) {
    result.encoders.push_back("mov_text");
  } else {
    result.failed.push_back("mov_text");
  }
  result.gpu = gpu.get().has_value();
  if (std::optional<std::string> out = names.get()) {
    std::istringstream lines(*out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) result.gpu_names.push_back(line);
    }
  }
  std::optional<std::string> decoder_list = decoder_listing.get();
  if (result.gpu && decoder_list) result.gpu_decoders = CuvidCodecs(*decoder_list);
  std::sort(result.encoders.begin(), result.encoders.end());
  std::sort(result.failed.begin(), result.failed.end());
  // NVENC sessions at once: the largest count, halving from the ceiling,
  // that one FFmpeg opens (a few seconds at most, only on NVENC hosts).
  for (const auto& enc : result.encoders) {
    if (enc.find("_nvenc") == std::string::npos) continue;
    for (int n = std::max(1, max_gpu_sessions); n >= 1; n /= 2) {
      ProcessOptions o;
      o.argv = GpuSessionTestArgv(ffmpeg, enc, n);
      o.timeout_s = kTestTimeoutS;
      StatusOr<ProcessResult> r = runner.Run(o);
      if (r.ok() && r->Succeeded()) {
        result.gpu_sessions = n;
        break;
      }
    }
    break;
  }
  return result;
}

}  // namespace reelfarm
