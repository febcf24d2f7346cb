// Delivery spec v1 validation: one test (at least) per rule of docs/spec.md.
#include "common/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace reelfarm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBase[] = "/base/specs";

SpecParseResult Parse(const std::string& text) { return ParseSpecText(text, "spec.yaml", kBase); }

// A spec whose only deliverable is at line 7 (`- name: d`), its preset at
// line 8 and `extra` (indented four spaces) from line 9 on.
std::string WithDeliverable(const std::string& preset, const std::string& extra = "") {
  return "version: 1\n"              // 1
         "name: film\n"              // 2
         "source: media/film.mov\n"  // 3
         "subtitles:\n"              // 4
         "  en: subs/en.srt\n"       // 5
         "deliverables:\n"           // 6
         "  - name: d\n"             // 7
         "    preset: " +
         preset + "\n"  // 8
         + extra;       // 9...
}

// The top of a spec with one web-h264 deliverable; `top` goes at line 1.
std::string WithTop(const std::string& top) {
  return top +
         "deliverables:\n"
         "  - name: d\n"
         "    preset: web-h264\n";
}

::testing::AssertionResult HasOneError(const SpecParseResult& r, int line,
                                       const std::string& field) {
  if (r.spec.has_value()) return ::testing::AssertionFailure() << "spec accepted";
  if (r.errors.size() != 1) {
    auto f = ::testing::AssertionFailure() << r.errors.size() << " errors:";
    for (const auto& e : r.errors) f << "\n  " << e.ToString();
    return f;
  }
  const SpecError& e = r.errors[0];
  if (e.line != line || e.field != field || e.file != "spec.yaml") {
    return ::testing::AssertionFailure()
           << "got " << e.ToString() << ", want line " << line << " field " << field;
  }
  return ::testing::AssertionSuccess();
}

// Parses `text`, expects exactly one error at `line` on `field`, returns its message.
std::string OneError(const std::string& text, int line, const std::string& field) {
  SpecParseResult r = Parse(text);
  EXPECT_TRUE(HasOneError(r, line, field)) << text;
  return r.errors.empty() ? "" : r.errors[0].message;
}

// ---- valid specs -------------------------------------------------------------

constexpr char kFullSpec[] = R"(version: 1
name: launch-film
source: media/launch.mov
output_dir: out/launch-film
priority: 70
subtitles:
  en: media/launch_en.srt
  pt-BR: ../shared/launch_pt.vtt
deliverables:
  - name: master
    preset: master-prores
  - name: master-mxf
    preset: master-dnxhr
  - name: web-1080
    preset: web-h264
    height: 1080
  - name: web-hevc-720
    preset: web-hevc
    height: 720
    subtitles: {language: en, mode: soft}
  - name: reel
    preset: social-h264
    aspect: "9:16"
    height: 1920
    focus: {x: 0.25, y: 0.75}
  - name: square
    preset: social-h264
    aspect: "1:1"
    height: 1080
  - name: feed
    preset: social-h264
    aspect: 4:5
  - name: web-1080-en
    preset: web-h264
    height: 1080
    subtitles: {language: en, mode: burn}
  - name: poster
    preset: thumbnail-jpg
    at: "00:00:05"
  - name: audio
    preset: audio-wav
)";

TEST(SpecValid, FullSpecParsesToExpectedStruct) {
  SpecParseResult r = Parse(kFullSpec);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  ASSERT_TRUE(r.spec.has_value());
  const DeliverySpec& s = *r.spec;
  EXPECT_EQ(s.spec_file, "spec.yaml");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.name, "launch-film");
  EXPECT_EQ(s.source, "/base/specs/media/launch.mov");
  EXPECT_EQ(s.source_line, 3);
  EXPECT_EQ(s.output_dir, "/base/specs/out/launch-film");
  EXPECT_EQ(s.output_dir_line, 4);
  EXPECT_EQ(s.priority, 70);
  ASSERT_EQ(s.subtitles.size(), 2u);
  EXPECT_EQ(s.subtitles.at("en"), "/base/specs/media/launch_en.srt");
  EXPECT_EQ(s.subtitles.at("pt-BR"), "/base/shared/launch_pt.vtt");
  EXPECT_EQ(s.subtitle_lines.at("en"), 7);
  EXPECT_EQ(s.subtitle_lines.at("pt-BR"), 8);
  ASSERT_EQ(s.deliverables.size(), 10u);

  const auto& master = s.deliverables[0];
  EXPECT_EQ(master.name, "master");
  EXPECT_EQ(master.preset, "master-prores");
  EXPECT_EQ(master.height, 0);
  EXPECT_EQ(master.aspect_num, 0);
  EXPECT_EQ(master.aspect_den, 0);
  EXPECT_FALSE(master.subtitles.has_value());
  EXPECT_FALSE(master.at_s.has_value());
  EXPECT_EQ(master.line, 10);
  EXPECT_EQ(master.field_lines.at("name"), 10);
  EXPECT_EQ(master.field_lines.at("preset"), 11);

  EXPECT_EQ(s.deliverables[1].preset, "master-dnxhr");
  EXPECT_EQ(s.deliverables[2].height, 1080);
  EXPECT_EQ(s.deliverables[2].field_lines.at("height"), 16);

  const auto& hevc = s.deliverables[3];
  EXPECT_EQ(hevc.preset, "web-hevc");
  ASSERT_TRUE(hevc.subtitles.has_value());
  EXPECT_EQ(hevc.subtitles->language, "en");
  EXPECT_EQ(hevc.subtitles->mode, "soft");

  const auto& reel = s.deliverables[4];
  EXPECT_EQ(reel.aspect_num, 9);
  EXPECT_EQ(reel.aspect_den, 16);
  EXPECT_EQ(reel.height, 1920);
  EXPECT_DOUBLE_EQ(reel.focus_x, 0.25);
  EXPECT_DOUBLE_EQ(reel.focus_y, 0.75);
  EXPECT_EQ(reel.field_lines.at("focus"), 25);

  EXPECT_EQ(s.deliverables[5].aspect_num, 1);
  EXPECT_EQ(s.deliverables[5].aspect_den, 1);
  EXPECT_DOUBLE_EQ(s.deliverables[5].focus_x, 0.5);
  EXPECT_DOUBLE_EQ(s.deliverables[5].focus_y, 0.5);
  EXPECT_EQ(s.deliverables[6].aspect_num, 4);  // unquoted 4:5 is read as text
  EXPECT_EQ(s.deliverables[6].aspect_den, 5);

  ASSERT_TRUE(s.deliverables[7].subtitles.has_value());
  EXPECT_EQ(s.deliverables[7].subtitles->mode, "burn");

  const auto& poster = s.deliverables[8];
  EXPECT_EQ(poster.preset, "thumbnail-jpg");
  ASSERT_TRUE(poster.at_s.has_value());
  EXPECT_DOUBLE_EQ(*poster.at_s, 5.0);
  EXPECT_EQ(poster.field_lines.at("at"), 39);

  EXPECT_EQ(s.deliverables[9].preset, "audio-wav");
}

TEST(SpecValid, DefaultsApply) {
  SpecParseResult r = Parse(WithTop("version: 1\nname: film\nsource: /abs/film.mov\n"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->source, "/abs/film.mov");
  EXPECT_EQ(r.spec->output_dir, "/base/specs/deliveries/film");
  EXPECT_EQ(r.spec->output_dir_line, 0);
  EXPECT_EQ(r.spec->priority, 50);
  EXPECT_TRUE(r.spec->subtitles.empty());
  const auto& d = r.spec->deliverables.at(0);
  EXPECT_EQ(d.height, 0);
  EXPECT_EQ(d.aspect_num, 0);
  EXPECT_DOUBLE_EQ(d.focus_x, 0.5);
  EXPECT_DOUBLE_EQ(d.focus_y, 0.5);
  EXPECT_FALSE(d.at_s.has_value());
}

TEST(SpecValid, JsonFormParses) {
  // Tab-indented JSON, as editors write it.
  const std::string json =
      "{\n"
      "\t\"version\": 1,\n"
      "\t\"name\": \"launch-film\",\n"
      "\t\"source\": \"media/launch.mov\",\n"
      "\t\"subtitles\": {\"en\": \"media/launch_en.srt\"},\n"
      "\t\"deliverables\": [\n"
      "\t\t{\"name\": \"reel\", \"preset\": \"social-h264\", \"aspect\": \"9:16\",\n"
      "\t\t \"height\": 1920, \"focus\": {\"x\": 0.5, \"y\": 0.3},\n"
      "\t\t \"subtitles\": {\"language\": \"en\", \"mode\": \"burn\"}},\n"
      "\t\t{\"name\": \"poster\", \"preset\": \"thumbnail-jpg\", \"at\": 12.5}\n"
      "\t]\n"
      "}\n";
  SpecParseResult r = ParseSpecText(json, "spec.json", kBase);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  ASSERT_EQ(r.spec->deliverables.size(), 2u);
  EXPECT_EQ(r.spec->deliverables[0].aspect_num, 9);
  EXPECT_EQ(r.spec->deliverables[0].height, 1920);
  EXPECT_DOUBLE_EQ(r.spec->deliverables[0].focus_y, 0.3);
  EXPECT_EQ(r.spec->deliverables[0].subtitles->language, "en");
  EXPECT_EQ(r.spec->deliverables[0].line, 7);
  EXPECT_DOUBLE_EQ(*r.spec->deliverables[1].at_s, 12.5);
}

TEST(SpecValid, JsonErrorsPointAtTheField) {
  const std::string json =
      "{\n"
      "  \"version\": 1,\n"
      "  \"name\": \"film\",\n"
      "  \"source\": \"film.mov\",\n"
      "  \"deliverables\": [\n"
      "    {\"name\": \"web\", \"preset\": \"web-h264\",\n"
      "     \"height\": \"1080\"}\n"
      "  ]\n"
      "}\n";
  SpecParseResult r = ParseSpecText(json, "spec.json", kBase);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "spec.json:7: deliverables[0].height: must be an integer, got the string `1080` "
            "(write numbers without quotes)");
}

TEST(SpecValid, ExampleFilesParseAndAgree) {
  const std::string dir = std::string(REELFARM_SOURCE_DIR) + "/examples/";
  SpecParseResult yaml = ParseSpecFile(dir + "launch-film.yaml");
  SpecParseResult json = ParseSpecFile(dir + "launch-film.json");
  ASSERT_TRUE(yaml.errors.empty()) << yaml.errors[0].ToString();
  ASSERT_TRUE(json.errors.empty()) << json.errors[0].ToString();
  EXPECT_EQ(yaml.spec->source, json.spec->source);
  EXPECT_EQ(yaml.spec->output_dir, json.spec->output_dir);
  EXPECT_EQ(yaml.spec->subtitles, json.spec->subtitles);
  ASSERT_EQ(yaml.spec->deliverables.size(), json.spec->deliverables.size());
  std::set<std::string> presets;
  for (size_t i = 0; i < yaml.spec->deliverables.size(); ++i) {
    const auto& a = yaml.spec->deliverables[i];
    const auto& b = json.spec->deliverables[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.preset, b.preset);
    EXPECT_EQ(a.height, b.height);
    EXPECT_EQ(a.aspect_num, b.aspect_num);
    EXPECT_EQ(a.aspect_den, b.aspect_den);
    EXPECT_EQ(a.at_s, b.at_s);
    EXPECT_EQ(a.subtitles.has_value(), b.subtitles.has_value());
    presets.insert(a.preset);
  }
  EXPECT_EQ(presets.size(), 7u) << "the example must use every preset";
  EXPECT_EQ(yaml.spec->source, dir + "media/launch.mov");
}

TEST(SpecValid, EveryExampleParses) {
  const fs::path dir = fs::path(REELFARM_SOURCE_DIR) / "examples";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".yaml" && p.extension() != ".json") continue;
    if (p.filename() == "invalid-spec.yaml") continue;
    SpecParseResult r = ParseSpecFile(p.string());
    EXPECT_TRUE(r.errors.empty()) << r.errors[0].ToString();
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(SpecValid, InvalidExampleReportsEveryProblem) {
  SpecParseResult r =
      ParseSpecFile(std::string(REELFARM_SOURCE_DIR) + "/examples/invalid-spec.yaml");
  std::vector<std::pair<int, std::string>> got;
  for (const auto& e : r.errors) got.emplace_back(e.line, e.field);
  std::vector<std::pair<int, std::string>> want = {
      {4, "name"},
      {5, "source"},
      {6, "priority"},
      {9, "deliverables[0].preset"},
      {10, "deliverables[0].heigth"},
      {11, "deliverables[1].name"},
      {13, "deliverables[1].height"},
      {14, "deliverables[1].subtitles.language"},
      {14, "deliverables[1].subtitles.mode"},
      {17, "deliverables[2].at"},
  };
  EXPECT_EQ(got, want);
}

// ---- document-level errors -----------------------------------------------------

TEST(SpecDocument, MalformedYamlIsOneErrorAtTheParserLine) {
  SpecParseResult r = Parse("version: 1\nname: film\ndeliverables: [\n  {name: a\nsource: x\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_GE(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].field, "");
  EXPECT_THAT(r.errors[0].message, HasSubstr("malformed YAML"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("valid YAML or JSON"));

  SpecParseResult tab = Parse("version: 1\n\tname: x\n");
  ASSERT_EQ(tab.errors.size(), 1u);
  EXPECT_EQ(tab.errors[0].line, 2);
}

TEST(SpecDocument, DeepNestingIsAnErrorNotACrash) {
  SpecParseResult r = Parse("version: " + std::string(100000, '['));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.spec.has_value());
}

TEST(SpecDocument, EmptyOrNotAMapping) {
  EXPECT_THAT(OneError("", 1, ""), HasSubstr("version, name, source and deliverables"));
  EXPECT_THAT(OneError("# only a comment\n", 1, ""), HasSubstr("empty"));
  EXPECT_THAT(OneError("- a\n- b\n", 1, ""), HasSubstr("must be a mapping"));
}

TEST(SpecDocument, SecondDocumentIsRefused) {
  std::string text = WithTop("version: 1\nname: film\nsource: a.mov\n") + "---\nname: other\n";
  EXPECT_THAT(OneError(text, 8, ""), HasSubstr("exactly one document"));
}

TEST(SpecDocument, ErrorToString) {
  SpecError e{"spec.yaml", 12, "deliverables[2].height", "height 1081 is odd"};
  EXPECT_EQ(e.ToString(), "spec.yaml:12: deliverables[2].height: height 1081 is odd");
  SpecError f{"spec.yaml", 0, "", "cannot read spec: x"};
  EXPECT_EQ(f.ToString(), "spec.yaml:0: cannot read spec: x");
}

TEST(SpecDocument, AllErrorsAreReportedInFileOrder) {
  const std::string text =
      "version: 2\n"              // 1
      "name: bad/name\n"          // 2
      "source: http://x/a.mp4\n"  // 3
      "priority: 101\n"           // 4
      "colour: red\n"             // 5
      "deliverables:\n"           // 6
      "  - name: a\n"             // 7
      "    preset: web-h265\n"    // 8
      "    height: 1081\n"        // 9
      "  - name: a\n"             // 10
      "    preset: audio-wav\n"   // 11
      "    aspect: \"9:16\"\n";   // 12
  SpecParseResult r = Parse(text);
  EXPECT_FALSE(r.spec.has_value());
  std::vector<std::pair<int, std::string>> got;
  for (const auto& e : r.errors) got.emplace_back(e.line, e.field);
  std::vector<std::pair<int, std::string>> want = {
      {1, "version"},
      {2, "name"},
      {3, "source"},
      {4, "priority"},
      {5, "colour"},
      {8, "deliverables[0].preset"},
      {9, "deliverables[0].height"},
      {10, "deliverables[1].name"},
      {12, "deliverables[1].aspect"},
  };
  EXPECT_EQ(got, want);
}

// ---- fields: unknown, duplicate, missing, types -----------------------------------

TEST(SpecFields, UnknownTopFieldSuggestsTheClosest) {
  std::string msg =
      OneError(WithTop("version: 1\nname: film\nsource: a.mov\nsorce: b.mov\n"), 4, "sorce");
  EXPECT_THAT(msg, HasSubstr("unknown field `sorce`"));
  EXPECT_THAT(msg, HasSubstr("did you mean `source`?"));
  EXPECT_THAT(msg, HasSubstr("allowed here: version, name, source, output_dir, priority, "
                             "subtitles, deliverables"));
}

TEST(SpecFields, MisspeltRequiredFieldIsOneError) {
  // Not also "source is missing": the suggestion already says what to fix.
  std::string msg = OneError(WithTop("version: 1\nname: film\nsorce: a.mov\n"), 3, "sorce");
  EXPECT_THAT(msg, HasSubstr("did you mean `source`?"));
  msg = OneError(
      WithTop("version: 1\nname: film\nsource: a.mov\n") + "  - nmae: x\n    preset: web-h264\n", 7,
      "deliverables[1].nmae");
  EXPECT_THAT(msg, HasSubstr("did you mean `name`?"));
}

TEST(SpecFields, UnknownFieldWithoutNearMissListsAllowed) {
  std::string msg =
      OneError(WithTop("version: 1\nname: film\nsource: a.mov\nwatermark: yes\n"), 4, "watermark");
  EXPECT_THAT(msg, Not(HasSubstr("did you mean")));
  EXPECT_THAT(msg, HasSubstr("allowed here:"));
}

TEST(SpecFields, UnknownDeliverableFieldSuggests) {
  std::string msg =
      OneError(WithDeliverable("web-h264", "    heigth: 720\n"), 9, "deliverables[0].heigth");
  EXPECT_THAT(msg, HasSubstr("did you mean `height`?"));
  EXPECT_THAT(
      msg,
      HasSubstr("name, preset, height, aspect, focus, subtitles, at, dynamic_range, loudness, qc, "
                "ladder, segment_s, encoder"));

  msg =
      OneError(WithDeliverable("web-h264", "    Preset: web-h264\n"), 9, "deliverables[0].Preset");
  EXPECT_THAT(msg, HasSubstr("did you mean `preset`?"));
}

TEST(SpecFields, UnknownFocusField) {
  std::string msg =
      OneError(WithDeliverable("social-h264", "    aspect: \"1:1\"\n    focus: {x: 0.5, z: 0.5}\n"),
               10, "deliverables[0].focus.z");
  EXPECT_THAT(msg, HasSubstr("allowed here: x, y"));
}

TEST(SpecFields, UnknownSubtitleChoiceField) {
  std::string msg =
      OneError(WithDeliverable("web-h264", "    subtitles: {langauge: en, mode: burn}\n"), 9,
               "deliverables[0].subtitles.langauge");
  EXPECT_THAT(msg, HasSubstr("did you mean `language`?"));
  EXPECT_THAT(msg, HasSubstr("allowed here: language, mode"));
}

TEST(SpecFields, DuplicateKeys) {
  std::string msg =
      OneError(WithTop("version: 1\nname: film\nname: other\nsource: a.mov\n"), 3, "name");
  EXPECT_THAT(msg, HasSubstr("duplicate field (first given at line 2)"));
  EXPECT_THAT(msg, HasSubstr("only once"));

  msg = OneError(WithDeliverable("web-h264", "    height: 720\n    height: 1080\n"), 10,
                 "deliverables[0].height");
  EXPECT_THAT(msg, HasSubstr("first given at line 9"));

  msg = OneError(WithTop("version: 1\nname: film\nsource: a.mov\n"
                         "subtitles:\n  en: a.srt\n  en: b.srt\n"),
                 6, "subtitles.en");
  EXPECT_THAT(msg, HasSubstr("first given at line 5"));
}

TEST(SpecFields, MissingTopFields) {
  SpecParseResult r = Parse("priority: 10\n");
  std::vector<std::string> fields;
  for (const auto& e : r.errors) {
    fields.push_back(e.field);
    EXPECT_EQ(e.line, 1);
    EXPECT_THAT(e.message, HasSubstr("required field is missing; add `"));
  }
  EXPECT_EQ(fields, (std::vector<std::string>{"version", "name", "source", "deliverables"}));
}

TEST(SpecFields, MissingDeliverableFields) {
  std::string text = WithTop("version: 1\nname: film\nsource: a.mov\n") +
                     "  - preset: web-h264\n"  // 7
                     "  - name: x\n";          // 8
  SpecParseResult r = Parse(text);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 7);
  EXPECT_EQ(r.errors[0].field, "deliverables[1].name");
  EXPECT_THAT(r.errors[0].message, HasSubstr("unique in the spec"));
  EXPECT_EQ(r.errors[1].line, 8);
  EXPECT_EQ(r.errors[1].field, "deliverables[2].preset");
  EXPECT_THAT(r.errors[1].message, HasSubstr("one of: master-prores, master-dnxhr, web-h264"));
}

TEST(SpecFields, WrongTypesNameTheExpectedType) {
  EXPECT_THAT(OneError(WithTop("version: 1\nname: [a, b]\nsource: a.mov\n"), 2, "name"),
              HasSubstr("must be a string, got a list"));
  EXPECT_THAT(OneError(WithTop("version: 1\nname: film\nsource: {a: 1}\n"), 3, "source"),
              HasSubstr("must be a string, got a mapping"));
  EXPECT_THAT(OneError(WithTop("version: 1\nname: film\nsource:\n"), 3, "source"),
              HasSubstr("must be a string, got nothing"));
  EXPECT_THAT(
      OneError(WithDeliverable("web-h264", "    height: 10.5e2\n"), 9, "deliverables[0].height"),
      HasSubstr("must be an integer, got `10.5e2`"));
  EXPECT_THAT(
      OneError(WithDeliverable("web-h264", "    height: tall\n"), 9, "deliverables[0].height"),
      HasSubstr("must be an integer"));
}

// ---- version, name -------------------------------------------------------------

TEST(SpecVersion, MustBeTheInteger1) {
  EXPECT_THAT(OneError(WithTop("version: 2\nname: film\nsource: a.mov\n"), 1, "version"),
              HasSubstr("unsupported version 2; this reelfarm reads version 1"));
  EXPECT_THAT(OneError(WithTop("version: \"1\"\nname: film\nsource: a.mov\n"), 1, "version"),
              HasSubstr("must be an integer"));
  EXPECT_THAT(OneError(WithTop("version: 1.0\nname: film\nsource: a.mov\n"), 1, "version"),
              HasSubstr("must be an integer"));
}

const std::vector<std::string>& HostileNames() {
  static const std::vector<std::string> kNames = {"$(touch /tmp/pwned)",
                                                  ";id",
                                                  "`id`",
                                                  "../../x",
                                                  "/etc/passwd",
                                                  "a/b",
                                                  "..",
                                                  ".",
                                                  ".hidden",
                                                  "-rf",
                                                  "a..b",
                                                  "a b",
                                                  "caf\xc3\xa9",
                                                  std::string(4096, 'a'),
                                                  "",
                                                  "a\nb",
                                                  "name;rm",
                                                  "x|y",
                                                  "<x>",
                                                  "a:b",
                                                  "%d"};
  return kNames;
}

std::string YamlQuoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

TEST(SpecName, HostileSpecNamesAreRejected) {
  for (const std::string& name : HostileNames()) {
    std::string msg =
        OneError(WithTop("version: 1\nname: " + YamlQuoted(name) + "\nsource: a.mov\n"), 2, "name");
    EXPECT_THAT(msg, HasSubstr("invalid name")) << name;
    EXPECT_THAT(msg, HasSubstr("1-64 characters from A-Z a-z 0-9 . _ -")) << name;
    EXPECT_LT(msg.size(), 400u) << "hostile text must be cut in messages";
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(SpecName, HostileDeliverableNamesAreRejected) {
  for (const std::string& name : HostileNames()) {
    std::string text = WithTop("version: 1\nname: film\nsource: a.mov\n") +
                       "  - name: " + YamlQuoted(name) + "\n    preset: web-h264\n";
    std::string msg = OneError(text, 7, "deliverables[1].name");
    EXPECT_THAT(msg, HasSubstr("invalid deliverable name")) << name;
    EXPECT_THAT(msg, HasSubstr("start with a letter or digit")) << name;
  }
}

TEST(SpecName, SpecificReasons) {
  auto msg = [](const std::string& name) {
    return OneError(WithTop("version: 1\nname: " + YamlQuoted(name) + "\nsource: a.mov\n"), 2,
                    "name");
  };
  EXPECT_THAT(msg("a/b"), HasSubstr("contains `/`"));
  EXPECT_THAT(msg("a..b"), HasSubstr("contains `..`"));
  EXPECT_THAT(msg(std::string(65, 'a')), HasSubstr("65 characters long; at most 64"));
  EXPECT_THAT(msg("-x"), HasSubstr("first character must be a letter or digit"));
  EXPECT_THAT(msg("a$b"), HasSubstr("contains `$`"));
}

TEST(SpecName, IsValidName) {
  EXPECT_TRUE(IsValidName("launch-film"));
  EXPECT_TRUE(IsValidName("Web_1080.v2"));
  EXPECT_TRUE(IsValidName("0"));
  EXPECT_TRUE(IsValidName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
  for (const auto& name : HostileNames()) EXPECT_FALSE(IsValidName(name)) << name;
}

TEST(SpecName, NumericNameIsText) {
  SpecParseResult r = Parse(WithTop("version: 1\nname: 2024\nsource: a.mov\n"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->name, "2024");
}

TEST(SpecName, DuplicateDeliverableNamesPointAtBoth) {
  std::string text = WithTop("version: 1\nname: film\nsource: a.mov\n") +
                     "  - name: e\n    preset: web-hevc\n"    // 7-8
                     "  - name: d\n    preset: audio-wav\n";  // 9-10
  std::string msg = OneError(text, 9, "deliverables[2].name");
  EXPECT_THAT(msg, HasSubstr("duplicate deliverable name `d` (first used at line 5)"));
  EXPECT_THAT(msg, HasSubstr("its own name"));
}

// ---- deliverables list -----------------------------------------------------------

TEST(SpecDeliverables, Count) {
  const std::string top = "version: 1\nname: film\nsource: a.mov\n";
  EXPECT_THAT(OneError(top + "deliverables: []\n", 4, "deliverables"),
              HasSubstr("give 1 to 1000 entries"));
  EXPECT_THAT(OneError(top + "deliverables: web\n", 4, "deliverables"),
              HasSubstr("must be a list of 1 to 1000 entries"));
  std::string many = top + "deliverables:\n";
  for (int i = 0; i < 1000; ++i) {
    many += "  - {name: d" + std::to_string(i) + ", preset: web-h264}\n";
  }
  SpecParseResult ok = Parse(many);
  ASSERT_TRUE(ok.spec.has_value());
  EXPECT_EQ(ok.spec->deliverables.size(), 1000u);
  EXPECT_EQ(ok.spec->deliverables[999].line, 1004);
  many += "  - {name: d1000, preset: web-h264}\n";
  EXPECT_THAT(OneError(many, 4, "deliverables"), HasSubstr("has 1001 entries; at most 1000"));
}

TEST(SpecDeliverables, EntryMustBeAMapping) {
  std::string text = WithTop("version: 1\nname: film\nsource: a.mov\n") + "  - web-h264\n";
  EXPECT_THAT(OneError(text, 7, "deliverables[1]"), HasSubstr("must be a mapping with name and "
                                                              "preset"));
}

TEST(SpecDeliverables, UnknownPresetListsKnownOnes) {
  std::string msg = OneError(WithDeliverable("web-h265"), 8, "deliverables[0].preset");
  EXPECT_THAT(msg, HasSubstr("unknown preset `web-h265`; did you mean `web-h264`?"));
  EXPECT_THAT(msg, HasSubstr("known presets: master-prores, master-dnxhr, web-h264, web-hevc, "
                             "social-h264, hls-h264, hls-hevc, thumbnail-jpg, audio-wav"));
  msg = OneError(WithDeliverable("mp4"), 8, "deliverables[0].preset");
  EXPECT_THAT(msg, HasSubstr("known presets:"));
}

// ---- height, aspect, focus, at ---------------------------------------------------------

TEST(SpecHeight, Rules) {
  const std::string f = "deliverables[0].height";
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: 1081\n"), 9, f),
              HasSubstr("height 1081 is odd; use an even number from 32 to 4320"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: 30\n"), 9, f),
              HasSubstr("out of range; use an even number from 32 to 4320"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: 4322\n"), 9, f),
              HasSubstr("out of range"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: -1080\n"), 9, f),
              HasSubstr("out of range"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: 99999999999999999999\n"), 9, f),
              HasSubstr("must be an integer"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    height: \"1080\"\n"), 9, f),
              HasSubstr("must be an integer, got the string `1080`"));
  EXPECT_THAT(OneError(WithDeliverable("audio-wav", "    height: 720\n"), 9, f),
              HasSubstr("`height` is not allowed on preset audio-wav (it has no picture)"));
  for (int h : {32, 4320, 720}) {
    SpecParseResult r =
        Parse(WithDeliverable("web-h264", "    height: " + std::to_string(h) + "\n"));
    ASSERT_TRUE(r.spec.has_value()) << h;
    EXPECT_EQ(r.spec->deliverables[0].height, h);
  }
  // A thumbnail may be scaled.
  EXPECT_TRUE(Parse(WithDeliverable("thumbnail-jpg", "    height: 360\n")).spec.has_value());
}

TEST(SpecAspect, Rules) {
  const std::string f = "deliverables[0].aspect";
  for (const std::string bad : {"\"9x16\"", "\"9:0\"", "\"0:1\"", "\"101:1\"", "\"-9:16\"",
                                "\"9:16:1\"", "\"1.5:1\"", "16", "\"\"", "\" 9:16\""}) {
    std::string msg = OneError(WithDeliverable("social-h264", "    aspect: " + bad + "\n"), 9, f);
    EXPECT_THAT(msg, HasSubstr("malformed aspect")) << bad;
    EXPECT_THAT(msg, HasSubstr("\"W:H\" with whole numbers from 1 to 100")) << bad;
  }
  EXPECT_THAT(OneError(WithDeliverable("social-h264", "    aspect: [9, 16]\n"), 9, f),
              HasSubstr("must be a string, got a list"));
  EXPECT_THAT(OneError(WithDeliverable("audio-wav", "    aspect: \"1:1\"\n"), 9, f),
              HasSubstr("not allowed on preset audio-wav"));
  SpecParseResult r = Parse(WithDeliverable("social-h264", "    aspect: \"100:1\"\n"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->deliverables[0].aspect_num, 100);
  EXPECT_EQ(r.spec->deliverables[0].aspect_den, 1);
}

TEST(SpecFocus, Rules) {
  const std::string crop = "    aspect: \"9:16\"\n";  // line 9
  EXPECT_THAT(OneError(WithDeliverable("social-h264", crop + "    focus: {x: 1.5, y: 0.5}\n"), 10,
                       "deliverables[0].focus.x"),
              HasSubstr("out of range; use a number from 0 to 1"));
  EXPECT_THAT(
      OneError(WithDeliverable("social-h264", crop + "    focus:\n      x: 0.5\n      y: -0.1\n"),
               12, "deliverables[0].focus.y"),
      HasSubstr("use a number from 0 to 1"));
  EXPECT_THAT(OneError(WithDeliverable("social-h264", crop + "    focus: {x: \"0.5\"}\n"), 10,
                       "deliverables[0].focus.x"),
              HasSubstr("must be a number, got the string"));
  EXPECT_THAT(OneError(WithDeliverable("social-h264", crop + "    focus: centre\n"), 10,
                       "deliverables[0].focus"),
              HasSubstr("must be a mapping {x: X, y: Y} with numbers from 0 to 1"));
  EXPECT_THAT(OneError(WithDeliverable("social-h264", "    focus: {x: 0.5, y: 0.5}\n"), 9,
                       "deliverables[0].focus"),
              HasSubstr("only allowed together with `aspect`"));
  SpecParseResult r = Parse(WithDeliverable("social-h264", crop + "    focus: {y: 0}\n"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_DOUBLE_EQ(r.spec->deliverables[0].focus_x, 0.5);
  EXPECT_DOUBLE_EQ(r.spec->deliverables[0].focus_y, 0.0);
}

TEST(SpecAt, AcceptedForms) {
  const std::vector<std::pair<std::string, double>> cases = {
      {"\"00:00:05\"", 5.0},
      {"00:01:05", 65.0},
      {"\"01:02:03.250\"", 3723.25},
      {"\"02:30\"", 150.0},
      {"7", 7.0},
      {"2.5", 2.5},
      {"0", 0.0},
      {"\"12\"", 12.0},
  };
  for (const auto& [text, seconds] : cases) {
    SpecParseResult r = Parse(WithDeliverable("thumbnail-jpg", "    at: " + text + "\n"));
    ASSERT_TRUE(r.spec.has_value()) << text << ": " << r.errors[0].ToString();
    ASSERT_TRUE(r.spec->deliverables[0].at_s.has_value());
    EXPECT_DOUBLE_EQ(*r.spec->deliverables[0].at_s, seconds) << text;
    EXPECT_EQ(r.spec->deliverables[0].field_lines.at("at"), 9);
  }
}

TEST(SpecAt, Rules) {
  const std::string f = "deliverables[0].at";
  for (const std::string bad : {"-1", "\"00:61:00\"", "\"5s\"", "\"1:2:3:4\"", "\"00:00:60\"",
                                "\"\"", ".5", "nan", "inf"}) {
    std::string msg = OneError(WithDeliverable("thumbnail-jpg", "    at: " + bad + "\n"), 9, f);
    EXPECT_THAT(msg, HasSubstr("\"HH:MM:SS\", \"HH:MM:SS.mmm\", \"MM:SS\" or a number of seconds "
                               ">= 0"))
        << bad;
  }
  EXPECT_THAT(OneError(WithDeliverable("thumbnail-jpg", "    at: [1]\n"), 9, f),
              HasSubstr("must be a time"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    at: 5\n"), 9, f),
              HasSubstr("`at` is only allowed on preset thumbnail-jpg"));
}

// ---- priority ----------------------------------------------------------------------

TEST(SpecPriority, Rules) {
  auto top = [](const std::string& p) {
    return WithTop("version: 1\nname: film\nsource: a.mov\npriority: " + p + "\n");
  };
  EXPECT_THAT(OneError(top("101"), 4, "priority"),
              HasSubstr("priority 101 is out of range; use an integer from 0 to 100"));
  EXPECT_THAT(OneError(top("-1"), 4, "priority"), HasSubstr("from 0 to 100"));
  EXPECT_THAT(OneError(top("\"50\""), 4, "priority"), HasSubstr("must be an integer"));
  EXPECT_THAT(OneError(top("high"), 4, "priority"), HasSubstr("must be an integer"));
  EXPECT_EQ(Parse(top("0")).spec->priority, 0);
  EXPECT_EQ(Parse(top("100")).spec->priority, 100);
}

// ---- subtitles -----------------------------------------------------------------------

TEST(SpecSubtitles, TopLevelLanguagesAndFiles) {
  auto top = [](const std::string& subs) {
    return WithTop("version: 1\nname: film\nsource: a.mov\nsubtitles:\n" + subs);
  };
  std::string msg = OneError(top("  EN: a.srt\n"), 5, "subtitles.EN");
  EXPECT_THAT(msg, HasSubstr("invalid language code `EN`"));
  EXPECT_THAT(msg, HasSubstr("like `en`, `fra` or `pt-BR`"));
  OneError(top("  english: a.srt\n"), 5, "subtitles.english");
  OneError(top("  en-: a.srt\n"), 5, "subtitles.en-");
  OneError(top("  en_US: a.srt\n"), 5, "subtitles.en_US");
  EXPECT_THAT(OneError(top("  en: a.txt\n"), 5, "subtitles.en"),
              HasSubstr("allowed extensions: .srt .ass .ssa .vtt"));
  EXPECT_THAT(OneError(top("  en: a.srt.mov\n"), 5, "subtitles.en"),
              HasSubstr("allowed extensions"));
  EXPECT_THAT(OneError(top("  en: http://x/a.srt\n"), 5, "subtitles.en"), HasSubstr("URL"));
  EXPECT_THAT(OneError(top("  en: \"subfile,,start,0,end,0,,:a.srt\"\n"), 5, "subtitles.en"),
              HasSubstr("protocol prefix"));
  EXPECT_THAT(OneError(top("  en: [a.srt]\n"), 5, "subtitles.en"), HasSubstr("must be a string"));
  EXPECT_THAT(OneError(WithTop("version: 1\nname: film\nsource: a.mov\nsubtitles: en.srt\n"), 4,
                       "subtitles"),
              HasSubstr("must be a mapping from language to subtitle file"));
  SpecParseResult r = Parse(top("  fra: a.ASS\n  zh-Hant: b.ssa\n  de: c.vtt\n"));
  ASSERT_TRUE(r.spec.has_value()) << r.errors[0].ToString();
  EXPECT_EQ(r.spec->subtitles.size(), 3u);
}

TEST(SpecSubtitles, UndeclaredLanguage) {
  std::string msg = OneError(WithDeliverable("web-h264",
                                             "    subtitles: {language: fr, mode: "
                                             "burn}\n"),
                             9, "deliverables[0].subtitles.language");
  EXPECT_THAT(msg, HasSubstr("language `fr` is not declared in the top-level `subtitles`"));
  EXPECT_THAT(msg, HasSubstr("declared: en"));

  std::string text =
      "version: 1\nname: film\nsource: a.mov\ndeliverables:\n"
      "  - name: d\n    preset: web-h264\n    subtitles:\n"
      "      language: en\n      mode: burn\n";
  EXPECT_THAT(OneError(text, 8, "deliverables[0].subtitles.language"),
              HasSubstr("none is declared (add `subtitles: {en: FILE.srt}` at the top level)"));
}

TEST(SpecSubtitles, UnknownMode) {
  std::string msg =
      OneError(WithDeliverable("web-h264", "    subtitles: {language: en, mode: burnt}\n"), 9,
               "deliverables[0].subtitles.mode");
  EXPECT_THAT(msg, HasSubstr("unknown subtitle mode `burnt`; did you mean `burn`?"));
  EXPECT_THAT(msg, HasSubstr("allowed: burn"));
  EXPECT_THAT(msg, HasSubstr("or soft"));
}

TEST(SpecSubtitles, MissingPartsAndWrongShape) {
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    subtitles: {language: en}\n"), 9,
                       "deliverables[0].subtitles.mode"),
              HasSubstr("give `mode: burn` or `mode: soft`"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    subtitles: {mode: soft}\n"), 9,
                       "deliverables[0].subtitles.language"),
              HasSubstr("declared in the top-level `subtitles`"));
  EXPECT_THAT(
      OneError(WithDeliverable("web-h264", "    subtitles: en\n"), 9, "deliverables[0].subtitles"),
      HasSubstr("must be a mapping {language: LANG, mode: burn|soft}"));
}

TEST(SpecSubtitles, SoftOnlyWhereTheContainerCarriesIt) {
  std::string msg = OneError(
      WithDeliverable("master-dnxhr", "    subtitles:\n      language: en\n      mode: soft\n"), 11,
      "deliverables[0].subtitles.mode");
  EXPECT_THAT(msg, HasSubstr("mode soft is not possible on preset master-dnxhr"));
  EXPECT_THAT(msg, HasSubstr("use mode burn, or a preset that can: master-prores, web-h264, "
                             "web-hevc, social-h264"));
  // Reported even when the language is wrong too.
  SpecParseResult both =
      Parse(WithDeliverable("master-dnxhr", "    subtitles: {language: fr, mode: soft}\n"));
  ASSERT_EQ(both.errors.size(), 2u);
  EXPECT_EQ(both.errors[0].field, "deliverables[0].subtitles.language");
  EXPECT_EQ(both.errors[1].field, "deliverables[0].subtitles.mode");
  // Burned subtitles work on any video preset.
  EXPECT_TRUE(Parse(WithDeliverable("master-dnxhr", "    subtitles: {language: en, mode: burn}\n"))
                  .spec.has_value());
  for (const std::string p : {"master-prores", "web-h264", "web-hevc", "social-h264"}) {
    EXPECT_TRUE(
        Parse(WithDeliverable(p, "    subtitles: {language: en, mode: soft}\n")).spec.has_value())
        << p;
  }
}

TEST(SpecSubtitles, NotOnStillsOrAudio) {
  for (const std::string p : {"thumbnail-jpg", "audio-wav"}) {
    std::string msg = OneError(WithDeliverable(p, "    subtitles: {language: en, mode: burn}\n"), 9,
                               "deliverables[0].subtitles");
    EXPECT_THAT(msg, HasSubstr("subtitles are not allowed on preset " + p));
    EXPECT_THAT(msg, HasSubstr("allowed on: master-prores, master-dnxhr, web-h264, web-hevc, "
                               "social-h264"));
  }
}

// ---- source and output_dir ------------------------------------------------------------

std::string SourceError(const std::string& source_yaml) {
  return OneError(WithTop("version: 1\nname: film\nsource: " + source_yaml + "\n"), 3, "source");
}

TEST(SpecSource, UrlsAreRefused) {
  for (const std::string s : {"http://example.com/a.mp4", "https://x/a.mov", "rtmp://x/live",
                              "s3://bucket/a.mov", "media/file://x.mov"}) {
    EXPECT_THAT(SourceError(s), HasSubstr("is a URL; only local files are allowed")) << s;
  }
}

TEST(SpecSource, ProtocolPrefixesAreRefused) {
  for (const std::string s :
       {"\"concat:a.mov|b.mov\"", "\"subfile,,start,0,end,100,,:a.mov\"",
        "\"data:video/mp4;base64,AAAA\"", "\"pipe:0\"", "\"http:a.mov\"", "\"file:a.mov\"",
        "\"tcp:127.0.0.1:80\"", "\"crypto+file:a.mov\"", "\"async:a.mov\"", "\"cache:a.mov\"",
        "\"hls+file:a.m3u8\"", "\"C:a.mov\""}) {
    std::string msg = SourceError(s);
    EXPECT_THAT(msg, HasSubstr("FFmpeg reads as a protocol prefix; only local files are allowed"))
        << s;
  }
  EXPECT_THAT(SourceError("\"subfile,x.mov\""), HasSubstr("`subfile,`"));
  // Spelled as a path, such a name is a plain local file.
  SpecParseResult r = Parse(WithTop("version: 1\nname: film\nsource: \"./take:1,b.mov\"\n"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->source, "/base/specs/take:1,b.mov");
  EXPECT_TRUE(Parse(WithTop("version: 1\nname: film\nsource: \"/mnt/a:b.mov\"\n")).spec);
}

TEST(SpecSource, PlaylistsAndListsAreRefused) {
  for (const std::string s : {"a.m3u8", "a.M3U8", "a.m3u", "a.pls", "list.txt", "a.ffconcat",
                              "a.concat", "a.xspf", "a.sdp"}) {
    EXPECT_THAT(SourceError(s), HasSubstr("playlist or list file")) << s;
  }
}

TEST(SpecSource, ImageSequencePatternsAreRefused) {
  for (const std::string s : {"frames/img%d.png", "frames/img%04d.png", "a%3d.mov"}) {
    EXPECT_THAT(SourceError(s), HasSubstr("image-sequence pattern")) << s;
  }
  EXPECT_TRUE(Parse(WithTop("version: 1\nname: film\nsource: \"100%.mov\"\n")).spec);
}

TEST(SpecSource, ControlCharactersEmptyAndFolders) {
  EXPECT_THAT(SourceError("\"a\\0b.mov\""), HasSubstr("control character (NUL, newline"));
  EXPECT_THAT(SourceError("\"a\\nb.mov\""), HasSubstr("control character"));
  EXPECT_THAT(SourceError("\"\""), HasSubstr("is empty"));
  EXPECT_THAT(SourceError("media/"), HasSubstr("names a folder"));
}

TEST(SpecSource, RelativePathsResolveAgainstTheSpecFolder) {
  auto source = [](const std::string& s) {
    SpecParseResult r = Parse(WithTop("version: 1\nname: film\nsource: " + s + "\n"));
    EXPECT_TRUE(r.spec.has_value()) << s;
    return r.spec ? r.spec->source : "";
  };
  EXPECT_EQ(source("film.mov"), "/base/specs/film.mov");
  EXPECT_EQ(source("./media/../media/./film.mov"), "/base/specs/media/film.mov");
  EXPECT_EQ(source("../../film.mov"), "/film.mov");
  EXPECT_EQ(source("/srv/media//film.mov"), "/srv/media/film.mov");
  EXPECT_EQ(source("\"my film (final).mov\""), "/base/specs/my film (final).mov");
}

TEST(SpecOutputDir, ResolvesAndRefusesBadPaths) {
  auto top = [](const std::string& o) {
    return WithTop("version: 1\nname: film\nsource: a.mov\noutput_dir: " + o + "\n");
  };
  SpecParseResult r = Parse(top("out/x/"));
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->output_dir, "/base/specs/out/x");
  EXPECT_EQ(Parse(top("/srv/out/./y")).spec->output_dir, "/srv/out/y");
  EXPECT_EQ(Parse(top("..")).spec->output_dir, "/base");
  EXPECT_THAT(OneError(top("\"a\\nb\""), 4, "output_dir"), HasSubstr("control character"));
  EXPECT_THAT(OneError(top("\"a\\0b\""), 4, "output_dir"), HasSubstr("control character"));
  EXPECT_THAT(OneError(top("s3://bucket/out"), 4, "output_dir"), HasSubstr("must be a local "
                                                                           "folder"));
  EXPECT_THAT(OneError(top("out/%03d"), 4, "output_dir"), HasSubstr("without `%`"));
  EXPECT_THAT(OneError(top("\"\""), 4, "output_dir"), HasSubstr("leave output_dir out"));
  EXPECT_THAT(OneError(top("[a]"), 4, "output_dir"), HasSubstr("must be a string"));
}

// ---- files -------------------------------------------------------------------------------

class SpecFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "reelfarm-spec-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& content) {
    fs::path p = fs::path(dir_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  // Parses a spec written into the temp folder; fails the test when invalid.
  DeliverySpec Load(const std::string& subtitles_yaml = "") {
    std::string path = Write("spec.yaml",
                             "version: 1\n"
                             "name: film\n"
                             "source: media/film.mov\n" +
                                 subtitles_yaml +
                                 "deliverables:\n"
                                 "  - name: d\n"
                                 "    preset: web-h264\n");
    SpecParseResult r = ParseSpecFile(path);
    EXPECT_TRUE(r.errors.empty()) << r.errors[0].ToString();
    return r.spec.value_or(DeliverySpec());
  }

  std::string dir_;
};

TEST_F(SpecFilesTest, ParseSpecFileUsesTheSpecFolder) {
  Write("media/film.mov", "x");
  DeliverySpec spec = Load();
  EXPECT_EQ(spec.spec_file, dir_ + "/spec.yaml");
  EXPECT_EQ(spec.source, dir_ + "/media/film.mov");
  EXPECT_EQ(spec.output_dir, dir_ + "/deliveries/film");
  EXPECT_TRUE(CheckSpecFiles(spec).empty());
}

TEST_F(SpecFilesTest, ParseSpecFileWithRelativePath) {
  Write("sub/spec.yaml", WithTop("version: 1\nname: film\nsource: film.mov\n"));
  std::string cwd = fs::current_path().string();
  fs::current_path(dir_);
  SpecParseResult r = ParseSpecFile("sub/spec.yaml");
  fs::current_path(cwd);
  ASSERT_TRUE(r.spec.has_value());
  EXPECT_EQ(r.spec->spec_file, "sub/spec.yaml");
  EXPECT_EQ(r.spec->source, dir_ + "/sub/film.mov");
}

TEST_F(SpecFilesTest, UnreadableSpecIsOneError) {
  SpecParseResult r = ParseSpecFile(dir_ + "/missing.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].file, dir_ + "/missing.yaml");
  EXPECT_EQ(r.errors[0].message, "cannot read spec: No such file or directory");

  r = ParseSpecFile(dir_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("cannot read spec: it is a folder"));

  std::string fifo = dir_ + "/spec.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = ParseSpecFile(fifo);  // must not block
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("cannot read spec: it is not a regular file"));
}

TEST_F(SpecFilesTest, ErrorsFromAFileNameIt) {
  std::string path = Write("bad.yaml", WithDeliverable("web-h264", "    height: 7\n"));
  SpecParseResult r = ParseSpecFile(path);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            path +
                ":9: deliverables[0].height: height 7 is out of range; use an even number "
                "from 32 to 4320");
}

TEST_F(SpecFilesTest, MissingSource) {
  DeliverySpec spec = Load();
  std::vector<SpecError> errors = CheckSpecFiles(spec);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_EQ(errors[0].field, "source");
  EXPECT_EQ(errors[0].file, dir_ + "/spec.yaml");
  EXPECT_THAT(errors[0].message, HasSubstr("does not exist"));
  EXPECT_THAT(errors[0].message, HasSubstr("give an existing local file"));
}

TEST_F(SpecFilesTest, SourceFolderIsRefused) {
  fs::create_directories(dir_ + "/media/film.mov");
  std::vector<SpecError> errors = CheckSpecFiles(Load());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_THAT(errors[0].message, HasSubstr("is a folder; give a regular file"));
}

TEST_F(SpecFilesTest, SourceFifoIsRefusedWithoutOpeningIt) {
  fs::create_directories(dir_ + "/media");
  ASSERT_EQ(::mkfifo((dir_ + "/media/film.mov").c_str(), 0600), 0);
  std::vector<SpecError> errors = CheckSpecFiles(Load());  // would block if it opened the FIFO
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("is a FIFO (named pipe); only regular files"));
}

TEST_F(SpecFilesTest, SourceDeviceAndSymlinkToDevice) {
  fs::create_directories(dir_ + "/media");
  fs::create_symlink("/dev/zero", dir_ + "/media/film.mov");
  std::vector<SpecError> errors = CheckSpecFiles(Load());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("is a device; only regular files"));
}

TEST_F(SpecFilesTest, UnreadableSource) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  std::string p = Write("media/film.mov", "x");
  ::chmod(p.c_str(), 0);
  std::vector<SpecError> errors = CheckSpecFiles(Load());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("cannot be read"));
}

TEST_F(SpecFilesTest, PathsOutsideTheAllowedRootsAreRefusedSymlinksResolved) {
  Write("media/film.mov", "x");
  DeliverySpec spec = Load();
  spec.output_dir = dir_ + "/deliveries/film";
  EXPECT_TRUE(CheckSpecRoots(spec, {}).empty()) << "no roots: anything goes";
  EXPECT_TRUE(CheckSpecRoots(spec, {dir_}).empty());
  EXPECT_TRUE(CheckSpecRoots(spec, {dir_ + "/media/", dir_ + "/deliveries"}).empty());

  std::vector<SpecError> errors = CheckSpecRoots(spec, {dir_ + "/media"});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "output_dir");
  EXPECT_THAT(errors[0].message, HasSubstr("is outside the folders this farm may use"));

  // A name sharing a prefix with a root is not inside it.
  errors = CheckSpecRoots(spec, {dir_ + "/med", dir_ + "/deliveries"});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "source");
  EXPECT_EQ(errors[0].line, 3);

  // A symlink inside a root that points out of it counts where it points,
  // and so does ".." in a path.
  fs::create_symlink("/etc/hostname", dir_ + "/media/link.mov");
  spec.source = dir_ + "/media/link.mov";
  spec.output_dir = dir_ + "/deliveries/../../elsewhere";
  errors = CheckSpecRoots(spec, {dir_ + "/media", dir_ + "/deliveries"});
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].field, "source");
  EXPECT_EQ(errors[1].field, "output_dir");
}

TEST_F(SpecFilesTest, SubtitleFiles) {
  Write("media/film.mov", "x");
  Write("subs/en.srt",
        "\xEF\xBB\xBF"
        "1\n00:00:00,000 --> 00:00:01,000\nH\xC3\xA9llo\n");
  Write("subs/fr.srt", "1\n00:00:00,000 --> 00:00:01,000\nbonjour\nd\xE9j\xE0\n");
  Write("subs/de.srt", "\xEF\xBB\xBF\r\n");
  ASSERT_EQ(::mkfifo((dir_ + "/subs/es.srt").c_str(), 0600), 0);
  DeliverySpec spec = Load(
      "subtitles:\n"           // 4
      "  en: subs/en.srt\n"    // 5
      "  fr: subs/fr.srt\n"    // 6
      "  de: subs/de.srt\n"    // 7
      "  es: subs/es.srt\n"    // 8
      "  it: subs/it.srt\n");  // 9
  std::vector<SpecError> errors = CheckSpecFiles(spec);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_EQ(errors[0].field, "subtitles.fr");
  EXPECT_THAT(errors[0].message, HasSubstr("is not valid UTF-8 (first bad byte on its line 4); "
                                           "save it as UTF-8 (a BOM is allowed)"));
  EXPECT_EQ(errors[1].line, 7);
  EXPECT_EQ(errors[1].field, "subtitles.de");
  EXPECT_THAT(errors[1].message, HasSubstr("is empty"));
  EXPECT_EQ(errors[2].line, 8);
  EXPECT_EQ(errors[2].field, "subtitles.es");
  EXPECT_THAT(errors[2].message, HasSubstr("FIFO"));
  EXPECT_EQ(errors[3].line, 9);
  EXPECT_EQ(errors[3].field, "subtitles.it");
  EXPECT_THAT(errors[3].message, HasSubstr("does not exist"));
}

TEST_F(SpecFilesTest, OverlongAndSurrogateUtf8AreInvalid) {
  Write("media/film.mov", "x");
  Write("subs/a.srt", "1\n\xC0\xAF\n");          // overlong '/'
  Write("subs/b.srt", "1\n\xED\xA0\x80\n");      // UTF-16 surrogate
  Write("subs/c.srt", "1\n\xF0\x9F\x8E\xAC\n");  // valid 4-byte (clapper board)
  DeliverySpec spec = Load("subtitles:\n  en: subs/a.srt\n  fr: subs/b.srt\n  de: subs/c.srt\n");
  std::vector<SpecError> errors = CheckSpecFiles(spec);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].field, "subtitles.en");
  EXPECT_EQ(errors[1].field, "subtitles.fr");
}

TEST_F(SpecFilesTest, OutputDirThatIsAFile) {
  Write("media/film.mov", "x");
  Write("out", "not a folder");
  std::string path = Write("spec.yaml", WithTop("version: 1\nname: film\nsource: media/film.mov\n"
                                                "output_dir: out\n"));
  SpecParseResult r = ParseSpecFile(path);
  ASSERT_TRUE(r.spec.has_value());
  std::vector<SpecError> errors = CheckSpecFiles(*r.spec);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 4);
  EXPECT_EQ(errors[0].field, "output_dir");
  EXPECT_THAT(errors[0].message, HasSubstr("exists and is not a folder"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// Issue 17: `dynamic_range: hdr` keeps an HDR source's HDR on presets that
// can carry it (web-hevc), and says so elsewhere.
TEST(SpecTest, DynamicRangeIsSdrOrHdrAndHdrOnlyWhereAPresetCanCarryIt) {
  SpecParseResult ok = Parse(WithDeliverable("web-hevc", "    dynamic_range: hdr\n"));
  ASSERT_TRUE(ok.spec.has_value()) << (ok.errors.empty() ? "" : ok.errors[0].ToString());
  EXPECT_EQ(ok.spec->deliverables[0].dynamic_range, "hdr");
  SpecParseResult plain = Parse(WithDeliverable("web-h264"));
  ASSERT_TRUE(plain.spec.has_value());
  EXPECT_EQ(plain.spec->deliverables[0].dynamic_range, "sdr");

  const std::string f = "deliverables[0].dynamic_range";
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    dynamic_range: hdr\n"), 9, f),
              HasSubstr("dynamic_range hdr is not possible on preset web-h264 (it makes 8-bit SDR "
                        "pictures); use web-hevc, or remove it"));
  EXPECT_THAT(OneError(WithDeliverable("web-hevc", "    dynamic_range: hdx\n"), 9, f),
              HasSubstr("must be sdr or hdr, got `hdx`"));
}

// docs/gpu.md: `encoder: auto | cpu | gpu`, gpu only where a GPU encoder
// makes the preset's picture.
TEST(SpecTest, EncoderIsAutoCpuOrGpuAndGpuOnlyWhereAPresetHasAGpuEncoder) {
  SpecParseResult plain = Parse(WithDeliverable("web-h264"));
  ASSERT_TRUE(plain.spec.has_value());
  EXPECT_EQ(plain.spec->deliverables[0].encoder, "auto");
  for (const char* e : {"auto", "cpu", "gpu"}) {
    SpecParseResult ok =
        Parse(WithDeliverable("social-h264", std::string("    encoder: ") + e + "\n"));
    ASSERT_TRUE(ok.spec.has_value()) << e;
    EXPECT_EQ(ok.spec->deliverables[0].encoder, e);
  }
  const std::string f = "deliverables[0].encoder";
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    encoder: nvenc\n"), 9, f),
              HasSubstr("must be auto, cpu or gpu, got `nvenc`"));
  EXPECT_THAT(OneError(WithDeliverable("master-prores", "    encoder: gpu\n"), 9, f),
              HasSubstr("encoder gpu is not possible on preset master-prores (no GPU encoder "
                        "makes it); use web-h264, web-hevc, social-h264, or remove it"));
  // A preset's CPU-only picture may still ask for the CPU.
  EXPECT_TRUE(Parse(WithDeliverable("master-prores", "    encoder: cpu\n")).spec.has_value());
  EXPECT_THAT(
      OneError(WithDeliverable("web-hevc", "    dynamic_range: hdr\n    encoder: gpu\n"), 10, f),
      HasSubstr("encoder gpu makes 8-bit SDR pictures only"));
}

// ---- loudness and QC (issue 13) ---------------------------------------------

TEST(SpecLoudness, StandardsFiguresAndNoneParse) {
  SpecParseResult r = Parse(WithDeliverable("web-h264", "    loudness: ebu-r128\n"));
  ASSERT_TRUE(r.spec) << r.errors[0].ToString();
  const auto& l = r.spec->deliverables[0].loudness;
  ASSERT_TRUE(l.has_value() && l->has_value());
  EXPECT_EQ((*l)->standard, "ebu-r128");
  EXPECT_EQ((*l)->target_lufs, -23);
  EXPECT_EQ((*l)->true_peak_db, -1);

  r = Parse(WithDeliverable("web-h264", "    loudness: {target_lufs: -18, lra: 9}\n"));
  ASSERT_TRUE(r.spec) << r.errors[0].ToString();
  EXPECT_EQ((*r.spec->deliverables[0].loudness)->target_lufs, -18);
  EXPECT_EQ((*r.spec->deliverables[0].loudness)->true_peak_db, -1);  // the usual ceiling
  EXPECT_EQ((*r.spec->deliverables[0].loudness)->lra, 9);

  r = Parse(WithDeliverable("web-h264", "    loudness: {standard: atsc-a85, true_peak_db: -3}\n"));
  ASSERT_TRUE(r.spec) << r.errors[0].ToString();
  EXPECT_EQ((*r.spec->deliverables[0].loudness)->target_lufs, -24);
  EXPECT_EQ((*r.spec->deliverables[0].loudness)->true_peak_db, -3);

  r = Parse(WithDeliverable("web-h264", "    loudness: none\n"));
  ASSERT_TRUE(r.spec);
  ASSERT_TRUE(r.spec->deliverables[0].loudness.has_value());
  EXPECT_FALSE(r.spec->deliverables[0].loudness->has_value());

  r = Parse(WithDeliverable("web-h264"));
  EXPECT_FALSE(r.spec->deliverables[0].loudness.has_value());  // the preset's default
}

TEST(SpecLoudness, BadValuesNameTheirLineAndField) {
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    loudness: ebu_r128\n"), 9,
                       "deliverables[0].loudness"),
              HasSubstr("unknown loudness standard `ebu_r128`; did you mean `ebu-r128`?"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    loudness:\n      target_lufs: 3\n"), 10,
                       "deliverables[0].loudness.target_lufs"),
              HasSubstr("out of range; use a number from -70 to -5 LUFS"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    loudness: {lra: 9}\n"), 9,
                       "deliverables[0].loudness"),
              HasSubstr("needs `target_lufs`"));
  EXPECT_THAT(OneError(WithDeliverable("thumbnail-jpg", "    loudness: web\n"), 9,
                       "deliverables[0].loudness"),
              HasSubstr("not allowed on preset thumbnail-jpg (it has no sound)"));
}

TEST(SpecQc, GatesParseAndNoneTurnsThemOff) {
  SpecParseResult r = Parse(WithDeliverable(
      "web-h264",
      "    qc:\n      black_max_s: 1.5\n      freeze_max_s: 0\n      allow_in_source: false\n"
      "      loudness_tolerance_lu: 0.5\n"));
  ASSERT_TRUE(r.spec) << r.errors[0].ToString();
  const QcChoice& q = *r.spec->deliverables[0].qc;
  EXPECT_FALSE(q.none);
  EXPECT_EQ(*q.black_max_s, 1.5);
  EXPECT_EQ(*q.freeze_max_s, 0);
  EXPECT_FALSE(q.silence_max_s.has_value());
  EXPECT_FALSE(*q.allow_in_source);
  EXPECT_EQ(*q.loudness_tolerance_lu, 0.5);

  r = Parse(WithDeliverable("master-prores", "    qc: {loudness: ebu-r128}\n"));
  ASSERT_TRUE(r.spec) << r.errors[0].ToString();
  EXPECT_TRUE(*r.spec->deliverables[0].qc->loudness);
  EXPECT_EQ(r.spec->deliverables[0].qc->loudness_target->target_lufs, -23);

  r = Parse(WithDeliverable("web-h264", "    qc: none\n"));
  ASSERT_TRUE(r.spec);
  EXPECT_TRUE(r.spec->deliverables[0].qc->none);
}

TEST(SpecQc, GatesAPresetCannotHaveAreRefused) {
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    qc:\n      blak_max_s: 2\n"), 10,
                       "deliverables[0].qc.blak_max_s"),
              HasSubstr("did you mean `black_max_s`?"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    qc:\n      silence_max_s: -1\n"), 10,
                       "deliverables[0].qc.silence_max_s"),
              HasSubstr("use a number from 0 to 3600 seconds"));
  EXPECT_THAT(
      OneError(WithDeliverable("audio-wav", "    qc: {black_max_s: 2}\n"), 9, "deliverables[0].qc"),
      HasSubstr("need a picture"));
  EXPECT_THAT(OneError(WithDeliverable("thumbnail-jpg", "    qc: {black_max_s: 2}\n"), 9,
                       "deliverables[0].qc"),
              HasSubstr("a single frame"));
  EXPECT_THAT(OneError(WithDeliverable("master-prores", "    qc: {loudness: true}\n"), 9,
                       "deliverables[0].qc.loudness"),
              HasSubstr("nothing to check against"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    qc: {allow_in_source: maybe}\n"), 9,
                       "deliverables[0].qc.allow_in_source"),
              HasSubstr("must be true or false"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// ---- ladder and segment_s (streaming presets) ------------------------------------------

TEST(SpecLadder, ParsesSortedHighestFirst) {
  SpecParseResult r =
      Parse(WithDeliverable("hls-h264", "    ladder: [480, 1080, 720]\n    segment_s: 4\n"));
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  EXPECT_EQ(r.spec->deliverables[0].ladder, (std::vector<int>{1080, 720, 480}));
  EXPECT_DOUBLE_EQ(r.spec->deliverables[0].segment_s, 4);
  SpecParseResult plain = Parse(WithDeliverable("hls-hevc"));
  ASSERT_TRUE(plain.errors.empty());
  EXPECT_TRUE(plain.spec->deliverables[0].ladder.empty()) << "the default, from the source";
  // Gated like any web deliverable.
  EXPECT_TRUE(Parse(WithDeliverable("hls-h264", "    qc: {black_max_s: 1}\n")).errors.empty());
}

TEST(SpecLadder, Rules) {
  const std::string f = "deliverables[0].ladder";
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    ladder: 720\n"), 9, f),
              HasSubstr("must be a list of 1 to 8 distinct even picture heights"));
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    ladder: []\n"), 9, f),
              HasSubstr("must be a list"));
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    ladder: [720, 721]\n"), 9, f + "[1]"),
              HasSubstr("height 721 is not allowed"));
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    ladder: [720, 720]\n"), 9, f + "[1]"),
              HasSubstr("height 720 is listed twice"));
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    ladder:\n      - 720\n      - big\n"), 11,
                       f + "[1]"),
              HasSubstr("must be an integer"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    ladder: [720]\n"), 9, f),
              HasSubstr("`ladder` is only allowed on streaming presets (hls-h264, hls-hevc)"));
  EXPECT_THAT(
      OneError(WithDeliverable("hls-h264", "    segment_s: 0.5\n"), 9, "deliverables[0].segment_s"),
      HasSubstr("use seconds from 1 to 30"));
  EXPECT_THAT(
      OneError(WithDeliverable("hls-h264", "    height: 720\n"), 9, "deliverables[0].height"),
      HasSubstr("give the renditions' heights as `ladder"));
  EXPECT_THAT(OneError(WithDeliverable("hls-h264", "    subtitles: {language: en, mode: soft}\n"),
                       9, "deliverables[0].subtitles.mode"),
              HasSubstr("mode soft is not possible on preset hls-h264"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST(SpecQcQuality, SsimAndPsnrFloorsParseWithTheirRanges) {
  SpecParseResult r =
      Parse(WithDeliverable("web-h264", "    qc: {ssim_min: 0.95, psnr_min_db: 38}\n"));
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  EXPECT_DOUBLE_EQ(*r.spec->deliverables[0].qc->ssim_min, 0.95);
  EXPECT_DOUBLE_EQ(*r.spec->deliverables[0].qc->psnr_min_db, 38);
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    qc: {ssim_min: 1.5}\n"), 9,
                       "deliverables[0].qc.ssim_min"),
              HasSubstr("out of range; use a number from 0 to 1"));
  EXPECT_THAT(OneError(WithDeliverable("web-h264", "    qc: {psnr_min_db: -3}\n"), 9,
                       "deliverables[0].qc.psnr_min_db"),
              HasSubstr("out of range; use a number from 0 to 100 dB"));
  EXPECT_THAT(
      OneError(WithDeliverable("audio-wav", "    qc: {ssim_min: 0.9}\n"), 9, "deliverables[0].qc"),
      HasSubstr("ssim_min and psnr_min_db need a picture"));
}

}  // namespace
}  // namespace reelfarm
