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
  // NVENC sessions one FFmpeg could open at once (up to the probe's
  // ceiling), 0 when no NVENC encoder opened: the worker's GPU slots.
  int gpu_sessions = 0;
  // Codecs NVDEC decodes here: FFmpeg's *_cuvid decoders, when a CUDA
  // device is usable ("h264", "hevc"...).
  std::vector<std::string> gpu_decoders;
};

// Encoders reelfarm's presets may ask for, video and audio.
const std::vector<std::string>& CandidateEncoders();

// The argv that tests one encoder (pure).
std::vector<std::string> EncoderTestArgv(const std::string& ffmpeg, const std::string& encoder);

// The argv that opens `sessions` sessions of a GPU encoder at once: one
// FFmpeg, one tiny input, that many outputs (pure).
std::vector<std::string> GpuSessionTestArgv(const std::string& ffmpeg, const std::string& encoder,
                                            int sessions);

// The codecs of the *_cuvid decoders in `ffmpeg -decoders` output (pure).
std::vector<std::string> CuvidCodecs(const std::string& decoders_listing);

// Runs the tests (a few seconds in all). With an NVENC encoder that
// opened, also finds how many of its sessions open at once: halving from
// `max_gpu_sessions` (consumer cards allow a few, data-centre cards many).
EncoderProbeResult ProbeEncoders(ProcessRunner& runner, const std::string& ffmpeg,
                                 int max_gpu_sessions = 16);

}  // namespace reelfarm

#endif  // REELFARM_WORKER_ENCODER_PROBE_H_
