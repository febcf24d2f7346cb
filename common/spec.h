// Delivery spec, version 1: parsing and validation (see docs/spec.md).
#ifndef REELFARM_COMMON_SPEC_H_
#define REELFARM_COMMON_SPEC_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace reelfarm {

// One problem in a spec, printed as "FILE:LINE: field.path: message".
struct SpecError {
  std::string file;
  int line = 0;         // 1-based; 0 when unknown
  std::string field;    // e.g. "deliverables[2].height"; empty for the file itself
  std::string message;  // what is wrong and what is allowed
  std::string ToString() const;
};

struct SubtitleChoice {
  std::string language;
  std::string mode;  // "burn" or "soft"
};

// A loudness to reach (`loudness`) or check (`qc.loudness`): a named
// standard (common/qc.h), possibly with figures of its own, or figures alone.
struct LoudnessChoice {
  std::string standard;  // "" = custom figures
  double target_lufs = 0;
  double true_peak_db = 0;
  double lra = 0;  // 0 = keep the source's range
};

// The deliverable's `qc` block; unset members take the preset's defaults.
struct QcChoice {
  bool none = false;  // `qc: none`: no gate at all
  // `loudness: true|false` turns the loudness gate on or off (on by default
  // where the deliverable is normalised); a standard or figures check
  // against those (a master that is not normalised, say).
  std::optional<bool> loudness{};
  std::optional<LoudnessChoice> loudness_target{};
  std::optional<double> loudness_tolerance_lu{};
  std::optional<double> black_max_s{};  // 0 = off
  std::optional<double> freeze_max_s{};
  std::optional<double> silence_max_s{};
  std::optional<bool> allow_in_source{};
  std::optional<double> ssim_min{};  // 0 = off (the default)
  std::optional<double> psnr_min_db{};
};

struct DeliverableSpec {
  std::string name;
  std::string preset;
  int height = 0;      // 0 = preset default (source height)
  int aspect_num = 0;  // 0 = no crop
  int aspect_den = 0;
  double focus_x = 0.5;
  double focus_y = 0.5;
  std::optional<SubtitleChoice> subtitles;
  std::optional<double> at_s;  // thumbnail time in seconds
  // "sdr" (default: HDR sources are tone-mapped) or "hdr" (keep PQ/HLG; only
  // presets with hdr_video_args, and only from an HDR source).
  std::string dynamic_range = "sdr";
  // "auto" (default: a GPU encoder where a worker has one free, else the
  // CPU), "cpu" or "gpu" (GPU workers only); presets with a GPU encoder
  // only (docs/gpu.md).
  std::string encoder = "auto";
  // `loudness`: unset = the preset's default; set to nullopt = `none`.
  std::optional<std::optional<LoudnessChoice>> loudness;
  std::optional<QcChoice> qc;
  // Streaming presets: the rungs' picture heights, highest first (empty: the
  // default ladder from the source, DefaultLadder in common/hls.h), and the
  // segment length in seconds (0: kDefaultSegmentS).
  std::vector<int> ladder;
  double segment_s = 0;
  int line = 0;                            // line of this entry, for later errors
  std::map<std::string, int> field_lines;  // field name -> line
};

// A `webhooks:` entry (docs/webhooks.md): where the delivery's events are
// POSTed, signed with the secret in `secret_file` (read by the coordinator
// when the spec is submitted).
struct WebhookSpec {
  std::string url;                  // http or https, checked by ParseWebhookUrl
  std::string secret_file;          // absolute, normalised
  std::vector<std::string> events;  // empty: every event
  int line = 0;                     // line of this entry
  int secret_file_line = 0;
};

inline constexpr size_t kMaxSpecWebhooks = 8;

inline constexpr int kDefaultKeepVersions = 2;
inline constexpr int kMaxKeepVersions = 100;

struct DeliverySpec {
  std::string spec_file;  // as given, for error messages
  int version = 1;
  std::string name;
  std::string source;  // absolute, normalised
  int source_line = 0;
  std::string output_dir;   // absolute, normalised
  int output_dir_line = 0;  // 0 when output_dir is the default
  int priority = 50;
  // Older versions whose replaced or removed files are kept under
  // <output_dir>/versions/v<N>/ (docs/versions.md).
  int keep_versions = kDefaultKeepVersions;
  std::map<std::string, std::string> subtitles;  // language -> absolute path
  std::map<std::string, int> subtitle_lines;     // language -> line, for errors
  std::vector<DeliverableSpec> deliverables;
  std::vector<WebhookSpec> webhooks;
};

struct SpecParseResult {
  std::optional<DeliverySpec> spec;  // set only when errors is empty
  std::vector<SpecError> errors;     // every problem found, in file order
};

// Parses and validates spec text (YAML, or JSON, which YAML reads too).
// `file_name` names the spec in errors; relative paths resolve against
// `base_dir` (the spec file's folder). Pure: touches no files. The file
// checks (source and subtitle sidecars exist and are readable local files)
// are CheckSpecFiles'.
SpecParseResult ParseSpecText(const std::string& text, const std::string& file_name,
                              const std::string& base_dir);

// Reads `path` and parses it; a missing or unreadable file is one error.
SpecParseResult ParseSpecFile(const std::string& path);

// Checks what ParseSpecText cannot: that the source and each subtitle file
// exist, are regular readable local files (not FIFOs, devices or folders),
// that subtitle files are UTF-8. Returns the problems found.
std::vector<SpecError> CheckSpecFiles(const DeliverySpec& spec);

// Checks that the source, each subtitle file and output_dir lie inside one of
// `roots` once symlinks are resolved (a farm's media and delivery folders).
// An empty `roots` allows every path.
std::vector<SpecError> CheckSpecRoots(const DeliverySpec& spec,
                                      const std::vector<std::string>& roots);

// True when `name` matches [A-Za-z0-9][A-Za-z0-9._-]{0,63} and is not "..".
bool IsValidName(const std::string& name);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_SPEC_H_
