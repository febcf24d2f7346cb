#include "cli/embedded_farm.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/child_process.h"
#include "common/thread_budget.h"

namespace reelfarm::cli {

namespace fs = std::filesystem;

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr auto kPollStep = std::chrono::milliseconds(50);

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// "\n--- end of LOG ---\n<tail>" for error messages.
std::string LogTailNote(const std::string& path) {
  std::string tail = TailOfFile(path);
  if (tail.empty()) return "\n(its log " + path + " is empty)";
  if (tail.back() != '\n') tail += '\n';
  return "\nThe end of its log (" + path + "):\n" + tail;
}

}  // namespace

std::vector<std::string> RedisArgv(const std::string& redis_server, int port,
                                   const std::string& dir) {
  // clang-format off
  return {redis_server,
          "--bind", "127.0.0.1",
          "--port", std::to_string(port),
          "--dir", dir,
          "--appendonly", "yes",
          "--appendfsync", "always",
          "--save", "",
          "--daemonize", "no"};
  // clang-format on
}

std::vector<std::string> CoordinatorArgv(const std::string& binary, const FarmPorts& ports) {
  return {binary,
          "--redis",
          "redis://127.0.0.1:" + std::to_string(ports.redis),
          "--bind",
          "tcp://127.0.0.1:" + std::to_string(ports.zmq),
          "--http",
          "127.0.0.1:" + std::to_string(ports.http),
          "--metrics",
          "127.0.0.1:" + std::to_string(ports.metrics)};
}

std::vector<std::string> WorkerArgv(const std::string& binary, const FarmPorts& ports, int index,
                                    const WorkerShapeArgs& shape) {
  std::vector<std::string> argv = {
      binary, "--coordinator", "tcp://127.0.0.1:" + std::to_string(ports.zmq), "--cores",
      std::to_string(std::max(1, shape.cores)), "--name", "local-" + std::to_string(index + 1),
      // A private farm stops at once when the
      // run ends or is interrupted: nothing to
      // drain for.
      "--drain-timeout", "0"};
  if (shape.slots > 0) {
    argv.push_back("--slots");
    argv.push_back(std::to_string(shape.slots));
  }
  if (index >= 0 && static_cast<size_t>(index) < ports.worker_metrics.size()) {
    argv.push_back("--metrics");
    argv.push_back("127.0.0.1:" + std::to_string(ports.worker_metrics[index]));
  }
  return argv;
}

std::string DaemonPath(const std::string& bin_dir, const std::string& name) {
  if (!bin_dir.empty()) {
    std::string candidate = (fs::path(bin_dir) / name).string();
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return name;
}

std::string SelfBinDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return self.parent_path().string();
}

StatusOr<std::vector<int>> PickFreePorts(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = Status::IOError("cannot open a socket: " + ErrnoText(errno));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = Status::IOError("cannot pick a free loopback port: " + ErrnoText(errno));
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size <= 0) return "";
  std::streamoff start = size > static_cast<std::streamoff>(max_bytes)
                             ? size - static_cast<std::streamoff>(max_bytes)
                             : 0;
  in.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(in.gcount()));
  if (start > 0) {
    size_t nl = tail.find('\n');
    if (nl != std::string::npos && nl + 1 < tail.size()) tail.erase(0, nl + 1);
  }
  return tail;
}

EmbeddedFarm::EmbeddedFarm(EmbeddedFarmOptions options) : options_(std::move(options)) {}

EmbeddedFarm::~EmbeddedFarm() { Stop(); }

std::string EmbeddedFarm::http_url() const {
  return "http://127.0.0.1:" + std::to_string(ports_.http);
}

bool EmbeddedFarm::Interrupted() const {
  return options_.interrupted != nullptr && options_.interrupted->load();
}

Status EmbeddedFarm::Spawn(const std::string& name, const std::vector<std::string>& argv,
                           const std::string& log_path) {
  StatusOr<pid_t> pid = SpawnLogged(name, argv, log_path);
  if (!pid.ok()) return pid.status();
  Child child;
  child.name = name;
  child.pid = *pid;
  child.log_path = log_path;
  children_.push_back(child);
  return Status::OK();
}

Status EmbeddedFarm::CheckChild(Child& child) {
  if (!child.reaped) {
    int ws = 0;
    pid_t r = waitpid(child.pid, &ws, WNOHANG);
    if (r == 0) return Status::OK();
    child.reaped = true;
    child.wait_status = ws;
  }
  return Status::Unavailable("the " + child.name + " (pid " + std::to_string(child.pid) +
                             ") ended unexpectedly: " + DescribeWaitStatus(child.wait_status) +
                             LogTailNote(child.log_path));
}

Status EmbeddedFarm::CheckChildren() {
  for (Child& child : children_) {
    Status s = CheckChild(child);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status EmbeddedFarm::WaitForRedis(Child& redis) {
  auto start = SteadyClock::now();
  std::string last_error = "no answer";
  while (SecondsSince(start) < options_.start_timeout_s) {
    if (Interrupted()) return Status::Cancelled("interrupted");
    Status alive = CheckChild(redis);
    if (!alive.ok()) return alive;
    timeval timeout{0, 250'000};
    redisContext* ctx = redisConnectWithTimeout("127.0.0.1", ports_.redis, timeout);
    if (ctx != nullptr && ctx->err == 0) {
      redisSetTimeout(ctx, timeout);
      auto* reply = static_cast<redisReply*>(redisCommand(ctx, "PING"));
      bool pong = reply != nullptr && reply->type == REDIS_REPLY_STATUS &&
                  std::string(reply->str, reply->len) == "PONG";
      if (reply == nullptr) {
        last_error = ctx->errstr;
      } else if (!pong) {
        last_error = reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                                                      : "unexpected PING reply";
      }
      if (reply != nullptr) freeReplyObject(reply);
      redisFree(ctx);
      if (pong) return Status::OK();
    } else {
      if (ctx != nullptr) {
        last_error = ctx->errstr;
        redisFree(ctx);
      }
    }
    std::this_thread::sleep_for(kPollStep);
  }
  return Status::Unavailable(
      "redis-server did not answer PING on 127.0.0.1:" + std::to_string(ports_.redis) + " within " +
      std::to_string(static_cast<int>(options_.start_timeout_s)) + " s (" + last_error + ")" +
      LogTailNote(redis.log_path));
}

Status EmbeddedFarm::WaitForCoordinator(Child& coordinator) {
  auto start = SteadyClock::now();
  std::string last_error = "no answer";
  httplib::Client client("127.0.0.1", ports_.http);
  client.set_connection_timeout(0, 250'000);
  client.set_read_timeout(1, 0);
  while (SecondsSince(start) < options_.start_timeout_s) {
    if (Interrupted()) return Status::Cancelled("interrupted");
    Status alive = CheckChild(coordinator);
    if (!alive.ok()) return alive;
    httplib::Result res = client.Get("/healthz");
    if (res && res->status == 200) return Status::OK();
    last_error = res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error());
    std::this_thread::sleep_for(kPollStep);
  }
  return Status::Unavailable("the coordinator did not answer GET /healthz with 200 on " +
                             http_url() + " within " +
                             std::to_string(static_cast<int>(options_.start_timeout_s)) +
                             " s (last: " + last_error + ")" + LogTailNote(coordinator.log_path));
}

Status EmbeddedFarm::WaitForWorkers() {
  auto start = SteadyClock::now();
  httplib::Client client("127.0.0.1", ports_.http);
  client.set_connection_timeout(0, 250'000);
  client.set_read_timeout(2, 0);
  size_t seen = 0;
  while (SecondsSince(start) < options_.workers_timeout_s) {
    if (Interrupted()) return Status::Cancelled("interrupted");
    Status alive = CheckChildren();
    if (!alive.ok()) return alive;
    httplib::Result res = client.Get("/api/v1/workers");
    if (res && res->status == 200) {
      auto body = nlohmann::json::parse(res->body, nullptr, false);
      if (body.is_object() && body["workers"].is_array()) seen = body["workers"].size();
      if (seen >= static_cast<size_t>(options_.workers)) return Status::OK();
    }
    std::this_thread::sleep_for(kPollStep);
  }
  return Status::Unavailable(std::to_string(seen) + " of " + std::to_string(options_.workers) +
                             " local workers announced themselves within " +
                             std::to_string(static_cast<int>(options_.workers_timeout_s)) + " s");
}

Status EmbeddedFarm::Start() {
  if (options_.workers < 1) return Status::InvalidArgument("--workers must be at least 1");
  if (options_.slots < 0) return Status::InvalidArgument("--slots must be 0 (auto) or more");
  std::string parent = options_.tmp_dir;
  if (parent.empty()) {
    const char* env = std::getenv("TMPDIR");
    parent = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  std::string tmpl = (fs::path(parent) / "reelfarm-run-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError("cannot create a state folder under " + parent + ": " +
                           ErrnoText(errno));
  }
  state_dir_ = tmpl;

  StatusOr<std::vector<int>> ports = PickFreePorts(4 + options_.workers);
  if (!ports.ok()) return ports.status();
  ports_.redis = (*ports)[0];
  ports_.zmq = (*ports)[1];
  ports_.http = (*ports)[2];
  ports_.metrics = (*ports)[3];
  ports_.worker_metrics.assign(ports->begin() + 4, ports->end());

  Status s = Spawn("redis-server", RedisArgv(options_.redis_server, ports_.redis, state_dir_),
                   state_dir_ + "/redis.log");
  if (!s.ok()) return s;
  s = WaitForRedis(children_.back());
  if (!s.ok()) return s;

  std::string coordinator_bin = DaemonPath(options_.bin_dir, "reelfarm-coordinator");
  std::vector<std::string> coordinator_argv = CoordinatorArgv(coordinator_bin, ports_);
  for (const auto& a : options_.coordinator_args) coordinator_argv.push_back(a);
  s = Spawn("coordinator", coordinator_argv, state_dir_ + "/coordinator.log");
  if (!s.ok()) return s;
  s = WaitForCoordinator(children_.back());
  if (!s.ok()) return s;

  std::string worker_bin = DaemonPath(options_.bin_dir, "reelfarm-worker");
  // The workers share this machine: its cores are divided between them, so
  // their thread budgets add up to it and never oversubscribe it.
  const int cores = options_.cores > 0 ? options_.cores : UsableCores();
  for (int i = 0; i < options_.workers; ++i) {
    std::string name = "local-" + std::to_string(i + 1);
    WorkerShapeArgs shape;
    shape.cores = cores / options_.workers + (i < cores % options_.workers ? 1 : 0);
    shape.slots = options_.slots;
    s = Spawn("worker " + name, WorkerArgv(worker_bin, ports_, i, shape),
              state_dir_ + "/worker-" + name + ".log");
    if (!s.ok()) return s;
  }
  return Status::OK();
}

void EmbeddedFarm::StopGroup(const std::vector<Child*>& group) {
  for (Child* child : group) {
    if (!child->reaped) kill(child->pid, SIGTERM);
  }
  auto start = SteadyClock::now();
  bool killed = false;
  while (true) {
    bool all_reaped = true;
    for (Child* child : group) {
      if (child->reaped) continue;
      int ws = 0;
      pid_t r = waitpid(child->pid, &ws, WNOHANG);
      if (r == child->pid || (r < 0 && errno == ECHILD)) {
        child->reaped = true;
        child->wait_status = ws;
      } else {
        all_reaped = false;
      }
    }
    if (all_reaped) return;
    if (!killed && SecondsSince(start) >= options_.stop_grace_s) {
      for (Child* child : group) {
        if (!child->reaped) kill(child->pid, SIGKILL);
      }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void EmbeddedFarm::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Workers (they stop their FFmpeg children) and the coordinator together,
  // then Redis, which both write to. Each takes up to a second to stop (its
  // metrics server's shutdown): one after the other they added seconds to
  // every run.
  std::vector<Child*> workers, coordinator, redis;
  for (Child& child : children_) {
    if (child.name.rfind("worker", 0) == 0) {
      workers.push_back(&child);
    } else if (child.name == "coordinator") {
      coordinator.push_back(&child);
    } else {
      redis.push_back(&child);
    }
  }
  workers.insert(workers.end(), coordinator.begin(), coordinator.end());
  StopGroup(workers);
  StopGroup(redis);
  if (!state_dir_.empty() && !options_.keep_state) {
    std::error_code ec;
    fs::remove_all(state_dir_, ec);
  }
}

}  // namespace reelfarm::cli
