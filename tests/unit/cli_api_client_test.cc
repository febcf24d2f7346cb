// URL parsing and the HTTP commands against a scripted in-process server
// (httplib::Server on a loopback port 0): what the CLI sends and how it reads
// each kind of answer.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/embedded_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(CoordinatorUrlTest, ParsesSchemesHostsPortsAndPrefixes) {
  StatusOr<CoordinatorUrl> u = ParseCoordinatorUrl("http://127.0.0.1:8470");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8470);
  EXPECT_EQ(u->prefix, "");
  EXPECT_EQ(u->SchemeHostPort(), "http://127.0.0.1:8470");

  u = ParseCoordinatorUrl("HTTPS://farm.example.com/reelfarm/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->prefix, "/reelfarm");

  u = ParseCoordinatorUrl("render01:9000");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "render01");
  EXPECT_EQ(u->port, 9000);

  u = ParseCoordinatorUrl("http://[::1]:8470/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "[::1]");
  EXPECT_EQ(u->prefix, "");

  u = ParseCoordinatorUrl("http://host");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 80);
}

TEST(CoordinatorUrlTest, RefusesWhatIsNotAnHttpUrl) {
  for (const char* bad :
       {"", "ftp://host:21", "tcp://127.0.0.1:8471", "http://", "http://host:0",
        "http://host:70000", "http://host:12ab", "http://a b:80", "http://host:80?x=1"}) {
    StatusOr<CoordinatorUrl> u = ParseCoordinatorUrl(bad);
    EXPECT_FALSE(u.ok()) << bad;
    if (!u.ok()) {
      EXPECT_EQ(u.status().code(), Status::Code::kInvalidArgument);
    }
  }
}

TEST(ApiClientTest, PathsAndBodies) {
  EXPECT_EQ(DeliveryPath("launch-3"), "/api/v1/deliveries/launch-3");
  EXPECT_EQ(DeliveryPath("a/b?c"), "/api/v1/deliveries/a%2Fb%3Fc");
  json body = SubmitRequestBody("version: 1\n", "x.yaml", "/abs");
  EXPECT_EQ(body, (json{{"spec", "version: 1\n"}, {"spec_file", "x.yaml"}, {"base_dir", "/abs"}}));
}

// A scripted coordinator on a free loopback port.
class FakeCoordinator {
 public:
  FakeCoordinator() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    // The socket listens from here on: connections queue until the thread
    // accepts them, so no waiting is needed.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeCoordinator() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(req.method + " " + req.path);
    last_body_ = req.body;
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string last_body() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_body_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::string last_body_;
};

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  CliContext ctx;
  ctx.out = &out;
  ctx.err = &err;
  std::vector<const char*> argv = {"reelfarm"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  int code = RunCli(static_cast<int>(argv.size()), argv.data(), ctx);
  return {code, out.str(), err.str()};
}

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

class CliCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("reelfarm-cli"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CliCommandsTest, SubmitSendsTextBaseDirAndPrintsIdLast) {
  FakeCoordinator fake;
  fake.server().Post(
      "/api/v1/deliveries", [&](const httplib::Request& req, httplib::Response& res) {
        fake.Record(req);
        res.status = 201;
        res.set_content(R"({"id": "launch-7", "name": "launch", "output_dir": "/out", "jobs": 3,
                        "failed_at_plan": 1})",
                        "application/json");
      });
  std::string spec = WriteFile(dir_ + "/launch.yaml", "version: 1\nname: launch\n");
  CliRun r = Cli({"--coordinator", fake.url(), "submit", spec});
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1), "launch-7\n");
  EXPECT_NE(r.out.find("3 jobs, 1 deliverable failed at plan"), std::string::npos) << r.out;
  json sent = json::parse(fake.last_body());
  EXPECT_EQ(sent["spec"], "version: 1\nname: launch\n");
  EXPECT_EQ(sent["spec_file"], spec);
  EXPECT_EQ(fs::path(sent["base_dir"].get<std::string>()), fs::canonical(dir_));
}

TEST_F(CliCommandsTest, SubmitPrintsSpecErrorsAndExitsTwo) {
  FakeCoordinator fake;
  fake.server().Post("/api/v1/deliveries", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 422;
    res.set_content(R"({"error": "invalid spec", "errors": [
        {"file": "s.yaml", "line": 4, "field": "deliverables[0].preset", "message": "unknown",
         "text": "s.yaml:4: deliverables[0].preset: unknown preset 'x'"}]})",
                    "application/json");
  });
  std::string spec = WriteFile(dir_ + "/s.yaml", "version: 1\n");
  CliRun r = Cli({"submit", spec, "--coordinator", fake.url()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "s.yaml:4: deliverables[0].preset: unknown preset 'x'\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(CliCommandsTest, EnvironmentNamesTheCoordinator) {
  FakeCoordinator fake;
  fake.server().Get("/api/v1/workers", [&](const httplib::Request& req, httplib::Response& res) {
    fake.Record(req);
    res.set_content(R"({"workers": [{"name": "w1", "host": "h", "state": "ready", "slots": 1,
                        "running": 0, "encoders": ["libx264"], "gpu": true}]})",
                    "application/json");
  });
  setenv("REELFARM_COORDINATOR", fake.url().c_str(), 1);
  CliRun r = Cli({"workers"});
  unsetenv("REELFARM_COORDINATOR");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("w1    h     ready  -      1      -        0        libx264   yes"),
            std::string::npos)
      << r.out;
  r = Cli({"--coordinator", fake.url(), "workers", "--json"});
  EXPECT_EQ(json::parse(r.out)["workers"][0]["name"], "w1");
}

TEST_F(CliCommandsTest, StatusCancelAndWatch) {
  FakeCoordinator fake;
  json d = {{"id", "d-1"},
            {"name", "d"},
            {"state", "delivered"},
            {"deliverables", 1},
            {"delivered", 1},
            {"failed", 0},
            {"progress", 1.0},
            {"output_dir", "/out"},
            {"manifest", "/out/manifest.json"},
            {"items",
             {{{"name", "web"},
               {"preset", "web-h264"},
               {"state", "delivered"},
               {"progress", 1.0},
               {"attempts", 1},
               {"worker", "w1"},
               {"path", "web.mp4"},
               {"bytes", 4096},
               {"sha256", "feedbeef00112233"}}}}};
  fake.server().Get("/api/v1/deliveries", [&](const httplib::Request& req, httplib::Response& res) {
    fake.Record(req);
    res.set_content(json{{"deliveries", {d}}}.dump(), "application/json");
  });
  fake.server().Get(R"(/api/v1/deliveries/([^/]+))",
                    [&](const httplib::Request& req, httplib::Response& res) {
                      fake.Record(req);
                      if (req.matches[1] != "d-1") {
                        res.status = 404;
                        res.set_content(R"({"error": "no delivery 'nope'"})", "application/json");
                        return;
                      }
                      res.set_content(d.dump(), "application/json");
                    });
  fake.server().Post(R"(/api/v1/deliveries/([^/]+)/cancel)",
                     [&](const httplib::Request& req, httplib::Response& res) {
                       fake.Record(req);
                       json c = d;
                       c["state"] = "cancelled";
                       res.set_content(c.dump(), "application/json");
                     });
  std::string url = fake.url();

  CliRun r = Cli({"--coordinator", url, "status"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("d-1  d     delivered  100%"), std::string::npos) << r.out;

  r = Cli({"--coordinator", url, "status", "d-1"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("web          web-h264  delivered"), std::string::npos) << r.out;

  r = Cli({"--coordinator", url, "status", "d-1", "--json"});
  EXPECT_EQ(json::parse(r.out), d);

  r = Cli({"--coordinator", url, "status", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no delivery 'nope'"), std::string::npos);

  r = Cli({"--coordinator", url, "watch", "d-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("web: delivered web.mp4 (4.0 KiB, sha256 feedbeef0011)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Manifest: /out/manifest.json"), std::string::npos);

  r = Cli({"--coordinator", url, "cancel", "d-1"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Cancelled d-1: now cancelled"), std::string::npos) << r.out;
  std::vector<std::string> requests = fake.requests();
  EXPECT_EQ(requests.back(), "POST /api/v1/deliveries/d-1/cancel");
}

TEST_F(CliCommandsTest, UnreachableCoordinatorExitsFour) {
  StatusOr<std::vector<int>> ports = PickFreePorts(1);
  ASSERT_TRUE(ports.ok());
  std::string url = "http://127.0.0.1:" + std::to_string((*ports)[0]);
  std::string spec = WriteFile(dir_ + "/s.yaml", "version: 1\n");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"status"}, {"workers"}, {"cancel", "x"}, {"submit", spec}}) {
    args.insert(args.begin(), {"--coordinator", url});
    CliRun r = Cli(args);
    EXPECT_EQ(r.code, 4) << args[2];
    EXPECT_NE(r.err.find("cannot reach the coordinator at " + url), std::string::npos) << r.err;
  }
}

TEST_F(CliCommandsTest, UsageErrorsExitOne) {
  EXPECT_EQ(Cli({}).code, 1);
  EXPECT_EQ(Cli({"frobnicate"}).code, 1);
  EXPECT_EQ(Cli({"watch"}).code, 1);
  EXPECT_EQ(Cli({"--coordinator", "ftp://x", "workers"}).code, 1);
  std::string spec = WriteFile(dir_ + "/s.yaml", "version: 1\n");
  EXPECT_EQ(Cli({"run", spec, "--workers", "0"}).code, 1);
  CliRun help = Cli({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("run"), std::string::npos);
}

TEST_F(CliCommandsTest, SubmitOfAMissingFileIsASpecError) {
  CliRun r = Cli({"--coordinator", "http://127.0.0.1:1", "submit", dir_ + "/missing.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(dir_ + "/missing.yaml:"), std::string::npos) << r.err;
}

TEST_F(CliCommandsTest, PlanAndRunReportSpecErrorsAndWriteNothing) {
  std::string spec = WriteFile(dir_ + "/bad.yaml",
                               "version: 1\n"
                               "name: bad\n"
                               "source: missing.mov\n"
                               "output_dir: out\n"
                               "deliverables:\n"
                               "  - name: web\n"
                               "    preset: web-h264\n"
                               "    height: 721\n");
  CliRun r = Cli({"plan", spec});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(spec + ":8: deliverables[0].height: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");

  r = Cli({"run", spec, "--workers", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(spec + ":8: deliverables[0].height: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Starting"), std::string::npos) << "nothing may start: " << r.err;
  EXPECT_FALSE(fs::exists(dir_ + "/out"));
}

}  // namespace
}  // namespace reelfarm::cli
