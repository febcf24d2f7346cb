#include <gtest/gtest.h>

#include "cli/render.h"

namespace reelfarm::cli {
namespace {

using nlohmann::json;

TEST(ShellQuoteTest, LeavesSafeWordsAlone) {
  EXPECT_EQ(ShellQuote("ffmpeg"), "ffmpeg");
  EXPECT_EQ(ShellQuote("/abs/out/web-1080.mp4"), "/abs/out/web-1080.mp4");
  EXPECT_EQ(ShellQuote("scale=1280:720"), "scale=1280:720");
}

TEST(ShellQuoteTest, QuotesSpacesQuotesAndSpecials) {
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("[0:v]crop=iw:ih;"), "'[0:v]crop=iw:ih;'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
}

TEST(ShellQuoteTest, JoinsArgv) {
  EXPECT_EQ(ShellJoin({"ffmpeg", "-i", "my film.mov", "-vf", "scale=-2:720"}),
            "ffmpeg -i 'my film.mov' -vf scale=-2:720");
}

TEST(FormatTest, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(5 * 1024 * 1024), "5.0 MiB");
}

TEST(FormatTest, PercentClampsAndFloors) {
  EXPECT_EQ(FormatPercent(0.434), "43%");
  EXPECT_EQ(FormatPercent(0.999), "99%");
  EXPECT_EQ(FormatPercent(1.0), "100%");
  EXPECT_EQ(FormatPercent(1.7), "100%");
  EXPECT_EQ(FormatPercent(-0.2), "0%");
}

TEST(TextTableTest, AlignsColumnsWithoutTrailingSpaces) {
  TextTable table({"NAME", "STATE"});
  table.AddRow({"master", "running"});
  table.AddRow({"w", ""});
  EXPECT_EQ(table.rows(), 2u);
  EXPECT_EQ(table.Render(),
            "NAME    STATE\n"
            "master  running\n"
            "w\n");
}

TEST(JsonAccessTest, MissingOrWrongTypesAreEmpty) {
  json j = {{"s", "x"}, {"n", 2.5}, {"i", 7}, {"o", json::object()}};
  EXPECT_EQ(JsonString(j, "s"), "x");
  EXPECT_EQ(JsonString(j, "i"), "7");
  EXPECT_EQ(JsonString(j, "missing"), "");
  EXPECT_EQ(JsonString(j, "o"), "");
  EXPECT_DOUBLE_EQ(JsonNumber(j, "n"), 2.5);
  EXPECT_EQ(JsonInt(j, "i"), 7);
  EXPECT_EQ(JsonInt(j, "n"), 2);
  EXPECT_EQ(JsonInt(j, "s"), 0);
  EXPECT_EQ(JsonInt(json::array(), "i"), 0);
}

TEST(SpecErrorsTest, RendersApiErrorsFromTextOrParts) {
  json body = {{"error", "invalid spec"},
               {"errors",
                {{{"text", "a.yaml:7: deliverables[1].height: must be even"}},
                 {{"file", "a.yaml"}, {"line", 3}, {"field", "name"}, {"message", "bad name"}}}}};
  std::string text = RenderApiSpecErrors(body);
  EXPECT_NE(text.find("a.yaml:7: deliverables[1].height: must be even\n"), std::string::npos);
  EXPECT_NE(text.find("a.yaml:3: name"), std::string::npos);
  EXPECT_NE(text.find("bad name"), std::string::npos);
  EXPECT_EQ(RenderApiSpecErrors(json{{"error", "no"}}), "no\n");
}

pb::Plan SamplePlan() {
  pb::Plan plan;
  plan.set_name("launch");
  plan.set_output_dir("/out/launch");
  plan.set_priority(60);
  pb::SourceFacts* s = plan.mutable_source();
  s->set_path("/media/src.mov");
  s->set_format_name("mov,mp4,m4a,3gp,3g2,mj2");
  s->set_duration_s(10);
  s->set_has_video(true);
  s->set_video_codec("h264");
  s->set_width(320);
  s->set_height(180);
  s->set_display_width(180);
  s->set_display_height(320);
  s->set_rotation(90);
  s->set_fps_num(24000);
  s->set_fps_den(1001);
  pb::Job* job = plan.add_jobs();
  job->set_id("j0");
  job->set_kind("encode");
  for (const char* a : {"ffmpeg", "-nostdin", "-i", "/media/src.mov", "-vf",
                        "scale=-2:720,setsar=1", "/out/launch/my web.mp4"}) {
    job->add_argv(a);
  }
  pb::JobOutput* o = job->add_outputs();
  o->set_deliverable("web");
  o->set_preset("web-h264");
  o->set_relative_path("my web.mp4");
  job->mutable_needs()->add_encoders("libx264");
  job->mutable_needs()->add_encoders("aac");
  job->add_depends_on("j9");
  pb::PlannedFailure* f = plan.add_failures();
  f->set_deliverable("wav");
  f->set_preset("audio-wav");
  f->set_relative_path("wav.wav");
  f->set_reason("the source has no audio");
  return plan;
}

TEST(RenderPlanTest, ShowsSourceJobsArgvAndFailures) {
  std::string text = RenderPlan(SamplePlan());
  EXPECT_NE(text.find("launch (priority 60) -> /out/launch"), std::string::npos) << text;
  EXPECT_NE(text.find("h264 320x180 (shown upright as 180x320)"), std::string::npos) << text;
  EXPECT_NE(text.find("23.976 fps"), std::string::npos) << text;
  EXPECT_NE(text.find("audio: none"), std::string::npos) << text;
  EXPECT_NE(text.find("j0  encode"), std::string::npos) << text;
  EXPECT_NE(text.find("output: web (web-h264) -> my web.mp4"), std::string::npos) << text;
  EXPECT_NE(text.find("needs: libx264, aac\n"), std::string::npos) << text;
  EXPECT_NE(text.find("after: j9"), std::string::npos) << text;
  EXPECT_NE(text.find("argv: ffmpeg -nostdin -i /media/src.mov -vf scale=-2:720,setsar=1 "
                      "'/out/launch/my web.mp4'"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("wav (audio-wav) -> wav.wav: the source has no audio"), std::string::npos)
      << text;
}

TEST(RenderPlanTest, ShowsLoudnessAndQcGatesPerOutput) {
  pb::Plan plan = SamplePlan();
  pb::JobOutput* out = plan.mutable_jobs(0)->mutable_outputs(0);
  pb::LoudnessTarget* t = out->mutable_normalise();
  t->set_standard("web");
  t->set_integrated_lufs(-16);
  t->set_true_peak_db(-2);
  pb::QcGates* g = out->mutable_qc();
  g->set_check_loudness(true);
  *g->mutable_loudness() = *t;
  g->mutable_loudness()->set_true_peak_db(-1);
  g->set_loudness_tolerance_lu(1);
  g->set_black_max_s(2);
  g->set_allow_in_source(true);
  std::string text = RenderPlan(plan);
  EXPECT_NE(text.find("      loudness: web (-16 LUFS, true peak <= -2 dBTP)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("      qc: loudness -16 +-1 LU, true peak <= -1 dBTP, black <= 2 s "
                      "(beyond what the source has)\n"),
            std::string::npos)
      << text;
}

TEST(RenderPlanTest, JsonRoundTripsProtoFieldNames) {
  std::string text = RenderPlanJson(SamplePlan());
  json j = json::parse(text);
  EXPECT_EQ(j["name"], "launch");
  EXPECT_EQ(j["output_dir"], "/out/launch");
  EXPECT_EQ(j["jobs"][0]["argv"].size(), 7u);
  EXPECT_EQ(j["failures"][0]["reason"], "the source has no audio");
}

TEST(RenderApiTest, DeliveryListAndEmpty) {
  EXPECT_EQ(RenderDeliveryList(json{{"deliveries", json::array()}}), "No deliveries.\n");
  json body = {{"deliveries",
                {{{"id", "launch-3"},
                  {"name", "launch"},
                  {"state", "running"},
                  {"priority", 50},
                  {"output_dir", "/out"},
                  {"deliverables", 5},
                  {"delivered", 2},
                  {"failed", 1},
                  {"progress", 0.43}}}}};
  std::string text = RenderDeliveryList(body);
  EXPECT_NE(text.find("ID"), std::string::npos);
  EXPECT_NE(text.find("launch-3  launch  running  43%"), std::string::npos) << text;
  EXPECT_NE(text.find("2/5"), std::string::npos) << text;
}

TEST(RenderApiTest, DeliveryDetailListsItems) {
  json d = {{"id", "launch-3"},
            {"name", "launch"},
            {"state", "failed"},
            {"deliverables", 2},
            {"delivered", 1},
            {"failed", 1},
            {"progress", 1.0},
            {"output_dir", "/out"},
            {"manifest", "/out/manifest.json"},
            {"items",
             {{{"name", "master"},
               {"preset", "master-prores"},
               {"state", "delivered"},
               {"progress", 1.0},
               {"worker", "w1"},
               {"attempts", 1},
               {"error", ""}},
              {{"name", "wav"},
               {"preset", "audio-wav"},
               {"state", "failed"},
               {"progress", 0},
               {"worker", ""},
               {"attempts", 0},
               {"error", "no audio"}}}}};
  std::string text = RenderDeliveryDetail(d);
  EXPECT_NE(text.find("launch-3 (launch): failed, 1/2 delivered, 1 failed"), std::string::npos)
      << text;
  EXPECT_NE(text.find("Manifest: /out/manifest.json"), std::string::npos) << text;
  EXPECT_NE(text.find("master       master-prores  delivered  100%      -    w1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("no audio"), std::string::npos) << text;
}

TEST(RenderApiTest, DeliveryDetailHasAQcColumn) {
  json gates_ok = {{"passed", true},
                   {"integrated_lufs", -16.08},
                   {"gates", {{{"gate", "loudness"}, {"passed", true}}}}};
  json gates_bad = {{"passed", false},
                    {"gates",
                     {{{"gate", "loudness"}, {"passed", true}},
                      {{"gate", "black"}, {"passed", false}},
                      {{"gate", "silence"}, {"passed", false}}}}};
  json d = {{"id", "qc-1"},
            {"name", "qc"},
            {"state", "failed"},
            {"deliverables", 3},
            {"items",
             {{{"name", "web"}, {"preset", "web-h264"}, {"state", "delivered"}, {"qc", gates_ok}},
              {{"name", "reel"}, {"preset", "social-h264"}, {"state", "failed"}, {"qc", gates_bad}},
              {{"name", "master"}, {"preset", "master-prores"}, {"state", "delivered"}}}}};
  std::string text = RenderDeliveryDetail(d);
  EXPECT_NE(text.find("ATTEMPTS  QC"), std::string::npos) << text;
  EXPECT_NE(text.find("ok -16.1 LUFS"), std::string::npos) << text;
  EXPECT_NE(text.find("FAILED black, silence"), std::string::npos) << text;
  EXPECT_NE(text.find("0         -"), std::string::npos) << text;  // no gates: "-"
}

TEST(RenderApiTest, Workers) {
  EXPECT_EQ(RenderWorkers(json::object()), "No workers.\n");
  json body = {{"workers",
                {{{"name", "w1"},
                  {"host", "render01"},
                  {"state", "busy"},
                  {"slots", 2},
                  {"cores", 16},
                  {"threads_per_slot", 8},
                  {"running", 1},
                  {"encoders", {"aac", "libx264"}},
                  {"gpu", false}},
                 {{"name", "old"},
                  {"host", "h"},
                  {"state", "ready"},
                  {"slots", 1},
                  {"running", 0},
                  {"encoders", {"aac"}},
                  {"gpu", false}}}}};
  EXPECT_EQ(RenderWorkers(body),
            "NAME  HOST      STATE  CORES  SLOTS  THREADS  RUNNING  ENCODERS     GPU\n"
            "w1    render01  busy   16     2      8        1        aac,libx264  no\n"
            "old   h         ready  -      1      -        0        aac          no\n");
}

}  // namespace
}  // namespace reelfarm::cli
