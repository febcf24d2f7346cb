// Hostile names and paths in specs (issue 3): `../../x`, absolute names,
// `$(touch /tmp/pwned-...)`, `;id`, backticks, newlines, terminal escapes,
// 4 KB values and NUL, in the delivery name, deliverable names, output_dir,
// source and subtitle paths. Each case runs the real `reelfarm plan` and
// `reelfarm run` and checks: a name is refused (exit 2, user text escaped in
// the message, nothing written); a value that is legitimately a path either is
// refused or is used literally as that path (exit 0, every file written lies
// under the output folder); a shell never runs (the canary files never exist).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/process_runner.h"
#include "tests/support/cli_run.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

// Every path under `root` (files, folders, links; links not followed),
// relative to `root`.
std::set<std::string> Tree(const std::string& root) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    out.insert(fs::relative(it->path(), root).string());
  }
  return out;
}

std::string Quoted(const std::string& s) {
  // A JSON string is a YAML double-quoted scalar: control bytes and NUL
  // travel as \uXXXX escapes and come out of yaml-cpp as raw bytes.
  return nlohmann::json(s).dump();
}

std::string RandomHex() {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

enum class Expect { kRefused, kHarmless };

struct Case {
  std::string label;
  std::string field;  // name, deliverable, output_dir, source, subtitle, language
  std::string value;
  Expect expect;
};

class HostileSpecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeTempDir("reelfarm-hostile"));
    // `reelfarm run` keeps its private Redis state under $TMPDIR: put it
    // beside, not inside, the tree that is checked.
    fs::create_directories(*root_ + "/scratch");
    const char* old = getenv("TMPDIR");
    old_tmpdir_ = new std::string(old ? old : "");
    setenv("TMPDIR", (*root_ + "/scratch").c_str(), 1);
    work_ = new std::string(*root_ + "/work");
    spec_dir_ = new std::string(*work_ + "/specs/a/b");
    fs::create_directories(*spec_dir_);
    fs::create_directories(*work_ + "/media");
    film_ = new std::string(GenerateSource(SourceKind::kPlain, *work_ + "/media/film.mov", 1.0));
    srt_ = new std::string(WriteSrt(*work_ + "/media/film_en.srt"));
    token_ = new std::string(RandomHex());
  }
  static void TearDownTestSuite() {
    // Other suites in this binary make their temp folders under $TMPDIR.
    if (old_tmpdir_->empty()) {
      unsetenv("TMPDIR");
    } else {
      setenv("TMPDIR", old_tmpdir_->c_str(), 1);
    }
    delete old_tmpdir_;
    std::error_code ec;
    fs::remove_all(*root_, ec);
    for (std::string* s : {root_, work_, spec_dir_, film_, srt_, token_}) delete s;
  }

  void SetUp() override { ASSERT_FALSE(film_->empty()); }

  // The canaries a shell would create if any of the values reached one.
  static std::string Canary() { return "/tmp/pwned-" + *token_; }
  static std::string RelCanary() { return "pwned-rel-" + *token_; }
  static std::vector<std::string> CanaryPaths() {
    return {Canary(), (fs::current_path() / RelCanary()).string(), *spec_dir_ + "/" + RelCanary(),
            *work_ + "/" + RelCanary()};
  }

  // The hostile values used for names and, with an extension, for paths.
  static std::vector<std::pair<std::string, std::string>> HostileValues(const std::string& ext) {
    return {{"dotdot", "../../x" + ext},
            {"absolute", "/etc/x" + ext},
            {"subshell", "$(touch " + Canary() + ")" + ext},
            {"subshell-relative", "$(touch " + RelCanary() + ")" + ext},
            {"semicolon", ";id;touch " + Canary() + ext},
            {"backticks", "`touch " + Canary() + "`" + ext},
            {"newline", "a\nINJECTED: line" + ext},
            {"terminal-escape", "a\x1b]0;pwned\x07\x1b[2J" + ext},
            {"4KB", std::string(4096, 'a') + ext},
            {"NUL", std::string("a\0b", 3) + ext}};
  }

  // A spec with one thumbnail deliverable (or a burned-subtitle one when the
  // case is about subtitles), with the case's value in its field.
  static std::string SpecText(const Case& c) {
    std::string name = c.field == "name" ? c.value : "hostile";
    std::string deliverable = c.field == "deliverable" ? c.value : "poster";
    std::string source = c.field == "source" ? c.value : *film_;
    std::string out = c.field == "output_dir" ? c.value : "out";
    std::string text = "version: 1\nname: " + Quoted(name) + "\nsource: " + Quoted(source) +
                       "\noutput_dir: " + Quoted(out) + "\n";
    bool subtitles = c.field == "subtitle" || c.field == "language";
    if (subtitles) {
      std::string lang = c.field == "language" ? c.value : "en";
      std::string file = c.field == "subtitle" ? c.value : *srt_;
      text += "subtitles:\n  " + Quoted(lang) + ": " + Quoted(file) + "\n";
      text += "deliverables:\n  - {name: " + Quoted(deliverable) +
              ", preset: web-h264, height: 90, subtitles: {language: " + Quoted(lang) +
              ", mode: burn}}\n";
    } else {
      text += "deliverables:\n  - {name: " + Quoted(deliverable) +
              ", preset: thumbnail-jpg, at: \"00:00:00.5\"}\n";
    }
    return text;
  }

  // Where the case's output folder resolves to (the spec's folder for
  // relative paths).
  static fs::path OutputDir(const Case& c) {
    std::string out = c.field == "output_dir" ? c.value : "out";
    fs::path p(out);
    if (p.is_relative()) p = fs::path(*spec_dir_) / p;
    return p.lexically_normal();
  }

  void ExpectNoCanary(const std::string& label) {
    for (const auto& p : CanaryPaths()) {
      EXPECT_FALSE(fs::exists(p)) << label << ": a shell ran: " << p << " exists";
    }
  }

  // Messages show user text escaped: no raw control byte of the value, no
  // forged line, no 4 KB echo.
  void ExpectEscaped(const Case& c, const std::string& err) {
    EXPECT_EQ(err.find('\0'), std::string::npos) << c.label << ": raw NUL in the message";
    EXPECT_EQ(err.find('\x1b'), std::string::npos) << c.label << ": raw ESC in the message";
    EXPECT_EQ(err.find("\nINJECTED"), std::string::npos) << c.label << ": forged line:\n" << err;
    EXPECT_EQ(err.find(std::string(1024, 'a')), std::string::npos)
        << c.label << ": 4 KB value echoed in full";
  }

  // Runs plan and run on the case; returns "plan=RC run=RC" for the figures.
  std::string Check(const Case& c, int index) {
    const std::string label = c.field + "/" + c.label;
    const std::string spec =
        *spec_dir_ + "/spec-" + c.field + "-" + std::to_string(index) + ".yaml";
    std::ofstream(spec, std::ios::binary) << SpecText(c);
    const fs::path out_dir = OutputDir(c);
    std::error_code ec;
    fs::remove_all(out_dir, ec);  // a harmless case's folder from an earlier run

    std::set<std::string> before = Tree(*work_);
    CliRun plan = RunCli({"plan", spec});
    EXPECT_EQ(Tree(*work_), before) << label << ": `plan` wrote files";
    CliRun run = RunCli({"run", spec, "--workers", "1"});
    std::set<std::string> after = Tree(*work_);
    ExpectNoCanary(label);

    if (c.expect == Expect::kRefused) {
      EXPECT_EQ(plan.rc, 2) << label << ": plan\n" << plan.out << plan.err;
      EXPECT_EQ(run.rc, 2) << label << ": run\n" << run.out << run.err;
      EXPECT_EQ(after, before) << label << ": a refused spec wrote files";
      ExpectEscaped(c, plan.err);
      ExpectEscaped(c, run.err);
    } else {
      EXPECT_EQ(plan.rc, 0) << label << ": plan\n" << plan.err;
      EXPECT_EQ(run.rc, 0) << label << ": run\n" << run.out << run.err;
      // Everything new lies inside the output folder (or is it).
      const std::string rel_out = fs::relative(out_dir, *work_).string();
      EXPECT_EQ(rel_out.rfind("..", 0), std::string::npos)
          << label << ": the test's output folder must lie in the checked tree";
      for (const auto& p : after) {
        if (before.count(p)) continue;
        bool inside = p == rel_out || p.rfind(rel_out + "/", 0) == 0 ||
                      rel_out.rfind(p + "/", 0) == 0;  // a parent folder created for it
        EXPECT_TRUE(inside) << label << ": wrote " << p << " outside " << rel_out;
      }
      EXPECT_TRUE(fs::exists(out_dir / "manifest.json")) << label << ": no manifest in " << out_dir;
    }
    return "plan=" + std::to_string(plan.rc) + " run=" + std::to_string(run.rc);
  }

  // Runs every case and prints the figures.
  void CheckAll(const std::vector<Case>& cases) {
    int refused = 0, harmless = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      std::string figures = Check(cases[i], static_cast<int>(i));
      std::cout << "  " << cases[i].field << "/" << cases[i].label << ": " << figures << "\n";
      (cases[i].expect == Expect::kRefused ? refused : harmless)++;
    }
    std::cout << cases.size() << " cases: " << refused << " refused (exit 2), " << harmless
              << " harmless (exit 0, written only inside the output folder)\n";
  }

  static std::string* root_;
  static std::string* old_tmpdir_;
  static std::string* work_;
  static std::string* spec_dir_;
  static std::string* film_;
  static std::string* srt_;
  static std::string* token_;
};

std::string* HostileSpecTest::root_ = nullptr;
std::string* HostileSpecTest::old_tmpdir_ = nullptr;
std::string* HostileSpecTest::work_ = nullptr;
std::string* HostileSpecTest::spec_dir_ = nullptr;
std::string* HostileSpecTest::film_ = nullptr;
std::string* HostileSpecTest::srt_ = nullptr;
std::string* HostileSpecTest::token_ = nullptr;

TEST_F(HostileSpecTest, HostileDeliveryAndDeliverableNamesAreRefused) {
  std::vector<Case> cases;
  for (const auto& [label, value] : HostileValues("")) {
    cases.push_back({label, "name", value, Expect::kRefused});
    cases.push_back({label, "deliverable", value, Expect::kRefused});
  }
  CheckAll(cases);
}

TEST_F(HostileSpecTest, HostileOutputDirsAreRefusedOrUsedLiterally) {
  std::vector<Case> cases = {
      {"dotdot", "output_dir", "../../x-dotdot", Expect::kHarmless},
      {"absolute", "output_dir", *work_ + "/abs-out", Expect::kHarmless},
      {"subshell", "output_dir", "$(touch " + Canary() + ")", Expect::kHarmless},
      {"subshell-relative", "output_dir", "$(touch " + RelCanary() + ")", Expect::kHarmless},
      {"semicolon", "output_dir", ";id;touch " + Canary(), Expect::kHarmless},
      {"backticks", "output_dir", "`touch " + Canary() + "`", Expect::kHarmless},
      {"quotes-and-spaces", "output_dir", "it's \"out\" & more", Expect::kHarmless},
      {"newline", "output_dir", "a\nINJECTED: line", Expect::kRefused},
      {"terminal-escape", "output_dir", "a\x1b]0;pwned\x07", Expect::kRefused},
      {"4KB", "output_dir", std::string(4096, 'a'), Expect::kRefused},
      {"4KB-many-folders", "output_dir",
       [] {
         std::string s;
         while (s.size() < 4096) s += std::string(200, 'a') + "/";
         return s;
       }(),
       Expect::kRefused},
      {"NUL", "output_dir", std::string("a\0b", 3), Expect::kRefused},
  };
  CheckAll(cases);
}

TEST_F(HostileSpecTest, HostileSourcePathsAreRefusedOrReadLiterally) {
  std::vector<Case> cases;
  for (const auto& [label, value] : HostileValues(".mov")) {
    cases.push_back({label, "source", value, Expect::kRefused});
  }
  // Absolute and existing but not media: refused by the probe, and nothing of
  // the file shows in the message.
  cases.push_back({"etc-passwd", "source", "/etc/passwd", Expect::kRefused});
  // A real film whose name is full of shell syntax is just a file name.
  std::string weird =
      *work_ + "/media/film;id $(touch " + Canary() + ") `touch " + Canary() + "` 'q\".mov";
  fs::create_directories(fs::path(weird).parent_path());
  fs::copy_file(*film_, weird, fs::copy_options::overwrite_existing);
  cases.push_back({"shell-syntax-file", "source", weird, Expect::kHarmless});
  CheckAll(cases);

  CliRun passwd =
      RunCli({"plan", *spec_dir_ + "/spec-source-" + std::to_string(cases.size() - 2) + ".yaml"});
  EXPECT_EQ(passwd.rc, 2);
  EXPECT_EQ(passwd.err.find("root:"), std::string::npos) << "file content leaked:\n" << passwd.err;
}

TEST_F(HostileSpecTest, HostileSubtitlePathsAndLanguagesAreRefusedOrReadLiterally) {
  std::vector<Case> cases;
  for (const auto& [label, value] : HostileValues(".srt")) {
    cases.push_back({label, "subtitle", value, Expect::kRefused});
  }
  cases.push_back({"etc-passwd", "subtitle", "/etc/passwd", Expect::kRefused});
  cases.push_back({"subshell", "language", "$(touch " + Canary() + ")", Expect::kRefused});
  cases.push_back({"newline", "language", "en\nINJECTED: line", Expect::kRefused});
  // Filter-graph syntax in a burned subtitle's path (',' ';' '[' ']' ':' '='
  // quote, backslash): escaped, so it is a file name and injects no filter.
  std::string weird =
      *work_ + "/media/x,movie=" + *work_ + "/media/film.mov[m];[m]null[n]:force_style='a'\\b.srt";
  fs::create_directories(fs::path(weird).parent_path());
  WriteSrt(weird);
  cases.push_back({"filtergraph-syntax-file", "subtitle", weird, Expect::kHarmless});
  CheckAll(cases);
}

}  // namespace
}  // namespace reelfarm::testing
