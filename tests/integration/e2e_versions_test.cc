// Versioned re-delivery (issue 14): a changed cut or spec re-renders only
// what changed. Real farm (Redis, coordinator, two workers), real FFmpeg;
// what is reused is published from the output cache with its SHA-256
// checked, never encoded.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/output_cache.h"
#include "common/secure.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace fs = std::filesystem;

namespace reelfarm::testing {
namespace {

class E2eVersions : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(farm_.Start().ok());
    out_ = farm_.dir() + "/out";
    GenerateSource(SourceKind::kPlain, farm_.dir() + "/film.mov", 1.0);
    WriteSrt(farm_.dir() + "/en.srt");
  }

  // The spec with the web version at `web_height`, and a second poster when
  // `extra`.
  void WriteSpec(int web_height, bool extra) {
    std::ofstream spec(farm_.dir() + "/spec.yaml");
    spec << "version: 1\nname: launch\nsource: film.mov\noutput_dir: out\n"
            "subtitles:\n  en: en.srt\ndeliverables:\n"
            "  - name: web\n    preset: web-h264\n    height: "
         << web_height
         << "\n"
            "  - name: square\n    preset: social-h264\n    aspect: \"1:1\"\n    height: 180\n"
            "  - name: burnt\n    preset: web-h264\n    height: 144\n"
            "    subtitles: {language: en, mode: burn}\n"
            "  - name: soft\n    preset: web-h264\n    height: 144\n"
            "    subtitles: {language: en, mode: soft}\n"
            "  - name: poster\n    preset: thumbnail-jpg\n"
            "  - name: sound\n    preset: audio-wav\n";
    if (extra) spec << "  - name: poster-late\n    preset: thumbnail-jpg\n    at: 0.5\n";
  }

  // Submits the spec, waits for it, returns its manifest.
  nlohmann::json Deliver() {
    auto id = farm_.Submit(farm_.dir() + "/spec.yaml");
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!id.ok()) return {};
    EXPECT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm_.Delivery(*id)); }, 120))
        << farm_.LogTail("coordinator");
    nlohmann::json d = farm_.Delivery(*id);
    EXPECT_EQ(d.value("state", ""), "delivered") << d.dump(2);
    ExpectPublishedExactlyOnce(out_, d);
    std::ifstream in(out_ + "/manifest.json");
    return nlohmann::json::parse(in, nullptr, false);
  }

  static std::map<std::string, nlohmann::json> Items(const nlohmann::json& manifest) {
    std::map<std::string, nlohmann::json> items;
    for (const auto& item : manifest["deliverables"]) items[item.value("name", "")] = item;
    return items;
  }

  // The deliverables `manifest` encoded (not reused).
  static std::set<std::string> Encoded(const nlohmann::json& manifest) {
    std::set<std::string> names;
    for (const auto& item : manifest["deliverables"]) {
      if (!item.value("reused", false)) names.insert(item.value("name", ""));
    }
    return names;
  }

  std::string Cli(const std::vector<std::string>& args, int* rc = nullptr) {
    std::vector<std::string> argv = {std::string(REELFARM_BIN_DIR) + "/reelfarm", "--coordinator",
                                     farm_.api_url()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    const int code = RunArgv(argv, &out);
    if (rc != nullptr) *rc = code;
    return out;
  }

  LocalFarm farm_{LocalFarmOptions{}};
  std::string out_;
};

TEST_F(E2eVersions, OnlyWhatChangedIsRenderedAgainAndTheHistorySaysWhy) {
  WriteSpec(180, false);
  const nlohmann::json v1 = Deliver();
  ASSERT_TRUE(v1.is_object());
  EXPECT_EQ(v1.value("version", 0), 1);
  EXPECT_EQ(v1.value("encoded", 0), 6);
  EXPECT_EQ(v1.value("reused", -1), 0);

  // Reuse survives a coordinator restart: the cache is files, keys are
  // content.
  farm_.Signal("coordinator", SIGTERM);
  ASSERT_TRUE(farm_.StartCoordinator().ok());

  // v2: one deliverable's height changed, one added: two encodes, four
  // published from the cache with the bytes of v1.
  WriteSpec(144, true);
  const nlohmann::json v2 = Deliver();
  EXPECT_EQ(v2.value("version", 0), 2);
  EXPECT_EQ(Encoded(v2), (std::set<std::string>{"web", "poster-late"}));
  EXPECT_EQ(v2.value("reused", 0), 5);
  auto before = Items(v1), after = Items(v2);
  for (const char* name : {"square", "burnt", "soft", "poster", "sound"}) {
    EXPECT_EQ(after[name].value("sha256", ""), before[name].value("sha256", "")) << name;
    EXPECT_EQ(after[name].value("made_in_version", 0), 1) << name;
  }
  EXPECT_NE(after["web"].value("sha256", ""), before["web"].value("sha256", ""));
  // v1's web is kept aside, not overwritten.
  EXPECT_EQ(*Sha256File(out_ + "/versions/v1/web.mp4"), before["web"].value("sha256", ""));
  EXPECT_TRUE(fs::exists(out_ + "/manifests/v1.json"));
  EXPECT_TRUE(fs::exists(out_ + "/manifests/v2.json"));

  // v3: a corrected subtitle file re-renders the subtitled deliverables only.
  {
    std::ofstream srt(farm_.dir() + "/en.srt");
    srt << "1\n00:00:00,100 --> 00:00:00,800\nA corrected line\n";
  }
  const nlohmann::json v3 = Deliver();
  EXPECT_EQ(Encoded(v3), (std::set<std::string>{"burnt", "soft"}));

  // v4: the source re-exported (same picture, new bytes): everything again.
  ASSERT_EQ(RunArgv({"ffmpeg", "-loglevel", "error", "-y", "-i", farm_.dir() + "/film.mov", "-c",
                     "copy", "-metadata", "title=re-export", farm_.dir() + "/film2.mov"}),
            0);
  fs::rename(farm_.dir() + "/film2.mov", farm_.dir() + "/film.mov");
  const nlohmann::json v4 = Deliver();
  EXPECT_EQ(v4.value("reused", -1), 0);
  EXPECT_EQ(v4.value("encoded", 0), 7);

  // History and diff, through the coordinator.
  int rc = 0;
  const std::string history = Cli({"history", "launch"}, &rc);
  EXPECT_EQ(rc, 0) << history;
  EXPECT_NE(history.find("v2"), std::string::npos) << history;
  EXPECT_NE(history.find("2 encoded, 5 reused"), std::string::npos) << history;
  EXPECT_NE(history.find("web re-rendered (settings changed)"), std::string::npos) << history;
  EXPECT_NE(history.find("poster-late added"), std::string::npos) << history;
  const std::string diff23 = Cli({"diff", "launch", "v2", "v3", "--json"}, &rc);
  ASSERT_EQ(rc, 0) << diff23;
  std::map<std::string, nlohmann::json> changes;
  const nlohmann::json parsed = nlohmann::json::parse(diff23);
  for (const auto& c : parsed["changes"]) changes[c["name"].get<std::string>()] = c;
  EXPECT_EQ(changes["burnt"]["change"], "re-rendered");
  EXPECT_EQ(changes["burnt"]["reasons"], nlohmann::json::array({"subtitle changed"}));
  EXPECT_EQ(changes["web"]["change"], "reused");
  const std::string diff34 = Cli({"diff", "launch", "3", "4"}, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(diff34.find("source changed"), std::string::npos) << diff34;
  EXPECT_EQ(diff34.find("reused"), std::string::npos) << diff34;
  // The folder alone tells the same, without a farm.
  std::string local;
  ASSERT_EQ(RunArgv({std::string(REELFARM_BIN_DIR) + "/reelfarm", "history", out_}, &local), 0);
  EXPECT_NE(local.find("v4"), std::string::npos) << local;
}

TEST_F(E2eVersions, ACorruptedCacheEntryIsMadeAgainNeverPublished) {
  WriteSpec(180, false);
  const nlohmann::json v1 = Deliver();
  ASSERT_TRUE(v1.is_object());
  // Bytes of web's entry changed (the cache only: the delivered file stays).
  const std::string key = Items(v1)["web"].value("key", "");
  ASSERT_FALSE(key.empty());
  const std::string data = CacheEntryPath(DefaultCacheRoot(out_), key) + "/data";
  ASSERT_TRUE(fs::exists(data));
  std::string bytes = ReadFileBytes(data);
  bytes[bytes.size() / 2] ^= 0x5a;
  fs::remove(data);
  std::ofstream(data, std::ios::binary) << bytes;
  const std::string corrupt = Sha256Hex(bytes);

  const nlohmann::json v2 = Deliver();
  auto items = Items(v2);
  EXPECT_EQ(Encoded(v2), (std::set<std::string>{"web"}));
  EXPECT_NE(items["web"].value("not_reused", "").find("corrupt"), std::string::npos)
      << items["web"].dump(2);
  EXPECT_NE(items["web"].value("sha256", ""), corrupt);
  EXPECT_NE(*Sha256File(out_ + "/web.mp4"), corrupt);
  EXPECT_EQ(*Sha256File(out_ + "/web.mp4"), items["web"].value("sha256", ""));
  EXPECT_EQ(v2.value("reused", 0), 5);
  // The entry was replaced by what was made again.
  EXPECT_EQ(*Sha256File(data), items["web"].value("sha256", ""));
}

}  // namespace
}  // namespace reelfarm::testing
