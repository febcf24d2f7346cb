// Test media made with FFmpeg's lavfi generators, and temp folders.
#ifndef REELFARM_TESTS_SUPPORT_MEDIA_FIXTURES_H_
#define REELFARM_TESTS_SUPPORT_MEDIA_FIXTURES_H_

#include <string>
#include <vector>

namespace reelfarm::testing {

// The kinds of source real cameras produce (issue 2).
enum class SourceKind {
  kPlain,       // 320x180 25 fps H.264 + stereo AAC, mov
  kRotated,     // phone clip: 320x180 coded, display rotation 90 (upright 180x320)
  kOddSize,     // 321x181
  kVfr,         // variable frame rate
  kFps23976,    // 24000/1001
  kSurround51,  // 5.1 audio
  kNoAudio,     // video only
};

// Writes a short (default 2 s) source of `kind` to `path`; aborts the test
// binary (ADD_FAILURE + empty return) on failure. Returns `path`.
std::string GenerateSource(SourceKind kind, const std::string& path, double seconds = 2.0);

// Writes a small UTF-8 SRT (with a BOM when asked) with two cues.
std::string WriteSrt(const std::string& path, bool bom = false);

// The whole content of the file at `path` (binary); "" when it cannot be read.
std::string ReadFileBytes(const std::string& path);

// A fresh folder under $TMPDIR (or /tmp), removed by the caller if wanted.
std::string MakeTempDir(const std::string& prefix = "reelfarm-test");

// The argv of an FFmpeg that makes a test file from lavfi `inputs` (quiet,
// overwriting), then `rest` (filters, codecs, the output path).
std::vector<std::string> LavfiArgv(const std::vector<std::string>& inputs,
                                   const std::vector<std::string>& rest);

// Runs argv (no shell), returns its exit code; stdout into *out when given.
int RunArgv(const std::vector<std::string>& argv, std::string* out = nullptr);

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_MEDIA_FIXTURES_H_
