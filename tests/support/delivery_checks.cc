#include "tests/support/delivery_checks.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/output_cache.h"
#include "common/versions.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {

namespace fs = std::filesystem;

std::string MakeTestSource(const std::string& dir, const std::string& size, int seconds) {
  std::string path = dir + "/source.mov";
  int rc = RunArgv({"ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=" + size + ":rate=25:duration=" + std::to_string(seconds), "-f",
                    "lavfi", "-i",
                    "sine=frequency=440:duration=" + std::to_string(seconds) + ":sample_rate=48000",
                    // A key frame every 12 frames (0.48 s), as cameras and
                    // mezzanine files have them: chunks can start on them.
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-keyint_min", "12",
                    "-sc_threshold", "0", "-c:a", "aac", "-shortest", path});
  EXPECT_EQ(rc, 0);
  return path;
}

bool IsFinished(const nlohmann::json& d) {
  if (!d.is_object()) return false;
  std::string s = d.value("state", "");
  return s == "delivered" || s == "failed" || s == "cancelled";
}

void ExpectPublishedExactlyOnce(const std::string& out, const nlohmann::json& d) {
  // Beside the files: the versions' manifests.
  std::set<std::string> expected = {"manifest.json", kManifestsFolder};
  for (const auto& item : d["items"]) {
    if (item.value("state", "") == "delivered") expected.insert(item.value("path", ""));
  }
  std::set<std::string> present;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename();
    if (name != kVersionsFolder && name != kDeliveryCacheFolder) present.insert(name);
  }
  EXPECT_EQ(present, expected) << "temporary or duplicate files left behind";
  std::ifstream in(out + "/manifest.json");
  auto manifest = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  for (const auto& m : manifest["deliverables"]) {
    if (m.value("status", "") != "delivered") continue;
    std::string path = out + "/" + m.value("path", "");
    auto sha = Sha256File(path);
    ASSERT_TRUE(sha.ok()) << path;
    EXPECT_EQ(*sha, m.value("sha256", "")) << m.value("name", "");
    EXPECT_EQ(m.value("bytes", int64_t{0}), static_cast<int64_t>(fs::file_size(path)));
  }
}

}  // namespace reelfarm::testing
