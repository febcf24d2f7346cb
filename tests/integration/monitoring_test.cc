// Monitoring against a real farm (redis-server, coordinator and a worker as
// processes, real FFmpeg): both /metrics endpoints pass `promtool check
// metrics`, both daemons' --log-format json lines are JSON carrying the ids
// they concern, and Debian's Prometheus, scraping the farm with the
// project's monitoring/prometheus.yml (a test copy with a 1 s interval and
// the farm's ports), evaluates every PromQL expression of the dashboards and
// alert rules without error, with data in the throughput, queue and worker
// speed panels. Every wait is on a condition with a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli/embedded_farm.h"
#include "common/child_process.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

extern char** environ;

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

const std::string kMonitoring = std::string(REELFARM_SOURCE_DIR) + "/monitoring";

// Runs argv (no shell) with stdin from `in_path`; stdout and stderr into
// *output. Returns the exit code, -1 when it could not run.
int RunWithStdin(const std::vector<std::string>& argv, const std::string& in_path,
                 std::string* output) {
  std::string out_path = in_path + ".out";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  *output = ReadFileBytes(out_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string HttpGet(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  auto r = c.Get(path.c_str());
  return r && r->status == 200 ? r->body : "";
}

// A 2 s source and a spec with one job of each kind (encode, thumbnail,
// audio) in `dir`.
std::string WriteDeliverySpec(const std::string& dir) {
  GenerateSource(SourceKind::kPlain, dir + "/source.mov", 2.0);
  std::string spec = dir + "/spec.yaml";
  std::ofstream(spec) << "version: 1\n"
                         "name: monitored\n"
                         "source: source.mov\n"
                         "output_dir: out\n"
                         "deliverables:\n"
                         "  - name: web\n"
                         "    preset: web-h264\n"
                         "    height: 180\n"
                         "  - name: poster\n"
                         "    preset: thumbnail-jpg\n"
                         "  - name: sound\n"
                         "    preset: audio-wav\n";
  return spec;
}

// Submits the spec and waits for the delivery to finish; returns its id.
std::string Deliver(LocalFarm& farm) {
  auto id = farm.Submit(WriteDeliverySpec(farm.dir()));
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  if (!id.ok()) return "";
  bool finished = LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        return d.is_object() && d.value("state", "") == "delivered";
      },
      60);
  EXPECT_TRUE(finished) << farm.Delivery(*id).dump(2) << farm.LogTail("worker-0");
  return *id;
}

LocalFarmOptions FarmOptions() {
  LocalFarmOptions o;
  o.workers = 1;
  o.slots = 2;
  o.worker_metrics = true;
  o.extra_coordinator_args = {"--log-format", "json"};
  o.extra_worker_args = {"--log-format", "json"};
  return o;
}

// Every line of a daemon's log is a JSON object with ts, level, component
// and msg; returns them.
std::vector<nlohmann::json> JsonLogLines(const std::string& path, const std::string& component) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(ReadFileBytes(path));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_TRUE(j.is_object()) << path << ": not a JSON object: " << line;
    if (!j.is_object()) continue;
    for (const char* key : {"ts", "level", "component", "msg"}) {
      EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key << " missing: " << line;
    }
    EXPECT_EQ(j.value("component", ""), component) << line;
    lines.push_back(j);
  }
  EXPECT_FALSE(lines.empty()) << path;
  return lines;
}

TEST(Monitoring, EndpointsPassPromtoolCheckMetricsAndLogsAreJsonWithIds) {
  LocalFarm farm(FarmOptions());
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  std::string id = Deliver(farm);
  ASSERT_FALSE(id.empty());

  struct Endpoint {
    std::string name;
    int port;
    std::vector<std::string> must_have;
  };
  std::vector<Endpoint> endpoints = {
      {"coordinator",
       farm.metrics_port(),
       {"reelfarm_build_info{", "reelfarm_deliveries_submitted_total 1",
        "reelfarm_deliverables_completed_total{preset=\"web-h264\",result=\"delivered\"} 1",
        "reelfarm_job_duration_seconds_bucket{preset=\"thumbnail-jpg\",le=\"+Inf\"} 1",
        "reelfarm_workers{state=\"ready\"} 1"}},
      {"worker",
       farm.worker_metrics_port(0),
       {"reelfarm_worker_slots 2", "reelfarm_worker_encoder_info{encoder=\"libx264\"} 1",
        "reelfarm_worker_ffmpeg_exits_total{kind=\"encode\",result=\"succeeded\"} 1",
        "reelfarm_worker_info{worker=\"local-0\"} 1"}},
  };
  for (const auto& e : endpoints) {
    SCOPED_TRACE(e.name);
    // Gauges are refreshed about once a second: wait for them to settle.
    std::string text;
    LocalFarm::WaitFor(
        [&] {
          text = HttpGet(e.port, "/metrics");
          for (const auto& s : e.must_have) {
            if (text.find(s) == std::string::npos) return false;
          }
          return true;
        },
        10);
    ASSERT_FALSE(text.empty()) << "no /metrics on port " << e.port;
    for (const auto& s : e.must_have) EXPECT_NE(text.find(s), std::string::npos) << s;
    // The worker's output counter moved: a published file has bytes.
    if (e.name == "worker") {
      std::smatch m;
      ASSERT_TRUE(std::regex_search(
          text, m,
          std::regex(R"(reelfarm_worker_output_bytes_total\{kind="encode"\} ([0-9.e+]+))")));
      EXPECT_GT(std::stod(m[1]), 1000);
    }
    std::string file = farm.dir() + "/" + e.name + ".metrics";
    std::ofstream(file) << text;
    std::string out;
    EXPECT_EQ(RunWithStdin({"promtool", "check", "metrics"}, file, &out), 0) << out;
    EXPECT_EQ(out, "") << "promtool advice for the " << e.name << " endpoint";
  }

  // JSON logs: every line valid; the lines about this delivery's jobs carry
  // both ids.
  for (const auto& [proc, component] : std::vector<std::pair<std::string, std::string>>{
           {"coordinator", "coordinator"}, {"worker-0", "worker"}}) {
    SCOPED_TRACE(proc);
    int with_ids = 0;
    for (const auto& j : JsonLogLines(farm.dir() + "/" + proc + ".log", component)) {
      if (j.value("job", "").rfind(id + ".", 0) == 0 && j.value("delivery", "") == id) ++with_ids;
    }
    EXPECT_GE(with_ids, 3) << "lines about " << id << "'s jobs without their ids";
  }
}

// ---------------------------------------------------------------- Prometheus

struct Query {
  std::string where;  // dashboard/panel or rule file/alert
  std::string expr;
};

// Grafana's variables as Prometheus cannot know them: intervals become
// fixed windows (1 s scrapes), a template variable matches everything.
std::string Substitute(std::string expr) {
  expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval|\$__interval|\$__range)"), "1m");
  return std::regex_replace(expr, std::regex(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"), ".*");
}

void CollectPanels(const nlohmann::json& panels, const std::string& dash, std::vector<Query>* out,
                   std::map<std::string, std::vector<std::string>>* by_title) {
  for (const auto& p : panels) {
    if (p.contains("panels")) CollectPanels(p["panels"], dash, out, by_title);
    if (!p.contains("targets")) continue;
    for (const auto& t : p["targets"]) {
      std::string expr = Substitute(t.value("expr", ""));
      out->push_back({dash + " / " + p.value("title", ""), expr});
      (*by_title)[p.value("title", "")].push_back(expr);
    }
  }
}

// Every expression of both dashboards (panels and template variables) and
// of every rule file.
std::vector<Query> AllQueries(std::map<std::string, std::vector<std::string>>* panels) {
  std::vector<Query> out;
  int dashboards = 0;
  for (const auto& f : fs::directory_iterator(kMonitoring + "/grafana/dashboards")) {
    if (f.path().extension() != ".json") continue;
    ++dashboards;
    auto dash = nlohmann::json::parse(ReadFileBytes(f.path()));
    std::string name = dash.value("title", f.path().filename().string());
    CollectPanels(dash["panels"], name, &out, panels);
    for (const auto& v : dash["templating"]["list"]) {
      // label_values(METRIC, LABEL): Grafana asks for METRIC's series.
      std::smatch m;
      std::string q = v["query"].is_object() ? v["query"].value("query", "") : v.value("query", "");
      if (std::regex_match(q, m, std::regex(R"(label_values\((.+),\s*\w+\))"))) {
        out.push_back({name + " / variable " + v.value("name", ""), Substitute(m[1])});
      }
    }
  }
  EXPECT_EQ(dashboards, 2);
  int rules = 0;
  for (const auto& f : fs::directory_iterator(kMonitoring + "/rules")) {
    YAML::Node doc = YAML::LoadFile(f.path());
    for (const auto& g : doc["groups"]) {
      for (const auto& r : g["rules"]) {
        ++rules;
        std::string name =
            r["alert"] ? r["alert"].as<std::string>() : r["record"].as<std::string>();
        out.push_back({f.path().filename().string() + " / " + name, r["expr"].as<std::string>()});
      }
    }
  }
  EXPECT_GE(rules, 5);
  return out;
}

// The project's scrape config with the farm's ports, 1 s intervals and the
// rule files by absolute path.
std::string WriteTestPrometheusConfig(const std::string& dir, LocalFarm& farm) {
  YAML::Node cfg = YAML::LoadFile(kMonitoring + "/prometheus.yml");
  cfg["global"]["scrape_interval"] = "1s";
  cfg["global"]["evaluation_interval"] = "1s";
  YAML::Node rules(YAML::NodeType::Sequence);
  rules.push_back(kMonitoring + "/rules/*.yml");
  cfg["rule_files"] = rules;
  std::set<std::string> jobs;
  for (auto sc : cfg["scrape_configs"]) {
    std::string job = sc["job_name"].as<std::string>();
    jobs.insert(job);
    YAML::Node targets(YAML::NodeType::Sequence);
    if (job == "reelfarm-coordinator") {
      targets.push_back("127.0.0.1:" + std::to_string(farm.metrics_port()));
    } else if (job == "reelfarm-worker") {
      targets.push_back("127.0.0.1:" + std::to_string(farm.worker_metrics_port(0)));
    }
    YAML::Node sd;
    sd["targets"] = targets;
    YAML::Node sds(YAML::NodeType::Sequence);
    sds.push_back(sd);
    sc["static_configs"] = sds;
  }
  EXPECT_EQ(jobs, (std::set<std::string>{"reelfarm-coordinator", "reelfarm-worker"}));
  std::string path = dir + "/prometheus.yml";
  std::ofstream(path) << YAML::Dump(cfg) << "\n";
  return path;
}

class PrometheusServer {
 public:
  Status Start(const std::string& dir, const std::string& config) {
    auto ports = cli::PickFreePorts(1);
    if (!ports.ok()) return ports.status();
    port_ = (*ports)[0];
    log_ = dir + "/prometheus.log";
    auto pid = SpawnLogged(
        "prometheus",
        {"prometheus", "--config.file=" + config, "--storage.tsdb.path=" + dir + "/tsdb",
         "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
        log_);
    if (!pid.ok()) return pid.status();
    pid_ = *pid;
    if (!LocalFarm::WaitFor([&] { return !HttpGet(port_, "/-/ready").empty(); }, 30)) {
      return Status::Unavailable("prometheus did not become ready: " + cli::TailOfFile(log_));
    }
    return Status::OK();
  }
  ~PrometheusServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // GET /api/v1/query; the parsed answer (null when there was none).
  nlohmann::json Query(const std::string& expr) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    httplib::Params params{{"query", expr}};
    auto r = c.Get("/api/v1/query", params, httplib::Headers{});
    if (!r) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  std::string LogTail() const { return cli::TailOfFile(log_); }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::string log_;
};

// Series in a successful vector answer.
size_t SeriesCount(const nlohmann::json& answer) {
  if (!answer.is_object() || answer.value("status", "") != "success") return 0;
  return answer["data"]["result"].size();
}

// The largest finite value of a vector answer; NaN when none.
double MaxFiniteValue(const nlohmann::json& answer) {
  double best = std::nan("");
  if (SeriesCount(answer) == 0) return best;
  for (const auto& s : answer["data"]["result"]) {
    double v = std::strtod(s["value"][1].get<std::string>().c_str(), nullptr);
    if (std::isfinite(v) && (std::isnan(best) || v > best)) best = v;
  }
  return best;
}

TEST(Monitoring, PrometheusScrapesTheFarmAndEveryDashboardAndAlertQueryEvaluates) {
  LocalFarm farm(FarmOptions());
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  std::string dir = MakeTempDir("reelfarm-prometheus");
  PrometheusServer prom;
  Status started = prom.Start(dir, WriteTestPrometheusConfig(dir, farm));
  ASSERT_TRUE(started.ok()) << started.ToString();

  // Both targets scraped (so the counters are seen at 0 before the delivery).
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto a = prom.Query(R"(up{job=~"reelfarm-coordinator|reelfarm-worker"} == 1)");
        return SeriesCount(a) == 2;
      },
      30))
      << prom.Query("up").dump() << prom.LogTail();
  ASSERT_FALSE(Deliver(farm).empty());
  // Prometheus has scraped the finished delivery: each deliverable counted
  // once across the farm.
  const std::string delivered =
      R"(sum(reelfarm_deliverables_completed_total{result="delivered",preset=~"web-h264|thumbnail-jpg|audio-wav"}))";
  EXPECT_TRUE(LocalFarm::WaitFor([&] { return MaxFiniteValue(prom.Query(delivered)) == 3; }, 20))
      << prom.Query("reelfarm_deliverables_completed_total").dump();

  std::map<std::string, std::vector<std::string>> panels;
  std::vector<Query> queries = AllQueries(&panels);
  ASSERT_GE(queries.size(), 30u);
  for (const auto& q : queries) {
    auto a = prom.Query(q.expr);
    ASSERT_TRUE(a.is_object()) << "no answer from prometheus: " << prom.LogTail();
    EXPECT_EQ(a.value("status", ""), "success") << q.where << ": " << q.expr << "\n" << a.dump();
  }

  // The panels an operator looks at first have data once the delivery's
  // samples are scraped: throughput above 0, the queue's series, and a
  // measured worker speed above 0.
  auto first = [&](const std::string& title) {
    EXPECT_FALSE(panels[title].empty()) << "no panel titled " << title;
    return panels[title].empty() ? std::string("vector(0)") : panels[title].front();
  };
  const std::string throughput = first("Throughput: deliverables delivered per minute");
  const std::string speed = first("Average encode speed (x realtime)");
  const std::string live_speed = first("Live encode speed (x realtime)");
  bool have_data = LocalFarm::WaitFor(
      [&] {
        return MaxFiniteValue(prom.Query(throughput)) > 0 &&
               MaxFiniteValue(prom.Query(speed)) > 0 && SeriesCount(prom.Query(live_speed)) > 0;
      },
      20);
  EXPECT_TRUE(have_data) << throughput << " -> " << prom.Query(throughput).dump() << "\n"
                         << speed << " -> " << prom.Query(speed).dump();
  for (const auto& expr : panels["Queue"]) {
    EXPECT_GT(SeriesCount(prom.Query(expr)), 0u) << expr;
  }
  ASSERT_EQ(panels["Queue"].size(), 3u);
  // Every panel but the GPU ones (no GPU here) returns series.
  for (const auto& [title, exprs] : panels) {
    if (title.find("GPU") != std::string::npos) continue;
    for (const auto& expr : exprs) {
      EXPECT_GT(SeriesCount(prom.Query(expr)), 0u) << title << ": " << expr;
    }
  }
}

}  // namespace
}  // namespace reelfarm::testing
