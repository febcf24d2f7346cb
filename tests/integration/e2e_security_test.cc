// Authenticated transport (issue 3, promise 8): CURVE with an allow-list
// refuses workers with a wrong or missing key; the HTTP API asks for its
// bearer token when one is configured.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/api_client.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

std::string MakeKeys(const std::string& prefix) {
  std::string out;
  EXPECT_EQ(RunArgv({kReelfarm, "keys", prefix}, &out), 0) << out;
  return prefix;
}

TEST(E2eSecurity, CurveAllowListAdmitsOnlyListedWorkers) {
  std::string keys = MakeTempDir("reelfarm-keys");
  MakeKeys(keys + "/coordinator");
  MakeKeys(keys + "/good");
  MakeKeys(keys + "/stranger");
  {
    std::ifstream pub(keys + "/good.pub");
    std::string key;
    pub >> key;
    std::ofstream(keys + "/allowed") << "# workers allowed in\n" << key << "\n";
  }
  LocalFarmOptions opts;
  opts.workers = 1;  // Start() waits for the good one only
  opts.extra_coordinator_args = {"--curve-secret", keys + "/coordinator.key", "--curve-allow",
                                 keys + "/allowed"};
  opts.worker_args[0] = {"--curve-secret", keys + "/good.key", "--curve-server-key",
                         keys + "/coordinator.pub"};
  opts.worker_args[1] = {"--curve-secret", keys + "/stranger.key", "--curve-server-key",
                         keys + "/coordinator.pub"};
  opts.worker_args[2] = {};  // no key at all
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  ASSERT_TRUE(farm.StartWorker(1).ok());
  ASSERT_TRUE(farm.StartWorker(2).ok());

  // The stranger's key is refused by the allow-list (the keyless worker
  // fails the CURVE handshake before it gets that far) ...
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        return farm.LogTail("coordinator").find("refused a worker connection") != std::string::npos;
      },
      30))
      << farm.LogTail("coordinator");

  // ... and a delivery runs only on the admitted worker.
  GenerateSource(SourceKind::kPlain, farm.dir() + "/source.mov", 1.0);
  std::ofstream(farm.dir() + "/spec.yaml")
      << "version: 1\nname: curve\nsource: source.mov\noutput_dir: out\ndeliverables:\n"
         "  - {name: a, preset: thumbnail-jpg}\n  - {name: b, preset: web-h264, height: 120}\n"
         "  - {name: c, preset: audio-wav}\n";
  auto id = farm.Submit(farm.dir() + "/spec.yaml");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        return d.is_object() && d.value("state", "") == "delivered";
      },
      120));
  for (const auto& item : farm.Delivery(*id)["items"]) {
    EXPECT_EQ(item.value("worker", ""), "local-0");
  }
  auto workers = farm.Get("/api/v1/workers")["workers"];
  ASSERT_EQ(workers.size(), 1u) << workers.dump();
  EXPECT_EQ(workers[0].value("name", ""), "local-0");
}

TEST(E2eSecurity, ApiRequiresTheBearerTokenWhenConfigured) {
  std::string dir = MakeTempDir("reelfarm-token");
  std::ofstream(dir + "/token") << "s3cret-token\n";
  LocalFarmOptions opts;
  opts.workers = 0;
  opts.extra_coordinator_args = {"--api-token-file", dir + "/token"};
  LocalFarm farm(opts);
  // Start waits on /healthz (open) and on /api/v1/workers, which refuses
  // without the token: start the parts by hand.
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  EXPECT_TRUE(farm.Get("/api/v1/workers").value("error", "").find("bearer") != std::string::npos);

  auto url = cli::ParseCoordinatorUrl(farm.api_url());
  ASSERT_TRUE(url.ok());
  cli::ApiClient anonymous(*url);
  auto refused = anonymous.Get("/api/v1/deliveries");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);
  cli::ApiClient wrong(*url);
  wrong.set_bearer_token("guess");
  EXPECT_EQ(wrong.Get("/api/v1/deliveries")->status, 401);
  cli::ApiClient right(*url);
  right.set_bearer_token("s3cret-token");
  EXPECT_EQ(right.Get("/api/v1/deliveries")->status, 200);

  // The CLI sends it from REELFARM_API_TOKEN / --token.
  std::string out;
  EXPECT_EQ(RunArgv({kReelfarm, "--coordinator", farm.api_url(), "--token", "s3cret-token",
                     "workers", "--json"},
                    &out),
            0)
      << out;
}

TEST(E2eSecurity, SourcesAndOutputsAreConfinedToTheAllowedRoots) {
  const std::string root = MakeTempDir("reelfarm-roots");
  const std::string media = root + "/media", deliveries = root + "/deliveries";
  std::filesystem::create_directories(media);
  std::filesystem::create_directories(deliveries);
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_worker_args = {"--allowed-root", media, "--allowed-root", deliveries};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  ASSERT_TRUE(farm.StartCoordinator({"--allowed-root", media, "--allowed-root", deliveries}).ok())
      << farm.LogTail("coordinator");
  ASSERT_TRUE(farm.StartWorker(0).ok());
  GenerateSource(SourceKind::kPlain, root + "/outside.mov", 1.0);
  GenerateSource(SourceKind::kPlain, media + "/film.mov", 1.0);
  std::filesystem::create_symlink("../outside.mov", media + "/link.mov");
  auto submit = [&](const std::string& source, const std::string& out) {
    std::ofstream(root + "/spec.yaml")
        << "version: 1\nname: roots\nsource: " << source << "\noutput_dir: " << out
        << "\ndeliverables:\n  - {name: web, preset: web-h264, height: 120}\n";
    return farm.Submit(root + "/spec.yaml");
  };

  // The refusal (422) names the field; its body is the error JSON.
  auto first_error = [](const StatusOr<std::string>& r) {
    auto body = nlohmann::json::parse(r.status().message(), nullptr, false);
    return body.is_object() && !body["errors"].empty() ? body["errors"][0] : nlohmann::json();
  };
  auto outside = submit("outside.mov", "deliveries/a");
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(first_error(outside).value("field", ""), "source") << outside.status().message();
  EXPECT_NE(first_error(outside).value("message", "").find("is outside the folders this farm"),
            std::string::npos);
  auto via_link = submit("media/link.mov", "deliveries/b");
  ASSERT_FALSE(via_link.ok()) << "a symlink out of a root counts where it points";
  auto escaping_out = submit("media/film.mov", "deliveries/../elsewhere");
  ASSERT_FALSE(escaping_out.ok());
  EXPECT_EQ(first_error(escaping_out).value("field", ""), "output_dir");
  EXPECT_FALSE(std::filesystem::exists(root + "/elsewhere")) << "nothing was created";

  auto inside = submit("media/film.mov", "deliveries/c");
  ASSERT_TRUE(inside.ok()) << inside.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] { return farm.Delivery(*inside).value("state", "") == "delivered"; }, 120))
      << farm.Delivery(*inside).dump(2) << farm.LogTail("worker-0");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace reelfarm::testing
