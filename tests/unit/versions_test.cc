// Versioned re-delivery's pure parts and the output cache on a temporary
// folder: output keys, reuse plans, version diffs, store / check / evict.
#include "common/versions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/output_cache.h"
#include "common/secure.h"
#include "planning/output_keys.h"
#include "planning/planner.h"

namespace fs = std::filesystem;

namespace reelfarm {
namespace {

pb::SourceFacts Facts() {
  pb::SourceFacts f;
  f.set_path("/media/film.mov");
  f.set_format_name("mov");
  f.set_duration_s(4);
  f.set_has_video(true);
  f.set_video_codec("h264");
  f.set_width(640);
  f.set_height(360);
  f.set_sar_num(1);
  f.set_sar_den(1);
  f.set_fps_num(25);
  f.set_fps_den(1);
  f.set_frame_count(100);
  f.set_pix_fmt("yuv420p");
  f.set_display_width(640);
  f.set_display_height(360);
  f.set_has_audio(true);
  f.set_audio_codec("aac");
  f.set_audio_channels(2);
  f.set_audio_layout("stereo");
  f.set_audio_sample_rate(48000);
  return f;
}

DeliverableSpec Deliverable(const std::string& name, const std::string& preset, int height = 0) {
  DeliverableSpec d;
  d.name = name;
  d.preset = preset;
  d.height = height;
  return d;
}

DeliverySpec Spec(const std::string& output_dir = "/out/launch") {
  DeliverySpec s;
  s.spec_file = "spec.yaml";
  s.name = "launch";
  s.source = "/media/film.mov";
  s.output_dir = output_dir;
  s.subtitles["en"] = "/media/en.srt";
  s.deliverables = {Deliverable("web", "web-h264", 360), Deliverable("square", "social-h264", 360),
                    Deliverable("poster", "thumbnail-jpg")};
  s.deliverables[1].aspect_num = s.deliverables[1].aspect_den = 1;
  DeliverableSpec burnt = Deliverable("burnt", "web-h264", 180);
  burnt.subtitles = SubtitleChoice{"en", "burn"};
  s.deliverables.push_back(burnt);
  return s;
}

KeyInputs Inputs() {
  KeyInputs in;
  in.source_sha256 = std::string(64, 'a');
  in.subtitle_sha256["en"] = std::string(64, 'b');
  in.ffmpeg_version = "5.1.9";
  return in;
}

std::map<std::string, pb::OutputKey> KeysOf(const DeliverySpec& spec, const KeyInputs& in) {
  PlanResult planned = PlanDelivery(spec, Facts());
  EXPECT_TRUE(planned.errors.empty());
  std::map<std::string, pb::OutputKey> keys;
  for (const auto& k : OutputKeys(spec, planned.plan, in)) keys[k.deliverable()] = k;
  return keys;
}

TEST(OutputKeysTest, EachChangeMovesExactlyTheKeysItShould) {
  const auto base = KeysOf(Spec(), Inputs());
  ASSERT_EQ(base.size(), 4u);
  std::set<std::string> distinct;
  for (const auto& [name, k] : base) {
    EXPECT_EQ(k.key().size(), 64u);
    distinct.insert(k.key());
  }
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_EQ(base.at("web").encoders(), "aac,libx264");
  EXPECT_EQ(base.at("burnt").subtitle_sha256(), std::string(64, 'b'));
  EXPECT_EQ(base.at("web").subtitle_sha256(), "");

  // Another folder, or a renamed deliverable: the same bytes, the same key.
  DeliverySpec moved = Spec("/elsewhere/v2");
  moved.deliverables[0].name = "web-720";
  const auto elsewhere = KeysOf(moved, Inputs());
  EXPECT_EQ(elsewhere.at("web-720").key(), base.at("web").key());
  EXPECT_EQ(elsewhere.at("burnt").key(), base.at("burnt").key());

  // A new height: that deliverable's settings only.
  DeliverySpec taller = Spec();
  taller.deliverables[0].height = 180;
  const auto t = KeysOf(taller, Inputs());
  EXPECT_NE(t.at("web").settings_sha256(), base.at("web").settings_sha256());
  EXPECT_EQ(t.at("square").key(), base.at("square").key());

  // A corrected subtitle file: the subtitled deliverable only.
  KeyInputs subs = Inputs();
  subs.subtitle_sha256["en"] = std::string(64, 'c');
  const auto s = KeysOf(Spec(), subs);
  EXPECT_NE(s.at("burnt").key(), base.at("burnt").key());
  for (const char* name : {"web", "square", "poster"})
    EXPECT_EQ(s.at(name).key(), base.at(name).key());

  // New source bytes, or another FFmpeg: every key.
  KeyInputs source = Inputs();
  source.source_sha256 = std::string(64, 'd');
  KeyInputs ffmpeg = Inputs();
  ffmpeg.ffmpeg_version = "6.0";
  const auto src = KeysOf(Spec(), source), ff = KeysOf(Spec(), ffmpeg);
  for (const auto& [name, k] : base) {
    EXPECT_NE(src.at(name).key(), k.key()) << name;
    EXPECT_NE(ff.at(name).key(), k.key()) << name;
  }
}

TEST(OutputKeysTest, AReusePlanFallsBackOnTheDeliverablesOwnJobs) {
  DeliverySpec spec = Spec();
  spec.deliverables[0].loudness.reset();  // the preset's: normalised, after the analysis
  PlanResult full = PlanDelivery(spec, Facts());
  ASSERT_TRUE(full.errors.empty());
  const std::vector<pb::OutputKey> keys = OutputKeys(spec, full.plan, Inputs());
  CacheHit hit;
  hit.key = keys[0];
  ASSERT_EQ(hit.key.deliverable(), "web");
  hit.entry.path = "/cache/ab/" + hit.key.key();
  hit.entry.made_in_version = 1;
  pb::PackageFile file;
  file.set_sha256(std::string(64, 'e'));
  file.set_bytes(1000);
  hit.entry.files = {file};
  // The rest planned without web.
  DeliverySpec rest = spec;
  rest.deliverables.erase(rest.deliverables.begin());
  PlanResult plan = PlanDelivery(rest, Facts());
  ASSERT_TRUE(plan.errors.empty());
  AddReuseJobs(full.plan, {hit}, keys, PlannerOptions(), &plan.plan);

  const pb::Job& reuse = plan.plan.jobs(plan.plan.jobs_size() - 1);
  EXPECT_EQ(reuse.id(), "r0");
  EXPECT_EQ(reuse.kind(), "reuse");
  EXPECT_EQ(reuse.argv_size(), 0) << "no FFmpeg";
  ASSERT_EQ(reuse.outputs_size(), 1);
  EXPECT_EQ(reuse.outputs(0).path(), "/out/launch/web.mp4");
  EXPECT_FALSE(reuse.outputs(0).has_qc()) << "the entry's report stands";
  EXPECT_EQ(reuse.reuse().entry(), hit.entry.path);
  ASSERT_EQ(reuse.reuse().files_size(), 1);
  ASSERT_GE(reuse.fallback_size(), 1);
  std::set<std::string> ids;
  for (const auto& f : reuse.fallback()) ids.insert(f.id());
  for (const auto& f : reuse.fallback()) {
    EXPECT_EQ(f.id().rfind("r0.", 0), 0u) << f.id();
    EXPECT_EQ(f.members_size(), 0) << "a grouped deliverable falls back on its member job";
    for (const auto& dep : f.depends_on()) {
      // Its own jobs, or the plan's analysis of the source.
      const bool own = ids.count(dep) > 0;
      bool planned = false;
      for (const auto& j : plan.plan.jobs()) planned |= j.id() == dep;
      EXPECT_TRUE(own || planned) << dep;
    }
  }
  ASSERT_EQ(plan.plan.keys_size(), 4);
  for (const auto& k : plan.plan.keys()) EXPECT_EQ(k.reused(), k.deliverable() == "web");

  SetCacheStores("/cache", 3, &plan.plan);
  for (const auto& job : plan.plan.jobs()) {
    for (const auto& out : job.outputs()) {
      if (job.kind() == "reuse" || out.intermediate()) {
        EXPECT_FALSE(out.has_cache()) << out.deliverable();
      } else {
        EXPECT_EQ(out.cache().entry().rfind("/cache/", 0), 0u);
        EXPECT_EQ(out.cache().version(), 3);
        EXPECT_EQ(out.cache().ffmpeg_version(), "5.1.9");
      }
    }
  }
  for (const auto& f : plan.plan.jobs(plan.plan.jobs_size() - 1).fallback()) {
    for (const auto& out : f.outputs()) {
      if (!out.intermediate()) {
        EXPECT_EQ(out.cache().key(), hit.key.key());
      }
    }
  }
}

nlohmann::json Item(const std::string& name, const std::string& key, bool reused = false,
                    const std::string& source = "s", const std::string& settings = "x") {
  return {{"name", name},
          {"status", "delivered"},
          {"key", key},
          {"reused", reused},
          {"inputs",
           {{"source_sha256", source},
            {"subtitle_sha256", ""},
            {"settings_sha256", settings},
            {"encoders", "libx264"},
            {"ffmpeg_version", "5.1.9"}}}};
}

TEST(VersionsTest, ADiffSaysWhatChangedAndWhy) {
  nlohmann::json v1 = {
      {"version", 1},
      {"deliverables", {Item("web", "k1"), Item("square", "k2"), Item("gone", "k3")}}};
  nlohmann::json v2 = {
      {"version", 2},
      {"deliverables",
       {Item("web", "k4", false, "s", "y"), Item("square", "k2", true), Item("new", "k5")}}};
  std::map<std::string, DeliverableChange> by_name;
  for (auto& c : DiffManifests(v1, v2)) by_name[c.name] = c;
  ASSERT_EQ(by_name.size(), 4u);
  EXPECT_EQ(by_name["web"].change, "re-rendered");
  EXPECT_EQ(by_name["web"].reasons, std::vector<std::string>{"settings changed"});
  EXPECT_EQ(by_name["square"].change, "reused");
  EXPECT_EQ(by_name["new"].change, "added");
  EXPECT_EQ(by_name["gone"].change, "removed");

  nlohmann::json v3 = {
      {"version", 3}, {"deliverables", {Item("web", "k6", false, "t", "y"), Item("square", "k2")}}};
  v3["deliverables"][1]["not_reused"] = "cache entry is corrupt";
  by_name.clear();
  for (auto& c : DiffManifests(v2, v3)) by_name[c.name] = c;
  EXPECT_EQ(by_name["web"].reasons, std::vector<std::string>{"source changed"});
  EXPECT_EQ(by_name["square"].change, "re-rendered");
  EXPECT_EQ(by_name["square"].reasons,
            std::vector<std::string>{"its cache entry failed its check"});
}

class OutputCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reelfarm-cache-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "out");
    std::ofstream(dir_ / "out/web.mp4", std::ios::binary) << "the bytes of a movie";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Keeps out/web.mp4 under `key`.
  pb::Reuse Keep(const std::string& key) {
    pb::CacheStore store;
    store.set_key(key);
    store.set_entry(CacheEntryPath((dir_ / "cache").string(), key));
    store.set_delivery("launch");
    store.set_version(1);
    pb::OutputResult result;
    result.set_deliverable("web");
    result.set_sha256(*Sha256File((dir_ / "out/web.mp4").string()));
    result.set_bytes(20);
    EXPECT_TRUE(StoreCacheEntry(store, (dir_ / "out/web.mp4").string(), result, 7).ok());
    StatusOr<CacheEntry> e = ReadCacheEntry(store.entry());
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    pb::Reuse reuse;
    reuse.set_entry(store.entry());
    for (const auto& f : e->files) *reuse.add_files() = f;
    return reuse;
  }

  fs::path dir_;
};

TEST_F(OutputCacheTest, AnEntryIsPublishedOnlyWhileItsBytesAreWhatWereKept) {
  const std::string key = std::string(62, '0') + "aa";
  pb::Reuse reuse = Keep(key);
  EXPECT_EQ(fs::path(reuse.entry()).parent_path().filename(), "00");
  StatusOr<CacheEntry> e = ReadCacheEntry(reuse.entry());
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->made_by, "launch");
  EXPECT_EQ(e->original.deliverable(), "web");
  EXPECT_EQ(e->bytes(), 20);

  const std::string temp = (dir_ / "out/.web.mp4.tmp").string();
  ASSERT_TRUE(MaterializeCacheEntry(reuse, false, temp).ok());
  EXPECT_EQ(*Sha256File(temp), reuse.files(0).sha256());
  fs::remove(temp);

  // Other bytes in the entry (a new file, not an edit of the linked one).
  fs::remove(reuse.entry() + "/data");
  std::ofstream(reuse.entry() + "/data", std::ios::binary) << "the bytes of another one";
  Status bad = MaterializeCacheEntry(reuse, false, temp);
  EXPECT_EQ(bad.code(), Status::Code::kDataLoss) << bad.ToString();
  EXPECT_NE(bad.message().find("corrupt"), std::string::npos);
  EXPECT_FALSE(fs::exists(temp)) << "nothing left to publish";
  fs::remove(reuse.entry() + "/data");
  EXPECT_EQ(MaterializeCacheEntry(reuse, false, temp).code(), Status::Code::kDataLoss);
  // A symlink in its place (to the very bytes kept) is refused too.
  fs::create_symlink(dir_ / "out/web.mp4", reuse.entry() + "/data");
  EXPECT_EQ(MaterializeCacheEntry(reuse, false, temp).code(), Status::Code::kDataLoss);
  EXPECT_FALSE(fs::exists(fs::symlink_status(temp)));
  DiscardCacheEntry(reuse.entry());
  EXPECT_EQ(ReadCacheEntry(reuse.entry()).status().code(), Status::Code::kNotFound);
}

TEST_F(OutputCacheTest, TheLeastRecentlyUsedEntriesGoFirst) {
  pb::Reuse a = Keep(std::string(64, 'a')), b = Keep(std::string(64, 'b')),
            c = Keep(std::string(64, 'c'));
  // a used last, b before it, c long ago.
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(c.entry() + "/meta.json", now - std::chrono::hours(3));
  fs::last_write_time(b.entry() + "/meta.json", now - std::chrono::hours(2));
  fs::last_write_time(a.entry() + "/meta.json", now - std::chrono::hours(1));
  EvictionResult r = EvictCache((dir_ / "cache").string(), 45);
  EXPECT_EQ(r.evicted, 1);
  EXPECT_EQ(r.bytes_freed, 20);
  EXPECT_EQ(r.after.entries, 2);
  EXPECT_EQ(r.after.bytes, 40);
  EXPECT_FALSE(fs::exists(c.entry()));
  TouchCacheEntry(b.entry());  // b now the newest: a goes next
  r = EvictCache((dir_ / "cache").string(), 20);
  EXPECT_EQ(r.evicted, 1);
  EXPECT_FALSE(fs::exists(a.entry()));
  EXPECT_TRUE(fs::exists(b.entry()));
  // The delivered file outlives its entries.
  EXPECT_TRUE(fs::exists(dir_ / "out/web.mp4"));
}

TEST_F(OutputCacheTest, AVersionKeepsWhatTheNextReplacesOrDrops) {
  fs::create_directories(dir_ / "out/manifests");
  std::ofstream(dir_ / "out/poster.jpg") << "a poster";
  nlohmann::json v1 = {
      {"version", 1},
      {"deliverables",
       {{{"name", "web"}, {"status", "delivered"}, {"path", "web.mp4"}, {"key", "k1"}},
        {{"name", "poster"}, {"status", "delivered"}, {"path", "poster.jpg"}, {"key", "k2"}}}}};
  std::ofstream(dir_ / "out/manifests/v1.json") << v1.dump();
  EXPECT_EQ(HighestManifestVersion((dir_ / "out").string()), 1);
  // v2 re-renders web and drops the poster.
  ASSERT_TRUE(KeepReplacedFiles((dir_ / "out").string(), 1, {{"web", "k9"}}, 2).ok());
  EXPECT_TRUE(fs::exists(dir_ / "out/web.mp4")) << "replaced by its new version, not before";
  EXPECT_TRUE(fs::equivalent(dir_ / "out/web.mp4", dir_ / "out/versions/v1/web.mp4"));
  EXPECT_TRUE(fs::exists(dir_ / "out/poster.jpg")) << "until the new version is accepted";
  ASSERT_TRUE(SetAsideDroppedFiles((dir_ / "out").string(), 1, {{"web", "k9"}}, 2).ok());
  EXPECT_FALSE(fs::exists(dir_ / "out/poster.jpg"));
  EXPECT_TRUE(fs::exists(dir_ / "out/versions/v1/poster.jpg"));
  EXPECT_TRUE(fs::exists(dir_ / "out/versions/v1/manifest.json"));
  // keep_versions 1 at v4 (previous 3): v1 and v2 go.
  fs::create_directories(dir_ / "out/versions/v2");
  ASSERT_TRUE(KeepReplacedFiles((dir_ / "out").string(), 3, {}, 1).ok());
  EXPECT_FALSE(fs::exists(dir_ / "out/versions/v1"));
  EXPECT_FALSE(fs::exists(dir_ / "out/versions/v2"));
}

}  // namespace
}  // namespace reelfarm
