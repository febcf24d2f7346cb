// Loudness and QC (docs/spec.md, "Loudness and QC"): the named loudness
// standards, the FFmpeg detector filters a measuring pass runs, the parser
// of what they log, the loudnorm filter made from a measurement, and the QC
// gates judged from measurements. Pure: no I/O; the planner and the worker
// build their FFmpeg commands from here so both measure the same way.
#ifndef REELFARM_COMMON_QC_H_
#define REELFARM_COMMON_QC_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// The named standards: ebu-r128 (-23 LUFS, -1 dBTP), atsc-a85 (-24 LKFS,
// -2 dBTP), web (-16 LUFS, -1 dBTP), social (-14 LUFS, -1 dBTP); nullopt
// for any other name.
std::optional<pb::LoudnessTarget> LoudnessStandard(const std::string& name);
std::vector<std::string> LoudnessStandardNames();

// Silence is sound under this level (dBFS) in the source; in a normalised
// output, under this level moved by the normalisation's gain.
inline constexpr double kSilenceThresholdDb = -60;

// What a measuring pass over input 0 of an FFmpeg command looks for.
struct DetectorOptions {
  bool video = false;      // black and frozen picture
  double black_min_s = 2;  // shortest segment reported
  double freeze_min_s = 2;
  bool audio = false;  // silence
  double silence_min_s = 2;
  double silence_threshold_db = kSilenceThresholdDb;
  bool loudness = false;  // EBU R128 integrated loudness, true peak, LRA
  // SSIM and PSNR of the picture against a reference: the pass's second
  // input (index 1) through `reference_filter`, every `sample_every`-th
  // frame of both.
  bool quality = false;
  std::string reference_filter;
  int sample_every = 1;

  // Whether a pass with these options measures anything at all.
  bool any() const { return video || audio || loudness || quality; }
};

// PSNR of identical pictures (FFmpeg prints "inf"): reported as this.
inline constexpr double kIdenticalPsnrDb = 100;

// The arguments after a measuring pass's input(s): one filter graph over its
// first video and audio streams (timestamps from 0) into the null muxer.
// REQUIRES: o.any().
std::vector<std::string> DetectorArgs(const DetectorOptions& o);

// Reads what the detectors log (FFmpeg at -loglevel info), line by line.
// Keeps at most kMaxSegments segments of each kind.
class AnalysisParser {
 public:
  static constexpr int kMaxSegments = 1000;
  explicit AnalysisParser(const DetectorOptions& o);
  void Feed(std::string_view line);
  // The measurement, segments still open at the end closed at `duration_s`.
  pb::MediaAnalysis Finish(double duration_s);

 private:
  void Open(std::optional<double>* start, double t);
  void Close(std::optional<double>* start, double t,
             google::protobuf::RepeatedPtrField<pb::Segment>* into);

  DetectorOptions options_;
  pb::MediaAnalysis result_;
  std::optional<double> black_, freeze_, silence_;
  bool in_json_ = false;
  std::string json_;
};

// The loudnorm filter that brings a source measured as `source` to
// `target`: linear (one gain for the whole programme) where the measured
// range and peaks allow it, else loudnorm's dynamic mode; "anull" when the
// source is silent or was not measured (nothing to bring anywhere). An
// unset target LRA keeps the source's range.
std::string LoudnormFilter(const pb::LoudnessTarget& target, const pb::MediaAnalysis& source);

// dB a normalisation to `target` moves a source measured as `source`; 0
// when it is silent or was not measured.
double NormalisationGain(const pb::LoudnessTarget& target, const pb::MediaAnalysis& source);

// "{loudnorm:N}": in a planned argv, the -af value of output N, filled in on
// the worker (FillLoudnorm).
std::string LoudnormPlaceholder(int output_index);

// `argv` with every "{loudnorm:N}" element replaced by LoudnormFilter of
// the job's output N's normalise target and `source`. InvalidArgument when
// a placeholder names no output with a target, or when there is one and no
// measurement (`source` null).
StatusOr<std::vector<std::string>> FillLoudnorm(const std::vector<std::string>& argv,
                                                const pb::Job& job,
                                                const pb::MediaAnalysis* source);

// The measuring pass a QC of an output with `gates` needs (what it has:
// picture, sound), silence looked for at `silence_threshold_db`.
DetectorOptions QcDetectors(const pb::QcGates& gates, bool has_video, bool has_audio,
                            double silence_threshold_db);

// Which detectors a measuring pass's argv (DetectorArgs) runs.
DetectorOptions DetectorsIn(const std::vector<std::string>& argv);

// Judges `gates` on an output measured as `output`; `source` (may be null)
// is the delivery's analyse job's measurement, whose segments a gate with
// allow_in_source excuses (the part of an output segment the source also
// has, give or take half a second, does not count). `gain_db`: what
// normalisation applied, for the report.
pb::QcReport EvaluateQc(const pb::QcGates& gates, const pb::MediaAnalysis& output,
                        const pb::MediaAnalysis* source, double gain_db);

// "QC gate black failed: 3.00 s of black from 3.00 s (at most 2 s)", for
// each failed gate, joined by "; ". Empty when every gate passed.
std::string QcFailureSummary(const pb::QcReport& report);

// Why `deliverable` was refused: "QC failed for web: " + QcFailureSummary.
std::string QcRefusal(const std::string& deliverable, const pb::QcReport& report);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_QC_H_
