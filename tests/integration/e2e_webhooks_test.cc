// Signed webhooks end to end (docs/webhooks.md): a receiver in the test
// verifies every signature and sees every event at least once (deduplicated
// by webhook-id) across a SIGKILLed and restarted coordinator and while it
// answers 503 for a while; what keeps failing becomes a dead letter, listed
// by the API and metrics and sent again on request; webhooks to addresses
// that are not public are refused.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/webhooks.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

constexpr char kFarmSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kSpecSecret[] = "whsec_c3BlYy1zZWNyZXQtb2YtdGhlLWRlbGl2ZXJ5LTAx";

// An HTTP receiver on 127.0.0.1: checks each message's signature with the
// secret of its path, answers 503 while down, 200 and records it while up.
class Receiver {
 public:
  Receiver() {
    keys_["/farm"] = *ParseWebhookSecret(kFarmSecret);
    keys_["/spec"] = *ParseWebhookSecret(kSpecSecret);
    for (const auto& [path, key] : keys_) {
      server_.Post(path, [this, path = path](const httplib::Request& req, httplib::Response& res) {
        Handle(path, req, res);
      });
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound and listening already: connections wait for the accept loop.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void set_up(bool up) { up_ = up; }
  int refused() const { return refused_; }
  int bad_signatures() const { return bad_; }
  // The distinct messages received on `path`, by webhook-id.
  std::map<std::string, nlohmann::json> Received(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return received_[path];
  }
  int Count(const std::string& path, const std::string& type) {
    int n = 0;
    for (const auto& [id, body] : Received(path)) n += body.value("type", "") == type;
    return n;
  }

 private:
  void Handle(const std::string& path, const httplib::Request& req, httplib::Response& res) {
    Status s = VerifyWebhook(
        keys_[path], req.get_header_value("webhook-id"), req.get_header_value("webhook-timestamp"),
        req.get_header_value("webhook-signature"), req.body, std::time(nullptr));
    if (!s.ok()) {
      ++bad_;
      res.status = 400;
      return;
    }
    if (!up_) {
      ++refused_;
      res.status = 503;
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    received_[path][req.get_header_value("webhook-id")] = nlohmann::json::parse(req.body);
    res.status = 204;
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::map<std::string, std::string> keys_;
  std::atomic<bool> up_{false};
  std::atomic<int> refused_{0}, bad_{0};
  std::mutex mu_;
  std::map<std::string, std::map<std::string, nlohmann::json>> received_;
};

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string WriteSpec(const std::string& dir, const std::string& name, const std::string& hooks,
                      bool three = true) {
  std::string spec = "version: 1\nname: " + name + "\nsource: source.mov\noutput_dir: out-" + name +
                     "\ndeliverables:\n"
                     "  - name: poster\n"
                     "    preset: thumbnail-jpg\n";
  if (three) {
    spec +=
        "  - name: web\n"
        "    preset: web-h264\n"
        "  - name: small\n"
        "    preset: web-h264\n"
        "    height: 90\n";
  }
  return WriteFile(dir + "/" + name + ".yaml", spec + hooks);
}

nlohmann::json Post(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Post(path.c_str(), "", "application/json");
  if (!r) return nullptr;
  nlohmann::json body = nlohmann::json::parse(r->body, nullptr, false);
  return {{"status", r->status}, {"body", body}};
}

std::string Metrics(int port) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  return r ? r->body : "";
}

TEST(E2eWebhooks, EveryEventArrivesSignedAcrossACoordinatorKillAndAReceiverOutage) {
  Receiver receiver;
  const std::string secrets = MakeTempDir("reelfarm-hooks");
  LocalFarmOptions opts;
  opts.workers = 2;
  opts.extra_coordinator_args = {
      "--webhook",
      receiver.Url("/farm"),
      "--webhook-secret-file",
      WriteFile(secrets + "/farm.secret", std::string(kFarmSecret) + "\n"),
      "--webhook-allow",
      "127.0.0.1/32",
      "--webhook-retry-ms",
      "50",
      "--webhook-retry-max-ms",
      "200",
      "--webhook-attempts",
      "1000"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.StartRedis().ok());
  // The coordinator dies on receiving the second result, before recording
  // it: mid-delivery, with events queued (the receiver is down) and one
  // result Redis never saw.
  ASSERT_TRUE(farm.StartCoordinator({"--fault-kill-on-result", "2"}).ok())
      << farm.LogTail("coordinator");
  for (int i = 0; i < opts.workers; ++i) ASSERT_TRUE(farm.StartWorker(i).ok());
  GenerateSource(SourceKind::kPlain, farm.dir() + "/source.mov", 2.0);
  WriteFile(farm.dir() + "/hook.secret", kSpecSecret);
  auto id = farm.Submit(WriteSpec(
      farm.dir(), "hooked",
      "webhooks:\n  - url: " + receiver.Url("/spec") + "\n    secret_file: hook.secret\n"));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return farm.Exited("coordinator"); }, 30))
      << "the fault hook did not fire: " << farm.LogTail("coordinator");
  ASSERT_NE(farm.LogTail("coordinator").find("fault injection"), std::string::npos);
  EXPECT_GE(receiver.refused(), 1);
  EXPECT_TRUE(receiver.Received("/farm").empty());
  ASSERT_TRUE(farm.StartCoordinator().ok()) << farm.LogTail("coordinator");
  // Still down for a while after the restart: the restarted one retries.
  const int refused_before = receiver.refused();
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return receiver.refused() >= refused_before + 2; }, 20))
      << farm.LogTail("coordinator");
  receiver.set_up(true);

  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        if (!d.is_object() || !IsFinished(d)) return false;
        for (const char* path : {"/farm", "/spec"}) {
          if (receiver.Count(path, kEventDeliveryFinished) < 1) return false;
        }
        return true;
      },
      60))
      << farm.LogTail("coordinator");
  auto delivery = farm.Delivery(*id);
  ASSERT_EQ(delivery.value("state", ""), "delivered") << delivery.dump(2);
  std::map<std::string, std::string> sha;  // deliverable -> sha256
  for (const auto& item : delivery["items"]) sha[item["name"]] = item["sha256"];
  ASSERT_EQ(sha.size(), 3u);

  EXPECT_EQ(receiver.bad_signatures(), 0);
  for (const char* path : {"/farm", "/spec"}) {
    auto got = receiver.Received(path);
    EXPECT_EQ(receiver.Count(path, kEventDeliveryAccepted), 1) << path;
    EXPECT_EQ(receiver.Count(path, kEventDeliverablePublished), 3) << path;
    EXPECT_EQ(receiver.Count(path, kEventDeliverableFailed), 0) << path;
    EXPECT_EQ(receiver.Count(path, kEventDeliveryFinished), 1) << path;
    for (const auto& [msg_id, body] : got) {
      EXPECT_EQ(msg_id.rfind("msg_", 0), 0u);
      EXPECT_EQ(body["data"].value("delivery", ""), *id);
      if (body["type"] == kEventDeliverablePublished) {
        EXPECT_EQ(body["data"].value("sha256", ""), sha[body["data"].value("deliverable", "")])
            << body.dump();
      }
      if (body["type"] == kEventDeliveryFinished) {
        EXPECT_EQ(body["data"].value("state", ""), "delivered");
        EXPECT_EQ(body["data"].value("delivered", 0), 3);
      }
    }
  }
  // Both endpoints were told the same events under the same ids.
  std::set<std::string> farm_ids, spec_ids;
  for (const auto& [k, v] : receiver.Received("/farm")) farm_ids.insert(k);
  for (const auto& [k, v] : receiver.Received("/spec")) spec_ids.insert(k);
  EXPECT_EQ(farm_ids, spec_ids);

  // The queue drains; nothing is dead; the metrics saw it.
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto w = farm.Get("/api/v1/webhooks");
        return w.is_object() && w.value("queue", -1) == 0;
      },
      20))
      << farm.Get("/api/v1/webhooks").dump(2);
  EXPECT_EQ(farm.Get("/api/v1/webhooks").value("dead_letters", -1), 0);
  const std::string metrics = Metrics(farm.metrics_port());
  EXPECT_NE(metrics.find("reelfarm_webhook_deliveries_total{result=\"ok\"}"), std::string::npos);
  EXPECT_NE(metrics.find("reelfarm_webhook_queue"), std::string::npos);
}

TEST(E2eWebhooks, DeadLettersAreListedAndRedeliveredAndPrivateAddressesRefused) {
  Receiver receiver;
  const std::string secrets = MakeTempDir("reelfarm-hooks");
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_coordinator_args = {"--webhook",
                                 receiver.Url("/farm"),
                                 "--webhook-secret-file",
                                 WriteFile(secrets + "/farm.secret", kFarmSecret),
                                 "--webhook-allow",
                                 "127.0.0.1",
                                 "--webhook-retry-ms",
                                 "20",
                                 "--webhook-attempts",
                                 "2"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  GenerateSource(SourceKind::kPlain, farm.dir() + "/source.mov", 1.0);
  WriteFile(farm.dir() + "/hook.secret", kSpecSecret);

  // Cloud metadata, or loopback not on the allow-list: refused at submission.
  for (const char* url :
       {"http://169.254.169.254/latest/meta-data", "http://[::1]:9/x", "http://10.1.2.3/hook"}) {
    auto refused = farm.Submit(WriteSpec(
        farm.dir(), "refused",
        std::string("webhooks:\n  - url: ") + url + "\n    secret_file: hook.secret\n", false));
    ASSERT_FALSE(refused.ok()) << url;
    EXPECT_NE(refused.status().message().find("webhooks[0].url"), std::string::npos)
        << refused.status().message();
  }
  // A secret that is no whsec_ secret: refused, naming the field.
  WriteFile(farm.dir() + "/weak.secret", "whsec_c2hvcnQ=");
  auto weak = farm.Submit(WriteSpec(
      farm.dir(), "weak",
      "webhooks:\n  - url: " + receiver.Url("/spec") + "\n    secret_file: weak.secret\n", false));
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.status().message().find("webhooks[0].secret_file"), std::string::npos)
      << weak.status().message();

  // A webhook of the request (`reelfarm submit --webhook`) needs an
  // absolute secret file.
  {
    httplib::Client c("127.0.0.1", farm.http_port());
    nlohmann::json body = {{"spec", "version: 1\n"},
                           {"base_dir", farm.dir()},
                           {"webhooks", {{{"url", receiver.Url("/spec")}, {"secret_file", 7}}}}};
    auto r = c.Post("/api/v1/deliveries", body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
  }

  // The receiver stays down: each message is tried twice, then dead. The
  // farm's webhook and one given to `reelfarm submit --webhook`.
  std::string out;
  ASSERT_EQ(RunArgv({std::string(REELFARM_BIN_DIR) + "/reelfarm", "--coordinator", farm.api_url(),
                     "submit", WriteSpec(farm.dir(), "doomed", "", false), "--webhook",
                     receiver.Url("/spec"), "--webhook-secret-file", farm.dir() + "/hook.secret"},
                    &out),
            0)
      << out;
  std::string id = out;  // the last line
  while (!id.empty() && id.back() == '\n') id.pop_back();
  id = id.substr(id.rfind('\n') + 1);
  nlohmann::json hooks;
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        hooks = farm.Get("/api/v1/webhooks");
        return hooks.is_object() && hooks.value("dead_letters", 0) >= 6 &&
               hooks.value("queue", -1) == 0;
      },
      30))
      << hooks.dump(2) << farm.LogTail("coordinator");
  ASSERT_EQ(hooks["dead"].size(), 6u) << hooks.dump(2);
  std::map<std::string, int> types;
  for (const auto& d : hooks["dead"]) {
    ++types[d.value("type", "")];
    EXPECT_EQ(d.value("attempts", 0), 2);
    EXPECT_EQ(d.value("last_error", ""), "HTTP 503");
    EXPECT_EQ(d.value("delivery", ""), id);
    EXPECT_EQ(d.count("body"), 0u);  // listed without the payload
    // Scheme, host and port only.
    EXPECT_EQ(d.value("url", ""), "http://127.0.0.1:" + std::to_string(receiver.port()) + "/...");
  }
  EXPECT_EQ(types, (std::map<std::string, int>{{kEventDeliveryAccepted, 2},
                                               {kEventDeliverablePublished, 2},
                                               {kEventDeliveryFinished, 2}}));
  EXPECT_TRUE(LocalFarm::WaitFor(
      [&] {
        return Metrics(farm.metrics_port()).find("reelfarm_webhook_dead_letters 6") !=
               std::string::npos;
      },
      10));

  // Back up, one is sent again on request.
  receiver.set_up(true);
  const std::string entry = hooks["dead"][0].value("entry", "");
  auto r = Post(farm.http_port(), "/api/v1/webhooks/dead/" + entry + "/redeliver");
  ASSERT_EQ(r.value("status", 0), 200) << r.dump();
  auto received = [&] {
    auto all = receiver.Received("/farm");
    for (auto& [k, v] : receiver.Received("/spec")) all[k] = v;
    return all;
  };
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return received().size() == 1; }, 20))
      << farm.LogTail("coordinator");
  EXPECT_EQ(received().begin()->first, hooks["dead"][0].value("webhook_id", ""));
  EXPECT_EQ(farm.Get("/api/v1/webhooks").value("dead_letters", 0), 5);
  EXPECT_EQ(
      Post(farm.http_port(), "/api/v1/webhooks/dead/" + entry + "/redeliver").value("status", 0),
      404);
  EXPECT_EQ(receiver.bad_signatures(), 0);
}

}  // namespace
}  // namespace reelfarm::testing
