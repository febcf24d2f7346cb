#include "tests/support/local_farm.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/api_client.h"
#include "cli/embedded_farm.h"
#include "common/child_process.h"
#include "common/redis_client.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {

namespace fs = std::filesystem;

LocalFarm::LocalFarm(LocalFarmOptions options) : options_(std::move(options)) {
  dir_ = MakeTempDir("reelfarm-farm");
  int worker_ports = options_.worker_metrics ? options_.workers : 0;
  auto ports = cli::PickFreePorts(4 + worker_ports);
  if (ports.ok()) {
    redis_port_ = (*ports)[0];
    zmq_port_ = (*ports)[1];
    http_port_ = (*ports)[2];
    metrics_port_ = (*ports)[3];
    worker_metrics_ports_.assign(ports->begin() + 4, ports->end());
  }
}

LocalFarm::~LocalFarm() {
  for (auto& [name, pid] : pids_) {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
}

Status LocalFarm::Spawn(const std::string& name, const std::vector<std::string>& argv) {
  auto pid = SpawnLogged(name, argv, dir_ + "/" + name + ".log");
  if (!pid.ok()) return pid.status();
  pids_[name] = *pid;
  return Status::OK();
}

bool LocalFarm::WaitFor(const std::function<bool()>& done, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

Status LocalFarm::Start() {
  if (redis_port_ == 0) return Status::Unavailable("no free loopback ports");
  Status s = StartRedis();
  if (!s.ok()) return s;
  s = StartCoordinator();
  if (!s.ok()) return s;
  for (int i = 0; i < options_.workers; ++i) {
    s = StartWorker(i);
    if (!s.ok()) return s;
  }
  // Every worker announced itself.
  bool all = WaitFor(
      [&] {
        auto w = Get("/api/v1/workers");
        return w.is_object() && w["workers"].size() == static_cast<size_t>(options_.workers);
      },
      60);
  return all ? Status::OK()
             : Status::Unavailable("workers did not register: " + LogTail("worker-0"));
}

Status LocalFarm::StartRedis() {
  fs::create_directories(dir_ + "/redis");
  Status s = Spawn("redis", cli::RedisArgv("redis-server", redis_port_, dir_ + "/redis"));
  if (!s.ok()) return s;
  RedisEndpoint ep;
  ep.port = redis_port_;
  RedisClient client(ep, 1000);
  if (!WaitFor([&] { return client.Ping().ok(); }, 10)) {
    return Status::Unavailable("redis did not start: " + LogTail("redis"));
  }
  return Status::OK();
}

Status LocalFarm::StartCoordinator(const std::vector<std::string>& once) {
  std::vector<std::string> argv = {std::string(REELFARM_BIN_DIR) + "/reelfarm-coordinator",
                                   "--redis",
                                   "redis://127.0.0.1:" + std::to_string(redis_port_),
                                   "--bind",
                                   "tcp://127.0.0.1:" + std::to_string(zmq_port_),
                                   "--http",
                                   "127.0.0.1:" + std::to_string(http_port_),
                                   "--metrics",
                                   "127.0.0.1:" + std::to_string(metrics_port_),
                                   "--heartbeat-ms",
                                   std::to_string(options_.heartbeat_ms),
                                   "--liveness",
                                   std::to_string(options_.liveness),
                                   "--piece-cost",
                                   std::to_string(options_.piece_cost)};
  for (const auto& a : options_.extra_coordinator_args) argv.push_back(a);
  for (const auto& a : once) argv.push_back(a);
  Status s = Spawn("coordinator", argv);
  if (!s.ok()) return s;
  if (!WaitFor(
          [&] {
            auto h = Get("/healthz");
            return h.is_object() && h.value("ok", false);
          },
          15)) {
    return Status::Unavailable("coordinator did not start: " + LogTail("coordinator"));
  }
  return Status::OK();
}

Status LocalFarm::StartWorker(int index) {
  std::vector<std::string> argv = {std::string(REELFARM_BIN_DIR) + "/reelfarm-worker",
                                   "--coordinator",
                                   "tcp://127.0.0.1:" + std::to_string(zmq_port_),
                                   "--name",
                                   "local-" + std::to_string(index),
                                   "--slots",
                                   std::to_string(options_.slots),
                                   "--metrics",
                                   worker_metrics_port(index) > 0
                                       ? "127.0.0.1:" + std::to_string(worker_metrics_port(index))
                                       : ""};
  for (const auto& a : options_.extra_worker_args) argv.push_back(a);
  if (auto it = options_.worker_args.find(index); it != options_.worker_args.end()) {
    for (const auto& a : it->second) argv.push_back(a);
  }
  // SIGTERM stops a test's worker at once unless the test asks to drain.
  if (std::find(argv.begin(), argv.end(), "--drain-timeout") == argv.end()) {
    argv.insert(argv.end(), {"--drain-timeout", "0"});
  }
  return Spawn("worker-" + std::to_string(index), argv);
}

std::string LocalFarm::ProcessOfWorker(const std::string& worker_name) {
  return "worker-" + worker_name.substr(worker_name.rfind('-') + 1);
}

void LocalFarm::Signal(const std::string& name, int sig) {
  auto it = pids_.find(name);
  if (it == pids_.end() || it->second <= 0) return;
  kill(it->second, sig);
  if (sig == SIGKILL || sig == SIGTERM) {
    waitpid(it->second, nullptr, 0);
    it->second = -1;
  }
}

bool LocalFarm::Exited(const std::string& name) {
  auto it = pids_.find(name);
  if (it == pids_.end() || it->second <= 0) return true;
  if (waitpid(it->second, nullptr, WNOHANG) != it->second) return false;
  it->second = -1;
  return true;
}

int LocalFarm::ReviveDeadWorkers() {
  int revived = 0;
  for (int i = 0; i < options_.workers; ++i) {
    if (Exited("worker-" + std::to_string(i)) && StartWorker(i).ok()) ++revived;
  }
  return revived;
}

pid_t LocalFarm::pid(const std::string& name) const {
  auto it = pids_.find(name);
  return it == pids_.end() ? -1 : it->second;
}

nlohmann::json LocalFarm::Get(const std::string& path) {
  auto url = cli::ParseCoordinatorUrl("http://127.0.0.1:" + std::to_string(http_port_));
  cli::ApiClient client(*url);
  auto r = client.Get(path);
  if (!r.ok()) return nullptr;
  return r->json;
}

nlohmann::json LocalFarm::Delivery(const std::string& id) { return Get(cli::DeliveryPath(id)); }

StatusOr<std::string> LocalFarm::Submit(const std::string& spec_path) {
  std::ifstream in(spec_path);
  std::stringstream text;
  text << in.rdbuf();
  auto url = cli::ParseCoordinatorUrl("http://127.0.0.1:" + std::to_string(http_port_));
  cli::ApiClient client(*url);
  client.set_read_timeout_s(60);
  auto body =
      cli::SubmitRequestBody(text.str(), spec_path, fs::absolute(spec_path).parent_path().string());
  auto r = client.Post("/api/v1/deliveries", body);
  if (!r.ok()) return r.status();
  if (r->status != 201) return Status::InvalidArgument(r->body);
  return r->json["id"].get<std::string>();
}

std::string LocalFarm::LogTail(const std::string& name) const {
  return cli::TailOfFile(dir_ + "/" + name + ".log", 3000);
}

Status LocalFarm::RedisConfigSet(const std::string& key, const std::string& value) {
  RedisEndpoint ep;
  ep.port = redis_port_;
  RedisClient admin(ep);
  auto r = admin.Command({"CONFIG", "SET", key, value});
  if (!r.ok()) return r.status();
  return r->type == RedisReply::Type::kError ? Status::Internal(r->str) : Status::OK();
}

}  // namespace reelfarm::testing
