// Finds which encoders really work on this machine: each one is opened on a
// tiny generated input; an encoder FFmpeg lists but cannot open (NVENC with no
// NVENC hardware) does not count.
#ifndef REELFARM_WORKER_ENCODER_PROBE_H_
#define REELFARM_WORKER_ENCODER_PROBE_H_

#include <string>
#include <vector>

#include "common/process_runner.h"

namespace reelfarm {

struct EncoderProbeResult {
  std::vector<std::string> encoders;   // the ones that opened, sorted
  std::vector<std::string> failed;     // tried and failed
  bool gpu = false;                    // a CUDA device is usable (hwaccel cuda)
  std::vector<std::string> gpu_names;  // from nvidia-smi when present
};

// Encoders reelfarm's presets may ask for, video and audio.
const std::vector<std::string>& CandidateEncoders();

// The argv that tests one encoder (pure).
std::vector<std::string> EncoderTestArgv(const std::string& ffmpeg, const std::string& encoder);

// Runs the tests (a few seconds in all).
EncoderProbeResult ProbeEncoders(ProcessRunner& runner, const std::string& ffmpeg);

}  // namespace reelfarm

#endif  // REELFARM_WORKER_ENCODER_PROBE_H_
