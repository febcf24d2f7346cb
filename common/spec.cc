#include "common/spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>

#include "common/fs_util.h"
#include "common/presets.h"
#include "common/qc.h"
#include "common/webhooks.h"

namespace reelfarm {

namespace fs = std::filesystem;

namespace {

constexpr int kSpecVersion = 1;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxDeliverables = 1000;
constexpr int kMinHeight = 32;
constexpr int kMaxHeight = 4320;
constexpr size_t kMaxRungs = 8;
constexpr double kMinSegmentS = 1;
constexpr double kMaxSegmentS = 30;
constexpr int kMaxAspectTerm = 100;
constexpr int kMinPriority = 0;
constexpr int kMaxPriority = 100;
constexpr off_t kMaxSpecBytes = 4 << 20;       // far above 1000 deliverables
constexpr off_t kMaxSubtitleBytes = 64 << 20;  // a feature film's SRT is < 1 MiB
constexpr size_t kMaxShownChars = 48;          // user text quoted in messages

const char kNameRule[] =
    "names use 1-64 characters from A-Z a-z 0-9 . _ -, start with a letter or digit, and "
    "contain no `..`";

const std::vector<std::string> kTopFields = {"version",      "name",          "source",
                                             "output_dir",   "priority",      "subtitles",
                                             "deliverables", "keep_versions", "webhooks"};
const std::vector<std::string> kWebhookFields = {"url", "secret_file", "events"};
const std::vector<std::string> kDeliverableFields = {
    "name",          "preset",   "height", "aspect", "focus",     "subtitles", "at",
    "dynamic_range", "loudness", "qc",     "ladder", "segment_s", "encoder"};
const std::vector<std::string> kLoudnessFields = {"standard", "target_lufs", "true_peak_db", "lra"};
const std::vector<std::string> kQcFields = {
    "loudness",      "loudness_tolerance_lu", "black_max_s", "freeze_max_s",
    "silence_max_s", "allow_in_source",       "ssim_min",    "psnr_min_db"};
const std::vector<std::string> kDynamicRanges = {"sdr", "hdr"};
const std::vector<std::string> kEncoderChoices = {"auto", "cpu", "gpu"};
const std::vector<std::string> kFocusFields = {"x", "y"};
const std::vector<std::string> kSubtitleChoiceFields = {"language", "mode"};
const std::vector<std::string> kModes = {"burn", "soft"};
const std::vector<std::string> kSubtitleExtensions = {".srt", ".ass", ".ssa", ".vtt"};
const std::vector<std::string> kListExtensions = {".m3u8",     ".m3u",    ".pls",  ".txt",
                                                  ".ffconcat", ".concat", ".xspf", ".sdp"};

// ---- text helpers -----------------------------------------------------------

// A number as a user would write it: -23, 0.5.
std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// User text as it may appear in a message or a field path: control bytes
// escaped, long text cut, so a hostile 4 KB value cannot flood the terminal.
std::string Printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= kMaxShownChars) {
      out += "...(" + std::to_string(s.size()) + " bytes)";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Quote(const std::string& s) { return "`" + Printable(s) + "`"; }

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += items[i];
  }
  return out;
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string IndexPath(const std::string& parent, size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

// Optimal-string-alignment distance (a transposition counts as one edit).
size_t EditDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// The closest of `known` to `word` when it is a near miss, else "".
std::string Suggest(const std::string& word, const std::vector<std::string>& known) {
  if (word.size() > 64) return "";
  const std::string w = Lower(word);
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& k : known) {
    size_t d = EditDistance(w, Lower(k));
    size_t limit = k.size() <= 4 ? 1 : 2;
    if (d <= limit && d < best_d) {
      best = k;
      best_d = d;
    }
  }
  return best;
}

std::string DidYouMean(const std::string& word, const std::vector<std::string>& known) {
  std::string s = Suggest(word, known);
  return s.empty() ? "" : "did you mean `" + s + "`? ";
}

bool EndsWithCi(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return Lower(s.substr(s.size() - suffix.size())) == suffix;
}

// The names of the presets `keep` holds for (every one by default), in
// table order.
std::vector<std::string> PresetNameList(
    const std::function<bool(const PresetInfo&)>& keep = nullptr) {
  std::vector<std::string> names;
  for (const auto& p : Presets()) {
    if (!keep || keep(p)) names.push_back(p.name);
  }
  return names;
}

std::string PresetNames() { return JoinList(PresetNameList()); }

// Presets on which a deliverable may carry subtitles (burned or soft).
std::string SubtitlePresets(bool soft) {
  return JoinList(PresetNameList([soft](const PresetInfo& p) {
    return p.has_video && !p.still && (!soft || p.soft_subtitles);
  }));
}

std::string StreamingPresets() {
  return JoinList(PresetNameList([](const PresetInfo& p) { return p.streaming; }));
}

// Why `name` breaks the name rule ("" when it does not).
std::string NameProblem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameLength) {
    return "is " + std::to_string(name.size()) + " characters long; at most 64 are allowed";
  }
  if (name.find('/') != std::string::npos) return "contains `/`";
  if (name.find("..") != std::string::npos) return "contains `..`";
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    return "starts with " + Quote(name.substr(0, 1)) +
           "; the first character must be a letter or digit";
  }
  for (char ch : name) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x80) return "contains a non-ASCII character, which is not allowed";
    if (c == ' ') return "contains a space, which is not allowed";
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) {
      return "contains " + Quote(std::string(1, ch)) + ", which is not allowed";
    }
  }
  return "";
}

bool HasControlChar(const std::string& s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// String checks on a path that FFmpeg will open as an input: it must be a
// plain local file name, nothing FFmpeg would read as a protocol.
// Why `path` cannot be a local path on Linux (PATH_MAX 4096, NAME_MAX 255
// bytes), "" when it can. Checked up front so a hostile 4 KB value is a spec
// error, not a failure halfway through a run.
std::string PathLengthProblem(const std::string& path) {
  constexpr size_t kMaxPath = 4095;
  constexpr size_t kMaxComponent = 255;
  if (path.size() > kMaxPath) {
    return "is " + std::to_string(path.size()) + " bytes long; a path may have at most 4095";
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash - start > kMaxComponent) {
      return "has a name of " + std::to_string(slash - start) +
             " bytes; each folder or file name may have at most 255";
    }
    start = slash + 1;
  }
  return "";
}

std::string InputPathProblem(const std::string& path) {
  static const std::regex kProtocolPrefix("^[A-Za-z][A-Za-z0-9+.-]*[:,]");
  if (path.empty()) return "is empty; give a local file path";
  if (HasControlChar(path)) {
    return "contains a control character (NUL, newline, ...); give a plain local file path";
  }
  if (std::string why = PathLengthProblem(path); !why.empty()) return why;
  if (path.find("://") != std::string::npos) {
    return "is a URL; only local files are allowed (download it first)";
  }
  std::smatch m;
  if (std::regex_search(path, m, kProtocolPrefix)) {
    return "starts with " + Quote(m.str(0)) +
           ", which FFmpeg reads as a protocol prefix; only local files are allowed (for a local "
           "file whose name has `:` or `,`, write " +
           Quote("./" + path) + ")";
  }
  return "";
}

// Number of seconds from "HH:MM:SS[.mmm]", "MM:SS[.mmm]" or a plain number.
std::optional<double> ParseTime(const std::string& text) {
  static const std::regex kHms(R"(^(\d{1,3}):([0-5]\d):([0-5]\d(?:\.\d{1,3})?)$)");
  static const std::regex kMs(R"(^([0-5]?\d):([0-5]\d(?:\.\d{1,3})?)$)");
  static const std::regex kSeconds(R"(^\d+(?:\.\d+)?$)");
  std::smatch m;
  if (std::regex_match(text, m, kHms)) {
    return std::stoi(m.str(1)) * 3600.0 + std::stoi(m.str(2)) * 60.0 + std::stod(m.str(3));
  }
  if (std::regex_match(text, m, kMs)) return std::stoi(m.str(1)) * 60.0 + std::stod(m.str(2));
  if (text.size() <= 32 && std::regex_match(text, kSeconds)) return std::stod(text);
  return std::nullopt;
}

bool ValidUtf8(const std::string& s, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

// Reads a regular file without blocking on FIFOs; `limit` bounds its size.
// Returns "" on success, else the reason.
std::string ReadRegularFile(const std::string& path, off_t limit, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return std::strerror(errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return why;
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return "it is a folder, not a file";
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return "it is not a regular file (a FIFO, device or socket)";
  }
  if (st.st_size > limit) {
    ::close(fd);
    return "it is too large (" + std::to_string(st.st_size) + " bytes; at most " +
           std::to_string(limit) + ")";
  }
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      std::string why = std::strerror(errno);
      ::close(fd);
      return why;
    }
    if (r == 0) break;
    out->append(buf, static_cast<size_t>(r));
    if (static_cast<off_t>(out->size()) > limit) {
      ::close(fd);
      return "it is too large (more than " + std::to_string(limit) + " bytes)";
    }
  }
  ::close(fd);
  return "";
}

// ---- YAML helpers -----------------------------------------------------------

int LineOf(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? m.line + 1 : 0;
}

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return Quote(n.Scalar());
    default:
      return "nothing";
  }
}

// A scalar the author wrote as a string ("..." or '...' or !!str).
bool IsQuoted(const YAML::Node& n) { return n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str"; }

// One field of a mapping, as read.
struct Field {
  std::string key;
  int line = 0;  // line of the key
  YAML::Node value;
};

class Validator {
 public:
  Validator(std::string file, fs::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  SpecParseResult Run(const std::string& text);

 private:
  void Error(int line, std::string field, std::string message) {
    errors_.push_back(SpecError{file_, line, std::move(field), std::move(message)});
  }

  // Reads a mapping's fields: reports non-scalar keys, duplicate keys and
  // (when `allowed` is non-null) unknown keys. Returns the first occurrence
  // of each acceptable key, in file order.
  std::vector<Field> ReadMapping(const YAML::Node& map, const std::string& path,
                                 const std::vector<std::string>* allowed);
  // Reports a required field missing from `fields`.
  bool Require(const std::vector<Field>& fields, const std::string& key, int map_line,
               const std::string& path, const std::string& what);

  std::optional<std::string> GetString(const Field& f, const std::string& path);
  std::optional<long long> GetInt(const Field& f, const std::string& path);
  std::optional<double> GetNumber(const Field& f, const std::string& path);

  // Resolves a user path against the spec's folder.
  std::string Resolve(const std::string& path) const {
    fs::path p(path);
    if (p.is_relative()) p = base_dir_ / p;
    return p.lexically_normal().string();
  }

  void ReadTop(const YAML::Node& root, DeliverySpec* spec);
  void ReadSource(const Field& f, DeliverySpec* spec);
  void ReadOutputDir(const Field& f, DeliverySpec* spec);
  void ReadSubtitles(const Field& f, DeliverySpec* spec);
  void ReadDeliverables(const Field& f, DeliverySpec* spec);
  void ReadWebhooks(const Field& f, DeliverySpec* spec);
  void ReadDeliverable(const YAML::Node& node, const std::string& path, const DeliverySpec& spec,
                       DeliverableSpec* d, bool* name_ok);
  // `loudness` (and qc.loudness's target): a standard's name or a mapping;
  // nullopt after an error.
  std::optional<LoudnessChoice> ReadLoudness(const Field& f, const std::string& path);
  std::optional<QcChoice> ReadQc(const Field& f, const std::string& path);
  // `ladder`: a list of 1 to kMaxRungs distinct even heights.
  void ReadLadder(const Field& f, const std::string& path, DeliverableSpec* d);
  std::optional<bool> GetBool(const Field& f, const std::string& path);
  // A number from `min` to `max` (the message says what it is for).
  std::optional<double> GetRange(const Field& f, const std::string& path, double min, double max,
                                 const std::string& unit);

  std::string file_;
  fs::path base_dir_;
  std::vector<SpecError> errors_;
  std::set<std::string> suggested_;  // field paths offered as "did you mean"
};

std::vector<Field> Validator::ReadMapping(const YAML::Node& map, const std::string& path,
                                          const std::vector<std::string>* allowed) {
  std::vector<Field> fields;
  std::map<std::string, int> seen;  // key -> line of first occurrence
  for (const auto& pair : map) {
    const YAML::Node key = pair.first;  // copies: the iterator yields temporaries
    int line = LineOf(key);
    if (!key.IsScalar()) {
      Error(line, path, "a field name must be a plain word, not " + Describe(key));
      continue;
    }
    const std::string& k = key.Scalar();
    const std::string field_path = JoinPath(path, Printable(k));
    auto [pos, inserted] = seen.emplace(k, line);
    if (!inserted) {
      Error(line, field_path,
            "duplicate field (first given at line " + std::to_string(pos->second) +
                "); each field may appear only once");
      continue;
    }
    if (allowed != nullptr && std::find(allowed->begin(), allowed->end(), k) == allowed->end()) {
      std::string guess = Suggest(k, *allowed);
      if (!guess.empty()) suggested_.insert(JoinPath(path, guess));
      Error(line, field_path,
            "unknown field " + Quote(k) + "; " + DidYouMean(k, *allowed) +
                "allowed here: " + JoinList(*allowed));
      continue;
    }
    fields.push_back(Field{k, line, pair.second});
  }
  return fields;
}

const Field* FindField(const std::vector<Field>& fields, const std::string& key) {
  for (const auto& f : fields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool Validator::Require(const std::vector<Field>& fields, const std::string& key, int map_line,
                        const std::string& path, const std::string& what) {
  if (FindField(fields, key) != nullptr) return true;
  // A misspelt field was already reported with this name as the suggestion.
  if (suggested_.count(JoinPath(path, key)) != 0) return false;
  Error(map_line, JoinPath(path, key), "required field is missing; " + what);
  return false;
}

std::optional<std::string> Validator::GetString(const Field& f, const std::string& path) {
  if (!f.value.IsScalar()) {
    Error(f.line, path, "must be a string, got " + Describe(f.value));
    return std::nullopt;
  }
  return f.value.Scalar();
}

void Validator::ReadLadder(const Field& f, const std::string& path, DeliverableSpec* d) {
  const std::string rule = "a list of 1 to " + std::to_string(kMaxRungs) +
                           " distinct even picture heights from 32 to 4320, e.g. [1080, 720, 480, "
                           "360]";
  if (!f.value.IsSequence() || f.value.size() == 0 || f.value.size() > kMaxRungs) {
    Error(f.line, path, "must be " + rule + ", got " + Describe(f.value));
    return;
  }
  std::vector<int> rungs;
  bool ok = true;
  for (size_t k = 0; k < f.value.size(); ++k) {
    const Field rung{std::to_string(k), LineOf(f.value[k]), f.value[k]};
    const std::string rpath = path + "[" + std::to_string(k) + "]";
    auto v = GetInt(rung, rpath);
    if (!v) {
      ok = false;
    } else if (*v < kMinHeight || *v > kMaxHeight || *v % 2 != 0) {
      Error(rung.line, rpath,
            "height " + std::to_string(*v) + " is not allowed; the ladder is " + rule);
      ok = false;
    } else if (std::find(rungs.begin(), rungs.end(), *v) != rungs.end()) {
      Error(rung.line, rpath,
            "height " + std::to_string(*v) + " is listed twice; the ladder is " + rule);
      ok = false;
    } else {
      rungs.push_back(static_cast<int>(*v));
    }
  }
  if (!ok) return;
  std::sort(rungs.rbegin(), rungs.rend());
  d->ladder = std::move(rungs);
}

std::optional<long long> Validator::GetInt(const Field& f, const std::string& path) {
  if (!f.value.IsScalar()) {
    Error(f.line, path, "must be an integer, got " + Describe(f.value));
    return std::nullopt;
  }
  const std::string& s = f.value.Scalar();
  if (IsQuoted(f.value)) {
    Error(f.line, path,
          "must be an integer, got the string " + Quote(s) + " (write numbers without quotes)");
    return std::nullopt;
  }
  long long v = 0;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (!s.empty() && *first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (s.empty() || ec != std::errc() || ptr != last) {
    Error(f.line, path, "must be an integer, got " + Quote(s));
    return std::nullopt;
  }
  return v;
}

std::optional<double> Validator::GetNumber(const Field& f, const std::string& path) {
  if (!f.value.IsScalar()) {
    Error(f.line, path, "must be a number, got " + Describe(f.value));
    return std::nullopt;
  }
  const std::string& s = f.value.Scalar();
  if (IsQuoted(f.value)) {
    Error(f.line, path,
          "must be a number, got the string " + Quote(s) + " (write numbers without quotes)");
    return std::nullopt;
  }
  double v = 0;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (!s.empty() && *first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (s.empty() || ec != std::errc() || ptr != last || !std::isfinite(v)) {
    Error(f.line, path, "must be a number, got " + Quote(s));
    return std::nullopt;
  }
  return v;
}

// An unquoted YAML truth value (true/yes/on, false/no/off); nullopt for
// anything else.
std::optional<bool> BoolWord(const YAML::Node& value) {
  if (!value.IsScalar() || IsQuoted(value)) return std::nullopt;
  const std::string v = Lower(value.Scalar());
  if (v == "true" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "no" || v == "off") return false;
  return std::nullopt;
}

std::optional<bool> Validator::GetBool(const Field& f, const std::string& path) {
  if (auto v = BoolWord(f.value)) return v;
  Error(f.line, path,
        "must be true or false, got " +
            (f.value.IsScalar() ? Quote(f.value.Scalar()) : Describe(f.value)));
  return std::nullopt;
}

std::optional<double> Validator::GetRange(const Field& f, const std::string& path, double min,
                                          double max, const std::string& unit) {
  auto v = GetNumber(f, path);
  if (!v) return std::nullopt;
  if (*v < min || *v > max) {
    Error(f.line, path,
          Printable(f.value.Scalar()) + " is out of range; use a number from " + FormatNumber(min) +
              " to " + FormatNumber(max) + " " + unit);
    return std::nullopt;
  }
  return v;
}

std::optional<LoudnessChoice> Validator::ReadLoudness(const Field& f, const std::string& path) {
  const std::vector<std::string> names = LoudnessStandardNames();
  auto standard = [&](const std::string& name, int line,
                      const std::string& at) -> std::optional<LoudnessChoice> {
    auto t = LoudnessStandard(name);
    if (!t) {
      Error(line, at,
            "unknown loudness standard " + Quote(name) + "; " + DidYouMean(name, names) +
                "known: " + JoinList(names) + " (or a mapping {target_lufs, true_peak_db, lra})");
      return std::nullopt;
    }
    return LoudnessChoice{t->standard(), t->integrated_lufs(), t->true_peak_db(), 0};
  };
  if (f.value.IsScalar()) return standard(f.value.Scalar(), f.line, path);
  if (!f.value.IsMap()) {
    Error(f.line, path,
          "must be a standard (" + JoinList(names) +
              ") or a mapping {target_lufs: -23, true_peak_db: -1, lra: 15}, got " +
              Describe(f.value));
    return std::nullopt;
  }
  std::vector<Field> fields = ReadMapping(f.value, path, &kLoudnessFields);
  LoudnessChoice c;
  bool ok = true;
  bool has_target = false;
  bool has_peak = false;
  if (const Field* s = FindField(fields, "standard")) {
    auto name = GetString(*s, JoinPath(path, "standard"));
    auto base = name ? standard(*name, s->line, JoinPath(path, "standard")) : std::nullopt;
    if (!base) {
      ok = false;
    } else {
      c = *base;
      has_target = has_peak = true;
    }
  }
  for (const Field& x : fields) {
    const std::string xpath = JoinPath(path, x.key);
    if (x.key == "target_lufs") {
      auto v = GetRange(x, xpath, -70, -5, "LUFS (e.g. -23 for EBU R128, -16 for the web)");
      if (v) c.target_lufs = *v, has_target = true;
      ok = ok && v;
    } else if (x.key == "true_peak_db") {
      auto v = GetRange(x, xpath, -9, 0, "dBTP (e.g. -1)");
      if (v) c.true_peak_db = *v, has_peak = true;
      ok = ok && v;
    } else if (x.key == "lra") {
      auto v = GetRange(x, xpath, 1, 50, "LU (loudness range; leave it out to keep the source's)");
      if (v) c.lra = *v;
      ok = ok && v;
    }
  }
  if (ok && !has_target) {
    Error(f.line, path, "needs `target_lufs` (or a `standard` to start from)");
    ok = false;
  }
  if (ok && !has_peak) c.true_peak_db = -1;
  if (ok && FindField(fields, "standard") && fields.size() > 1) c.standard += " (adjusted)";
  if (!ok) return std::nullopt;
  return c;
}

std::optional<QcChoice> Validator::ReadQc(const Field& f, const std::string& path) {
  QcChoice q;
  if (f.value.IsScalar() &&
      (Lower(f.value.Scalar()) == "none" || Lower(f.value.Scalar()) == "false")) {
    q.none = true;
    return q;
  }
  if (!f.value.IsMap()) {
    Error(f.line, path,
          "must be `none` or a mapping of gates (" + JoinList(kQcFields) + "), got " +
              Describe(f.value));
    return std::nullopt;
  }
  bool ok = true;
  for (const Field& x : ReadMapping(f.value, path, &kQcFields)) {
    const std::string xpath = JoinPath(path, x.key);
    if (x.key == "loudness") {
      // true/false, or what to check against.
      if (auto on = BoolWord(x.value)) {
        q.loudness = on;
        continue;
      }
      auto target = ReadLoudness(x, xpath);
      if (target) {
        q.loudness = true;
        q.loudness_target = target;
      }
      ok = ok && target;
    } else if (x.key == "loudness_tolerance_lu") {
      auto v = GetRange(x, xpath, 0.1, 10, "LU");
      if (v) q.loudness_tolerance_lu = v;
      ok = ok && v;
    } else if (x.key == "allow_in_source") {
      auto v = GetBool(x, xpath);
      if (v) q.allow_in_source = v;
      ok = ok && v;
    } else if (x.key == "ssim_min") {
      auto v = GetRange(x, xpath, 0, 1, "(SSIM; 0 turns the gate off, 0.95 is a usual floor)");
      if (v) q.ssim_min = v;
      ok = ok && v;
    } else if (x.key == "psnr_min_db") {
      auto v = GetRange(x, xpath, 0, 100, "dB (PSNR; 0 turns the gate off, 35 is a usual floor)");
      if (v) q.psnr_min_db = v;
      ok = ok && v;
    } else {
      auto v = GetRange(x, xpath, 0, 3600, "seconds (0 turns the gate off)");
      if (!v) {
        ok = false;
      } else if (x.key == "black_max_s") {
        q.black_max_s = v;
      } else if (x.key == "freeze_max_s") {
        q.freeze_max_s = v;
      } else {
        q.silence_max_s = v;
      }
    }
  }
  if (!ok) return std::nullopt;
  return q;
}

SpecParseResult Validator::Run(const std::string& text) {
  SpecParseResult result;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    Error(line, "", "malformed YAML: " + e.msg + "; the spec must be valid YAML or JSON");
    result.errors = std::move(errors_);
    return result;
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    Error(1, "",
          "the spec is empty; it must be a mapping with version, name, source and "
          "deliverables");
    result.errors = std::move(errors_);
    return result;
  }
  if (docs.size() > 1) {
    Error(LineOf(docs[1]), "",
          "found " + std::to_string(docs.size()) +
              " YAML documents; a spec is exactly one document (remove the extra `---`)");
  }
  const YAML::Node& root = docs[0];
  if (!root.IsMap()) {
    Error(LineOf(root), "",
          "the spec must be a mapping with version, name, source and deliverables, got " +
              Describe(root));
    result.errors = std::move(errors_);
    return result;
  }

  DeliverySpec spec;
  spec.spec_file = file_;
  try {
    ReadTop(root, &spec);
  } catch (const YAML::Exception& e) {
    // Not expected: every access above checks the node type first.
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    Error(line, "", std::string("cannot read the spec: ") + e.what());
  }

  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const SpecError& a, const SpecError& b) { return a.line < b.line; });
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.spec = std::move(spec);
  return result;
}

void Validator::ReadTop(const YAML::Node& root, DeliverySpec* spec) {
  std::vector<Field> fields = ReadMapping(root, "", &kTopFields);
  const int line = LineOf(root);
  Require(fields, "version", line, "", "add `version: 1`");
  bool have_name =
      Require(fields, "name", line, "",
              "add `name: NAME`, the delivery's name (" + std::string(kNameRule) + ")");
  Require(fields, "source", line, "", "add `source: FILE`, the local media file to deliver");
  Require(fields, "deliverables", line, "",
          "add `deliverables:`, a list of 1 to 1000 entries with name and preset");

  bool name_ok = false;
  for (const Field& f : fields) {
    if (f.key == "version") {
      if (auto v = GetInt(f, "version")) {
        if (*v != kSpecVersion) {
          Error(f.line, "version",
                "unsupported version " + std::to_string(*v) + "; this reelfarm reads version 1");
        } else {
          spec->version = kSpecVersion;
        }
      }
    } else if (f.key == "name") {
      if (auto v = GetString(f, "name")) {
        std::string why = NameProblem(*v);
        if (!why.empty()) {
          Error(f.line, "name", "invalid name " + Quote(*v) + ": it " + why + "; " + kNameRule);
        } else {
          spec->name = *v;
          name_ok = true;
        }
      }
    } else if (f.key == "source") {
      ReadSource(f, spec);
    } else if (f.key == "output_dir") {
      ReadOutputDir(f, spec);
    } else if (f.key == "priority") {
      if (auto v = GetInt(f, "priority")) {
        if (*v < kMinPriority || *v > kMaxPriority) {
          Error(f.line, "priority",
                "priority " + std::to_string(*v) +
                    " is out of range; use an integer from 0 to "
                    "100 (higher runs first, default 50)");
        } else {
          spec->priority = static_cast<int>(*v);
        }
      }
    } else if (f.key == "subtitles") {
      ReadSubtitles(f, spec);
    } else if (f.key == "webhooks") {
      ReadWebhooks(f, spec);
    } else if (f.key == "keep_versions") {
      if (auto v = GetInt(f, "keep_versions")) {
        if (*v < 0 || *v > kMaxKeepVersions) {
          Error(f.line, "keep_versions",
                "keep_versions " + std::to_string(*v) + " is out of range; use an integer from 0 " +
                    "to " + std::to_string(kMaxKeepVersions) +
                    " (older versions whose files are kept under versions/, default " +
                    std::to_string(kDefaultKeepVersions) + ")");
        } else {
          spec->keep_versions = static_cast<int>(*v);
        }
      }
    }
  }
  // Deliverables last: their subtitle choices refer to the declared languages.
  if (const Field* f = FindField(fields, "deliverables")) ReadDeliverables(*f, spec);

  if (spec->output_dir.empty() && have_name && name_ok) {
    spec->output_dir = Resolve("deliveries/" + spec->name);
  }
}

void Validator::ReadSource(const Field& f, DeliverySpec* spec) {
  auto v = GetString(f, "source");
  if (!v) return;
  const std::string& s = *v;
  std::string why = InputPathProblem(s);
  if (why.empty()) {
    for (const auto& ext : kListExtensions) {
      if (EndsWithCi(s, ext)) {
        why = "is a playlist or list file (" + ext +
              "); these are refused: the source must be one local media file";
        break;
      }
    }
  }
  if (why.empty()) {
    static const std::regex kImageSequence("%[0-9]*d");
    if (std::regex_search(s, kImageSequence)) {
      why =
          "contains an image-sequence pattern (`%d`); the source must be one local media file "
          "(rename it without `%`)";
    }
  }
  if (why.empty()) {
    fs::path resolved(Resolve(s));
    if (!resolved.has_filename()) why = "names a folder; the source must be a media file";
  }
  if (!why.empty()) {
    Error(f.line, "source", "source " + Quote(s) + " " + why);
    return;
  }
  spec->source = Resolve(s);
  spec->source_line = f.line;
}

void Validator::ReadOutputDir(const Field& f, DeliverySpec* spec) {
  auto v = GetString(f, "output_dir");
  if (!v) return;
  const std::string& s = *v;
  std::string why;
  if (s.empty()) {
    why = "is empty; give a folder path, or leave output_dir out for deliveries/<name>";
  } else if (HasControlChar(s)) {
    why = "contains a control character (NUL, newline, ...); give a plain local folder path";
  } else if (std::string len = PathLengthProblem(s); !len.empty()) {
    why = len;
  } else if (s.find("://") != std::string::npos) {
    why = "is a URL; output_dir must be a local folder";
  } else if (s.find('%') != std::string::npos) {
    why =
        "contains `%`, which FFmpeg's image writer reads as a frame-number pattern; choose a "
        "folder name without `%`";
  }
  if (!why.empty()) {
    Error(f.line, "output_dir", "output_dir " + Quote(s) + " " + why);
    return;
  }
  fs::path p(Resolve(s));
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  spec->output_dir = p.string();
  spec->output_dir_line = f.line;
}

void Validator::ReadSubtitles(const Field& f, DeliverySpec* spec) {
  if (!f.value.IsMap()) {
    Error(f.line, "subtitles",
          "must be a mapping from language to subtitle file (e.g. `en: media/film_en.srt`), got " +
              Describe(f.value));
    return;
  }
  static const std::regex kLanguage("^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$");
  for (const Field& lang : ReadMapping(f.value, "subtitles", nullptr)) {
    const std::string path = JoinPath("subtitles", Printable(lang.key));
    bool ok = true;
    if (lang.key.size() > 16 || !std::regex_match(lang.key, kLanguage)) {
      Error(lang.line, path,
            "invalid language code " + Quote(lang.key) +
                "; use a lower-case ISO 639 code with an optional region or script, like `en`, "
                "`fra` or `pt-BR` ([a-z]{2,3}(-[A-Za-z0-9]{2,8})?)");
      ok = false;
    }
    auto file = GetString(lang, path);
    if (!file) continue;
    std::string why = InputPathProblem(*file);
    if (why.empty()) {
      bool ext_ok = false;
      for (const auto& ext : kSubtitleExtensions) ext_ok = ext_ok || EndsWithCi(*file, ext);
      if (!ext_ok) why = "is not a subtitle file; allowed extensions: .srt .ass .ssa .vtt";
    }
    if (!why.empty()) {
      Error(lang.line, path, "subtitle file " + Quote(*file) + " " + why);
      ok = false;
    }
    if (ok) {
      spec->subtitles[lang.key] = Resolve(*file);
      spec->subtitle_lines[lang.key] = lang.line;
    }
  }
}

void Validator::ReadDeliverables(const Field& f, DeliverySpec* spec) {
  if (!f.value.IsSequence()) {
    Error(f.line, "deliverables",
          "must be a list of 1 to 1000 entries (each with name and preset), got " +
              Describe(f.value));
    return;
  }
  const size_t count = f.value.size();
  if (count == 0) {
    Error(f.line, "deliverables", "is empty; give 1 to 1000 entries, each with name and preset");
    return;
  }
  if (count > kMaxDeliverables) {
    Error(f.line, "deliverables",
          "has " + std::to_string(count) +
              " entries; at most 1000 are allowed (split the delivery into several specs)");
  }
  std::map<std::string, int> names;  // name -> line of first use
  std::vector<YAML::Node> items(f.value.begin(), f.value.end());
  const size_t checked = std::min(count, kMaxDeliverables);
  for (size_t i = 0; i < checked; ++i) {
    const YAML::Node node = items[i];
    const std::string path = IndexPath("deliverables", i);
    DeliverableSpec d;
    bool name_ok = false;
    ReadDeliverable(node, path, *spec, &d, &name_ok);
    if (name_ok) {
      int line = d.field_lines["name"];
      auto [pos, inserted] = names.emplace(d.name, line);
      if (!inserted) {
        Error(line, JoinPath(path, "name"),
              "duplicate deliverable name " + Quote(d.name) + " (first used at line " +
                  std::to_string(pos->second) +
                  "); each deliverable needs its own name, the output file's stem");
      }
    }
    spec->deliverables.push_back(std::move(d));
  }
}

void Validator::ReadWebhooks(const Field& f, DeliverySpec* spec) {
  const std::string rule = "a list of 1 to " + std::to_string(kMaxSpecWebhooks) +
                           " entries, each {url: https://..., secret_file: FILE, events: [...]}";
  if (!f.value.IsSequence() || f.value.size() == 0) {
    Error(f.line, "webhooks", "must be " + rule + ", got " + Describe(f.value));
    return;
  }
  if (f.value.size() > kMaxSpecWebhooks) {
    Error(f.line, "webhooks",
          "has " + std::to_string(f.value.size()) + " entries; at most " +
              std::to_string(kMaxSpecWebhooks) + " are allowed");
    return;
  }
  size_t i = 0;
  for (const auto& node : f.value) {
    const std::string path = IndexPath("webhooks", i++);
    if (!node.IsMap()) {
      Error(LineOf(node), path,
            "must be a mapping with url and secret_file, got " + Describe(node));
      continue;
    }
    WebhookSpec hook;
    hook.line = LineOf(node);
    std::vector<Field> fields = ReadMapping(node, path, &kWebhookFields);
    bool ok = Require(fields, "url", hook.line, path, "add `url: https://HOST/PATH`");
    ok = Require(fields, "secret_file", hook.line, path,
                 "add `secret_file: FILE`, a file holding whsec_<base64> (docs/webhooks.md)") &&
         ok;
    for (const Field& w : fields) {
      const std::string field = JoinPath(path, w.key);
      if (w.key == "url") {
        auto v = GetString(w, field);
        if (!v) {
          ok = false;
          continue;
        }
        auto url = ParseWebhookUrl(*v);
        if (!url.ok()) {
          Error(w.line, field, "webhook URL " + Quote(*v) + ": " + url.status().message());
          ok = false;
        } else {
          hook.url = *v;
        }
      } else if (w.key == "secret_file") {
        auto v = GetString(w, field);
        std::string why = v ? InputPathProblem(*v) : "";
        if (!v || !why.empty()) {
          if (v) Error(w.line, field, "secret_file " + Quote(*v) + " " + why);
          ok = false;
          continue;
        }
        hook.secret_file = Resolve(*v);
        hook.secret_file_line = w.line;
      } else if (w.key == "events") {
        if (!w.value.IsSequence() || w.value.size() == 0) {
          Error(w.line, field,
                "must be a list of event types (" + JoinList(WebhookEventTypes()) + "), got " +
                    Describe(w.value));
          ok = false;
          continue;
        }
        size_t k = 0;
        for (const auto& e : w.value) {
          const std::string ef = IndexPath(field, k++);
          if (!e.IsScalar() || !IsWebhookEventType(e.Scalar())) {
            Error(LineOf(e), ef,
                  "unknown event " + (e.IsScalar() ? Quote(e.Scalar()) : Describe(e)) + "; " +
                      (e.IsScalar() ? DidYouMean(e.Scalar(), WebhookEventTypes()) : "") +
                      "allowed: " + JoinList(WebhookEventTypes()));
            ok = false;
            continue;
          }
          if (std::find(hook.events.begin(), hook.events.end(), e.Scalar()) == hook.events.end()) {
            hook.events.push_back(e.Scalar());
          }
        }
      }
    }
    if (ok) spec->webhooks.push_back(std::move(hook));
  }
}

void Validator::ReadDeliverable(const YAML::Node& node, const std::string& path,
                                const DeliverySpec& spec, DeliverableSpec* d, bool* name_ok) {
  d->line = LineOf(node);
  if (!node.IsMap()) {
    Error(d->line, path,
          "each deliverable must be a mapping with name and preset (e.g. `- name: web` / "
          "`preset: web-h264`), got " +
              Describe(node));
    return;
  }
  std::vector<Field> fields = ReadMapping(node, path, &kDeliverableFields);
  for (const Field& f : fields) d->field_lines[f.key] = f.line;
  Require(fields, "name", d->line, path,
          "each deliverable needs a `name`, unique in the spec (the output file's stem)");
  Require(fields, "preset", d->line, path,
          "each deliverable needs a `preset`, one of: " + PresetNames());

  const PresetInfo* preset = nullptr;
  std::string subtitle_mode;  // a valid mode, even when the language is wrong
  for (const Field& f : fields) {
    const std::string fpath = JoinPath(path, f.key);
    if (f.key == "name") {
      if (auto v = GetString(f, fpath)) {
        std::string why = NameProblem(*v);
        if (!why.empty()) {
          Error(f.line, fpath,
                "invalid deliverable name " + Quote(*v) + ": it " + why + "; " + kNameRule);
        } else {
          d->name = *v;
          *name_ok = true;
        }
      }
    } else if (f.key == "preset") {
      if (auto v = GetString(f, fpath)) {
        preset = FindPreset(*v);
        if (preset == nullptr) {
          Error(f.line, fpath,
                "unknown preset " + Quote(*v) + "; " + DidYouMean(*v, PresetNameList()) +
                    "known presets: " + PresetNames());
        } else {
          d->preset = *v;
        }
      }
    } else if (f.key == "height") {
      if (auto v = GetInt(f, fpath)) {
        if (*v < kMinHeight || *v > kMaxHeight) {
          Error(f.line, fpath,
                "height " + std::to_string(*v) +
                    " is out of range; use an even number from 32 to 4320");
        } else if (*v % 2 != 0) {
          Error(f.line, fpath,
                "height " + std::to_string(*v) + " is odd; use an even number from 32 to 4320");
        } else {
          d->height = static_cast<int>(*v);
        }
      }
    } else if (f.key == "aspect") {
      static const std::regex kAspect(R"(^(\d{1,9}):(\d{1,9})$)");
      if (auto v = GetString(f, fpath)) {
        std::smatch m;
        bool ok = false;
        if (std::regex_match(*v, m, kAspect)) {
          int w = std::stoi(m.str(1)), h = std::stoi(m.str(2));
          if (w >= 1 && h >= 1 && w <= kMaxAspectTerm && h <= kMaxAspectTerm) {
            d->aspect_num = w;
            d->aspect_den = h;
            ok = true;
          }
        }
        if (!ok) {
          Error(f.line, fpath,
                "malformed aspect " + Quote(*v) +
                    "; write \"W:H\" with whole numbers from 1 to 100, e.g. \"9:16\", \"1:1\" or "
                    "\"4:5\"");
        }
      }
    } else if (f.key == "focus") {
      if (!f.value.IsMap()) {
        Error(f.line, fpath,
              "must be a mapping {x: X, y: Y} with numbers from 0 to 1 (0.5 is the centre), got " +
                  Describe(f.value));
        continue;
      }
      for (const Field& c : ReadMapping(f.value, fpath, &kFocusFields)) {
        const std::string cpath = JoinPath(fpath, c.key);
        if (auto v = GetNumber(c, cpath)) {
          if (*v < 0.0 || *v > 1.0) {
            Error(c.line, cpath,
                  "focus " + c.key + " " + Printable(c.value.Scalar()) +
                      " is out of range; use a number from 0 to 1 (0.5 is the centre)");
          } else if (c.key == "x") {
            d->focus_x = *v;
          } else {
            d->focus_y = *v;
          }
        }
      }
    } else if (f.key == "subtitles") {
      if (!f.value.IsMap()) {
        Error(f.line, fpath,
              "must be a mapping {language: LANG, mode: burn|soft}, got " + Describe(f.value));
        continue;
      }
      std::vector<Field> sub = ReadMapping(f.value, fpath, &kSubtitleChoiceFields);
      const int sline = f.line;
      SubtitleChoice choice;
      bool ok = Require(sub, "language", sline, fpath,
                        "give the language of a file declared in the top-level `subtitles`");
      ok = Require(sub, "mode", sline, fpath, "give `mode: burn` or `mode: soft`") && ok;
      for (const Field& c : sub) {
        const std::string cpath = JoinPath(fpath, c.key);
        auto v = GetString(c, cpath);
        if (!v) {
          ok = false;
          continue;
        }
        if (c.key == "language") {
          if (spec.subtitles.count(*v) == 0) {
            std::vector<std::string> declared;
            for (const auto& [lang, file] : spec.subtitles) declared.push_back(lang);
            Error(c.line, cpath,
                  "language " + Quote(*v) + " is not declared in the top-level `subtitles`; " +
                      (declared.empty()
                           ? "none is declared (add `subtitles: {" + Printable(*v) +
                                 ": FILE.srt}` at the top level)"
                           : DidYouMean(*v, declared) + "declared: " + JoinList(declared)));
            ok = false;
          } else {
            choice.language = *v;
            d->field_lines["subtitles.language"] = c.line;
          }
        } else if (c.key == "mode") {
          if (*v != "burn" && *v != "soft") {
            Error(c.line, cpath,
                  "unknown subtitle mode " + Quote(*v) + "; " + DidYouMean(*v, kModes) +
                      "allowed: burn (drawn into the picture) or soft (a selectable track)");
            ok = false;
          } else {
            choice.mode = *v;
            subtitle_mode = *v;
            d->field_lines["subtitles.mode"] = c.line;
          }
        }
      }
      if (ok) d->subtitles = choice;
    } else if (f.key == "dynamic_range") {
      const std::string got = f.value.IsScalar() ? f.value.Scalar() : Describe(f.value);
      if (!f.value.IsScalar() ||
          std::find(kDynamicRanges.begin(), kDynamicRanges.end(), got) == kDynamicRanges.end()) {
        Error(f.line, fpath,
              "must be sdr or hdr, got " + Quote(got) + "; " + DidYouMean(got, kDynamicRanges));
      } else {
        d->dynamic_range = got;
      }
    } else if (f.key == "encoder") {
      const std::string got = f.value.IsScalar() ? f.value.Scalar() : Describe(f.value);
      if (!f.value.IsScalar() ||
          std::find(kEncoderChoices.begin(), kEncoderChoices.end(), got) == kEncoderChoices.end()) {
        Error(f.line, fpath,
              "must be auto, cpu or gpu, got " + Quote(got) + "; " +
                  DidYouMean(got, kEncoderChoices));
      } else {
        d->encoder = got;
      }
    } else if (f.key == "loudness") {
      if (f.value.IsScalar() && Lower(f.value.Scalar()) == "none") {
        d->loudness = std::optional<LoudnessChoice>();
      } else if (auto c = ReadLoudness(f, fpath)) {
        d->loudness = c;
      }
    } else if (f.key == "qc") {
      if (auto q = ReadQc(f, fpath)) d->qc = q;
    } else if (f.key == "ladder") {
      ReadLadder(f, fpath, d);
    } else if (f.key == "segment_s") {
      if (auto v = GetNumber(f, fpath)) {
        if (*v < kMinSegmentS || *v > kMaxSegmentS) {
          Error(f.line, fpath,
                "segment_s " + Printable(f.value.Scalar()) +
                    " is out of range; use seconds from 1 to 30 (6 is Apple's recommendation)");
        } else {
          d->segment_s = *v;
        }
      }
    } else if (f.key == "at") {
      if (!f.value.IsScalar()) {
        Error(f.line, fpath,
              "must be a time: \"HH:MM:SS\", \"HH:MM:SS.mmm\", \"MM:SS\" or seconds >= 0, got " +
                  Describe(f.value));
        continue;
      }
      const std::string& s = f.value.Scalar();
      std::optional<double> t = ParseTime(s);
      if (!t) {
        Error(f.line, fpath,
              "malformed time " + Quote(s) +
                  "; use \"HH:MM:SS\", \"HH:MM:SS.mmm\", \"MM:SS\" or a number of seconds >= 0");
      } else {
        d->at_s = *t;
      }
    }
  }

  // Rules that depend on the preset.
  if (preset == nullptr) return;
  auto line_of = [&](const std::string& key) {
    auto it = d->field_lines.find(key);
    return it == d->field_lines.end() ? d->line : it->second;
  };
  const std::string& pn = preset->name;
  if (!preset->has_video) {
    for (const char* key : {"height", "aspect", "focus"}) {
      if (d->field_lines.count(key)) {
        Error(line_of(key), JoinPath(path, key),
              std::string("`") + key + "` is not allowed on preset " + pn +
                  " (it has no picture); remove it");
      }
    }
  } else if (d->field_lines.count("focus") && !d->field_lines.count("aspect")) {
    Error(line_of("focus"), JoinPath(path, "focus"),
          "`focus` is only allowed together with `aspect` (it anchors the crop window); add "
          "`aspect: \"W:H\"` or remove focus");
  }
  if (d->dynamic_range == "hdr" && preset->hdr_video_args.empty()) {
    const std::string list =
        JoinList(PresetNameList([](const PresetInfo& p) { return !p.hdr_video_args.empty(); }));
    Error(line_of("dynamic_range"), JoinPath(path, "dynamic_range"),
          "dynamic_range hdr is not possible on preset " + pn +
              " (it makes 8-bit SDR pictures); use " + list + ", or remove it");
  }
  if (d->encoder == "gpu" && preset->gpu_video_encoder.empty()) {
    const std::string list =
        JoinList(PresetNameList([](const PresetInfo& p) { return !p.gpu_video_encoder.empty(); }));
    Error(line_of("encoder"), JoinPath(path, "encoder"),
          "encoder gpu is not possible on preset " + pn + " (no GPU encoder makes it); use " +
              list + ", or remove it");
  } else if (d->encoder == "gpu" && d->dynamic_range == "hdr") {
    Error(line_of("encoder"), JoinPath(path, "encoder"),
          "encoder gpu makes 8-bit SDR pictures only; use encoder auto or cpu for "
          "dynamic_range hdr");
  }
  if (d->field_lines.count("loudness") && !preset->has_audio) {
    Error(line_of("loudness"), JoinPath(path, "loudness"),
          "`loudness` is not allowed on preset " + pn + " (it has no sound); remove it");
  }
  if (d->qc && !d->qc->none) {
    const QcChoice& q = *d->qc;
    const bool moving = preset->has_video && !preset->still;
    if (preset->still) {
      Error(line_of("qc"), JoinPath(path, "qc"),
            "`qc` is not allowed on preset " + pn + " (a single frame); remove it");
    } else {
      if (!moving &&
          ((q.black_max_s && *q.black_max_s > 0) || (q.freeze_max_s && *q.freeze_max_s > 0) ||
           (q.ssim_min && *q.ssim_min > 0) || (q.psnr_min_db && *q.psnr_min_db > 0))) {
        Error(line_of("qc"), JoinPath(path, "qc"),
              "black_max_s, freeze_max_s, ssim_min and psnr_min_db need a picture, and preset " +
                  pn + " has none; remove them");
      }
      if (!preset->has_audio &&
          ((q.silence_max_s && *q.silence_max_s > 0) || q.loudness.value_or(false))) {
        Error(line_of("qc"), JoinPath(path, "qc"),
              "silence_max_s and loudness need sound, and preset " + pn + " has none; remove them");
      }
      const bool normalised =
          d->loudness ? d->loudness->has_value() : !preset->default_loudness.empty();
      if (preset->has_audio && q.loudness.value_or(false) && !q.loudness_target && !normalised) {
        Error(line_of("qc"), JoinPath(path, "qc.loudness"),
              "`loudness: true` has nothing to check against: " + pn +
                  " is not normalised; name a standard to check (e.g. `loudness: ebu-r128`) or "
                  "normalise it with the deliverable's `loudness`");
      }
    }
  }
  for (const char* key : {"ladder", "segment_s"}) {
    if (d->field_lines.count(key) && !preset->streaming) {
      Error(line_of(key), JoinPath(path, key),
            std::string("`") + key + "` is only allowed on streaming presets (" +
                StreamingPresets() + "); remove it");
    }
  }
  if (preset->streaming && d->field_lines.count("height")) {
    Error(line_of("height"), JoinPath(path, "height"),
          "`height` is not allowed on preset " + pn +
              "; give the renditions' heights as `ladder: [1080, 720, 480, 360]`, or leave it "
              "out for the default ladder from the source");
  }
  if (d->field_lines.count("at") && !preset->still) {
    Error(line_of("at"), JoinPath(path, "at"),
          "`at` is only allowed on preset thumbnail-jpg (the frame to capture); remove it");
  }
  if (d->field_lines.count("subtitles")) {
    if (!preset->has_video || preset->still) {
      Error(
          line_of("subtitles"), JoinPath(path, "subtitles"),
          "subtitles are not allowed on preset " + pn + "; allowed on: " + SubtitlePresets(false));
    } else if (subtitle_mode == "soft" && !preset->soft_subtitles) {
      Error(line_of("subtitles.mode"), JoinPath(path, "subtitles.mode"),
            "mode soft is not possible on preset " + pn +
                " (its container cannot carry a subtitle track); use mode burn, or a preset that "
                "can: " +
                SubtitlePresets(true));
    }
  }
}

}  // namespace

std::string SpecError::ToString() const {
  std::string out = file + ":" + std::to_string(line) + ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

bool IsValidName(const std::string& name) { return NameProblem(name).empty(); }

SpecParseResult ParseSpecText(const std::string& text, const std::string& file_name,
                              const std::string& base_dir) {
  fs::path base = base_dir.empty() ? fs::path(".") : fs::path(base_dir);
  if (base.is_relative()) {
    std::error_code ec;
    fs::path abs = fs::absolute(base, ec);
    if (!ec) base = abs;
  }
  if (static_cast<off_t>(text.size()) > kMaxSpecBytes) {
    // The API's body limit keeps a POSTed spec near this; a spec file is
    // read with the same bound.
    SpecParseResult result;
    result.errors.push_back(SpecError{file_name, 0, "",
                                      "the spec is too large (" + std::to_string(text.size()) +
                                          " bytes; at most " + std::to_string(kMaxSpecBytes) +
                                          ")"});
    return result;
  }
  Validator v(file_name, base.lexically_normal());
  return v.Run(text);
}

SpecParseResult ParseSpecFile(const std::string& path) {
  SpecParseResult result;
  std::string text;
  std::string why = ReadRegularFile(path, kMaxSpecBytes, &text);
  if (!why.empty()) {
    result.errors.push_back(SpecError{path, 0, "", "cannot read spec: " + why});
    return result;
  }
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec);
  if (ec) {
    result.errors.push_back(SpecError{path, 0, "", "cannot read spec: " + ec.message()});
    return result;
  }
  return ParseSpecText(text, path, abs.lexically_normal().parent_path().string());
}

namespace {

// Checks one input file named by the spec; returns "" when it is usable.
std::string LocalFileProblem(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    if (st.type() == fs::file_type::not_found || ec == std::errc::no_such_file_or_directory) {
      return "does not exist (relative paths resolve against the spec's folder); give an existing "
             "local file";
    }
    return "cannot be accessed: " + ec.message();
  }
  switch (st.type()) {
    case fs::file_type::regular:
      break;
    case fs::file_type::directory:
      return "is a folder; give a regular file";
    case fs::file_type::fifo:
      return "is a FIFO (named pipe); only regular files are allowed";
    case fs::file_type::block:
    case fs::file_type::character:
      return "is a device; only regular files are allowed";
    case fs::file_type::socket:
      return "is a socket; only regular files are allowed";
    default:
      return "is not a regular file; only regular files are allowed";
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return std::string("cannot be read (") + std::strerror(errno) +
           "); the file must be readable by reelfarm";
  }
  return "";
}

}  // namespace

std::vector<SpecError> CheckSpecFiles(const DeliverySpec& spec) {
  std::vector<SpecError> errors;
  std::string why = LocalFileProblem(spec.source);
  if (!why.empty()) {
    errors.push_back(SpecError{spec.spec_file, spec.source_line, "source",
                               "source " + Quote(spec.source) + " " + why});
  }
  for (const auto& [lang, file] : spec.subtitles) {
    auto it = spec.subtitle_lines.find(lang);
    const int line = it == spec.subtitle_lines.end() ? 0 : it->second;
    const std::string field = "subtitles." + lang;
    why = LocalFileProblem(file);
    if (why.empty()) {
      std::string text;
      std::string read_error = ReadRegularFile(file, kMaxSubtitleBytes, &text);
      if (!read_error.empty()) {
        why = "cannot be read: " + read_error;
      } else {
        if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
        size_t bad = 0;
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
          why = "is empty; it needs at least one subtitle";
        } else if (!ValidUtf8(text, &bad)) {
          int text_line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + bad, '\n'));
          why = "is not valid UTF-8 (first bad byte on its line " + std::to_string(text_line) +
                "); save it as UTF-8 (a BOM is allowed)";
        }
      }
    }
    if (!why.empty()) {
      errors.push_back(
          SpecError{spec.spec_file, line, field, "subtitle file " + Quote(file) + " " + why});
    }
  }
  for (size_t i = 0; i < spec.webhooks.size(); ++i) {
    const WebhookSpec& hook = spec.webhooks[i];
    why = LocalFileProblem(hook.secret_file);
    if (!why.empty()) {
      errors.push_back(SpecError{spec.spec_file, hook.secret_file_line,
                                 "webhooks[" + std::to_string(i) + "].secret_file",
                                 "secret_file " + Quote(hook.secret_file) + " " + why});
    }
  }
  if (!spec.output_dir.empty()) {
    std::error_code ec;
    fs::file_status st = fs::status(spec.output_dir, ec);
    if (!ec && fs::exists(st) && !fs::is_directory(st)) {
      errors.push_back(SpecError{spec.spec_file, spec.output_dir_line, "output_dir",
                                 "output_dir " + Quote(spec.output_dir) +
                                     " exists and is not a folder; give a folder path"});
    }
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const SpecError& a, const SpecError& b) { return a.line < b.line; });
  return errors;
}

std::vector<SpecError> CheckSpecRoots(const DeliverySpec& spec,
                                      const std::vector<std::string>& roots) {
  std::vector<SpecError> errors;
  if (roots.empty()) return errors;
  std::string allowed;
  for (const auto& r : roots) allowed += (allowed.empty() ? "" : ", ") + r;
  auto check = [&](const std::string& path, int line, const std::string& field,
                   const std::string& what) {
    if (path.empty() || PathInsideRoots(path, roots)) return;
    errors.push_back(SpecError{spec.spec_file, line, field,
                               what + " " + Quote(path) +
                                   " is outside the folders this farm may use (" + allowed +
                                   "); symlinks count where they point"});
  };
  check(spec.source, spec.source_line, "source", "source");
  for (const auto& [lang, file] : spec.subtitles) {
    auto it = spec.subtitle_lines.find(lang);
    check(file, it == spec.subtitle_lines.end() ? 0 : it->second, "subtitles." + lang,
          "subtitle file");
  }
  check(spec.output_dir, spec.output_dir_line, "output_dir", "output_dir");
  for (size_t i = 0; i < spec.webhooks.size(); ++i) {
    check(spec.webhooks[i].secret_file, spec.webhooks[i].secret_file_line,
          "webhooks[" + std::to_string(i) + "].secret_file", "secret_file");
  }
  return errors;
}

}  // namespace reelfarm
