// reelfarm-bench-scheduler: a load generator for the coordinator's
// scheduler, run against a REAL reelfarm-coordinator process and a REAL
// redis-server with `appendonly yes` and `appendfsync always` (the arguments
// `reelfarm run` uses, cli::RedisArgv), both started here on free loopback
// ports in a private temporary folder.
//
// Workers are fakes that speak the real wire protocol (proto/reelfarm.proto)
// over ZeroMQ DEALER sockets, many sockets driven by one thread with
// zmq_poll: Hello, heartbeats at the Welcome's interval, and for each Assign
// an immediate publish_request, then on the PublishGrant a successful
// JobResult with one OutputResult per job output. Jobs therefore complete
// instantly and what is measured is the coordinator (and its Redis) alone.
//
// Phases (--phases), each on a fresh Redis and coordinator:
//   redis       redis-benchmark SET/GET with 1 and 50 clients against the
//               benchmark's Redis, plus the coordinator's idle VmRSS.
//   memory      coordinator VmRSS with --memory-jobs queued jobs and no
//               worker; then the time to restart and reload them.
//   throughput  queue --backlog jobs, connect --workers fake workers, and
//               measure completed (acknowledged) jobs per second.
//   latency     open-loop submissions at --latency-rate jobs/s with
//               --latency-workers idle fake workers; p50/p99 from the HTTP
//               POST being sent to the Assign arriving at a fake worker.
// Every result is one `[ figures ] ...` line on stdout; progress lines start
// with `[ bench ]`. Exit code 0 when every phase ran, 1 otherwise.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "cli/api_client.h"
#include "cli/embedded_farm.h"
#include "common/child_process.h"
#include "common/redis_client.h"
#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using SteadyPoint = SteadyClock::time_point;
using Duration = SteadyClock::duration;

struct BenchOptions {
  std::vector<std::string> phases = {"redis", "memory", "throughput", "latency"};
  // throughput
  int workers = 50;
  int backlog = 20000;
  int per_delivery = 100;  // deliverables per delivery in the backlog
  double drain_timeout_s = 180;
  // latency
  double latency_rate = 1000;  // jobs/s offered
  // One window per value, each on a fresh farm: 10 (the API's submit rate
  // is the limit) and 100 (the same job rate with a tenth of the submits).
  std::vector<int> latency_per_delivery = {10, 100};
  double latency_seconds = 10;
  int latency_workers = 100;
  int latency_senders = 32;
  int latency_warmup = 20;  // deliveries sent one at a time: the unloaded figure
  // A submission not sent by the end of the window plus this grace (every
  // sender still busy with earlier ones) is shed and counted, not sent.
  double latency_grace_s = 2;
  // memory
  int memory_jobs = 100000;
  int memory_per_delivery = 1000;
  bool memory_reload = true;
  // redis
  int redis_bench_n = 100000;
  // shared
  int submit_threads = 4;
  std::string bin_dir = REELFARM_BIN_DIR;
  std::string tmp_dir;
  std::string coordinator_log_level = "info";
  std::string perf_dir;  // when set: perf record of the coordinator per measured window
  std::string perf_call_graph = "dwarf,16384";
  bool keep = false;
};

double SecondsBetween(SteadyPoint a, SteadyPoint b) {
  return std::chrono::duration<double>(b - a).count();
}

double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest-rank percentile of `v` (p in 0..1); 0 for an empty vector.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(static_cast<size_t>(std::max(0, n)) + 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.resize(static_cast<size_t>(std::max(0, n)));
  return out;
}

void Progress(const std::string& line) { std::cout << "[ bench ] " << line << std::endl; }
void Figure(const std::string& line) { std::cout << "[ figures ] " << line << std::endl; }

// ------------------------------------------------------------ machine ----

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---------------------------------------------------------- /proc reads ----

// A "Vm..." line of /proc/PID/status in KiB; -1 when unreadable.
long ProcStatusKb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  }
  return -1;
}

// CPU seconds from a /proc/.../stat file: utime+stime, plus the reaped
// children's (cutime+cstime: ffprobe for the coordinator) when `children`.
double StatCpuSeconds(const std::string& stat_path, bool children) {
  std::ifstream in(stat_path);
  std::string s;
  std::getline(in, s);
  auto paren = s.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(s.substr(paren + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; rest >> x;) f.push_back(x);
  if (f.size() < 15) return 0;
  double ticks = std::atof(f[11].c_str()) + std::atof(f[12].c_str());
  if (children) ticks += std::atof(f[13].c_str()) + std::atof(f[14].c_str());
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// /proc/.../schedstat: seconds on a CPU and seconds runnable but waiting
// for one (run queue).
std::pair<double, double> SchedStat(const std::string& path) {
  std::ifstream in(path);
  double run_ns = 0, wait_ns = 0;
  in >> run_ns >> wait_ns;
  return {run_ns / 1e9, wait_ns / 1e9};
}

// The first line of /proc/stat: seconds all CPUs spent busy (not idle or
// iowait) and stolen by the hypervisor, since boot.
struct MachineTicks {
  double busy = 0;
  double steal = 0;
};

MachineTicks ReadMachineTicks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(user + nice + system + irq + softirq) / hz, steal / hz};
}

// CPU use of the processes a phase cares about, sampled twice.
struct CpuSample {
  MachineTicks machine;
  SteadyPoint at;
  double coordinator = 0;       // all threads
  double coordinator_main = 0;  // the main thread: Coordinator::Run's event loop
  double main_run = 0;          // the main thread's schedstat: on a CPU
  double main_wait = 0;         // runnable, waiting for a CPU
  double ffprobe = 0;           // the coordinator's reaped children
  double redis = 0;
  double bench = 0;  // this process: fake workers and HTTP clients
};

CpuSample SampleCpu(pid_t coordinator, pid_t redis) {
  CpuSample s;
  s.at = SteadyClock::now();
  s.machine = ReadMachineTicks();
  std::string c = "/proc/" + std::to_string(coordinator);
  s.coordinator = StatCpuSeconds(c + "/stat", false);
  s.ffprobe = StatCpuSeconds(c + "/stat", true) - s.coordinator;
  s.coordinator_main = StatCpuSeconds(c + "/task/" + std::to_string(coordinator) + "/stat", false);
  std::tie(s.main_run, s.main_wait) =
      SchedStat(c + "/task/" + std::to_string(coordinator) + "/schedstat");
  s.redis = StatCpuSeconds("/proc/" + std::to_string(redis) + "/stat", false);
  s.bench = StatCpuSeconds("/proc/self/stat", false);
  return s;
}

// "coordinator 97% (event loop 91%, ffprobe 0%), redis 31%, bench 22%" of one
// core each, between two samples.
std::string CpuText(const CpuSample& a, const CpuSample& b) {
  double wall = std::max(1e-9, SecondsBetween(a.at, b.at));
  auto pct = [&](double x, double y) { return 100.0 * (y - x) / wall; };
  double on_cpu = pct(a.main_run, b.main_run), waiting = pct(a.main_wait, b.main_wait);
  double ours = pct(a.coordinator + a.ffprobe + a.redis + a.bench,
                    b.coordinator + b.ffprobe + b.redis + b.bench);
  double busy = pct(a.machine.busy, b.machine.busy);
  return Fmt("CPU in %% of one core: coordinator %.0f%% (main/event-loop thread %.0f%%, ffprobe "
             "children %.0f%%), redis-server %.0f%%, this bench %.0f%%; the event-loop thread "
             "was on a CPU %.0f%% of the time, runnable but waiting for a CPU %.0f%%, blocked "
             "(poll, Redis replies, fsync) %.0f%%; the machine's %u CPUs were %.0f%% busy "
             "(of one core: %.0f%%, of which processes outside this benchmark ~%.0f%%; "
             "steal %.0f%%)",
             pct(a.coordinator, b.coordinator), pct(a.coordinator_main, b.coordinator_main),
             pct(a.ffprobe, b.ffprobe), pct(a.redis, b.redis), pct(a.bench, b.bench), on_cpu,
             waiting, std::max(0.0, 100 - on_cpu - waiting), std::thread::hardware_concurrency(),
             busy / std::max(1u, std::thread::hardware_concurrency()), busy,
             std::max(0.0, busy - ours), pct(a.machine.steal, b.machine.steal));
}

// ------------------------------------------------------------ processes ----

// Runs argv (no shell) to completion; its stdout into *out. Returns the wait
// status, or -1 when it could not be started.
int RunCapture(const std::vector<std::string>& argv, std::string* out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  close(fds[1]);
  out->clear();
  char buf[8192];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  return ws;
}

// SIGTERM, then SIGKILL after `grace_s`; reaps. No-op for pid <= 0.
void StopProcess(pid_t pid, double grace_s) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  auto deadline = SteadyClock::now() + std::chrono::duration<double>(grace_s);
  while (SteadyClock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// A redis-server (AOF on, fsync always) and a reelfarm-coordinator on free
// loopback ports, state and logs under `dir`. Not thread-safe; Start and
// Stop from the main thread (PR_SET_PDEATHSIG ties the children to it).
class Farm {
 public:
  Farm(const BenchOptions& options, std::string dir) : options_(options), dir_(std::move(dir)) {}
  ~Farm() { Stop(); }
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  Status Start() {
    auto ports = cli::PickFreePorts(4);
    if (!ports.ok()) return ports.status();
    ports_.redis = (*ports)[0];
    ports_.zmq = (*ports)[1];
    ports_.http = (*ports)[2];
    ports_.metrics = (*ports)[3];
    fs::create_directories(dir_ + "/redis");
    auto redis = SpawnLogged("redis", cli::RedisArgv("redis-server", ports_.redis, dir_ + "/redis"),
                             dir_ + "/redis.log");
    if (!redis.ok()) return redis.status();
    redis_pid_ = *redis;
    RedisEndpoint ep;
    ep.port = ports_.redis;
    redis_ = std::make_unique<RedisClient>(ep, 5000);
    if (!WaitUntil([&] { return redis_->Ping().ok(); }, 10, redis_pid_)) {
      return Status::Unavailable("redis-server did not answer: " +
                                 cli::TailOfFile(dir_ + "/redis.log"));
    }
    // The durability the benchmark claims, as the server reports it.
    auto aof = redis_->Command({"CONFIG", "GET", "append*"});
    std::string conf;
    if (aof.ok()) {
      for (size_t i = 0; i + 1 < aof->elements.size(); i += 2) {
        conf += (conf.empty() ? "" : " ") + aof->elements[i].str + "=" + aof->elements[i + 1].str;
      }
    }
    redis_config_ = conf;
    if (conf.find("appendonly=yes") == std::string::npos ||
        conf.find("appendfsync=always") == std::string::npos) {
      return Status::FailedPrecondition("redis-server is not appendonly/fsync always: " + conf);
    }
    return StartCoordinator();
  }

  Status StartCoordinator() {
    std::vector<std::string> argv =
        cli::CoordinatorArgv(cli::DaemonPath(options_.bin_dir, "reelfarm-coordinator"), ports_);
    argv.insert(argv.end(), {"--log-level", options_.coordinator_log_level});
    auto pid = SpawnLogged("coordinator", argv, dir_ + "/coordinator.log");
    if (!pid.ok()) return pid.status();
    coordinator_pid_ = *pid;
    auto url = cli::ParseCoordinatorUrl(http_url());
    cli::ApiClient client(*url);
    client.set_read_timeout_s(5);
    bool up = WaitUntil(
        [&] {
          auto r = client.Get("/healthz");
          return r.ok() && r->status == 200;
        },
        120, coordinator_pid_);
    if (!up) {
      return Status::Unavailable("the coordinator did not answer /healthz: " +
                                 cli::TailOfFile(dir_ + "/coordinator.log"));
    }
    return Status::OK();
  }

  // SIGTERM and restart: the seconds from the new process's start to its
  // first healthy answer (it reloads every delivery from Redis before it
  // serves the API) into *reload_s.
  Status RestartCoordinator(double* reload_s) {
    StopProcess(coordinator_pid_, 30);
    coordinator_pid_ = -1;
    auto t0 = SteadyClock::now();
    Status s = StartCoordinator();
    *reload_s = SecondsBetween(t0, SteadyClock::now());
    return s;
  }

  // Unavailable naming the first child that has ended.
  Status CheckAlive() {
    for (auto [name, pid] : {std::pair<const char*, pid_t*>{"coordinator", &coordinator_pid_},
                             {"redis-server", &redis_pid_}}) {
      int ws = 0;
      if (*pid > 0 && waitpid(*pid, &ws, WNOHANG) == *pid) {
        *pid = -1;
        return Status::Unavailable(std::string(name) + " ended: " + DescribeWaitStatus(ws) +
                                   "\n" + cli::TailOfFile(dir_ + "/" + name_to_log(name)));
      }
    }
    return Status::OK();
  }

  void Stop() {
    StopProcess(coordinator_pid_, 10);
    coordinator_pid_ = -1;
    redis_.reset();
    StopProcess(redis_pid_, 10);
    redis_pid_ = -1;
  }

  // One command on the benchmark's own connection to Redis.
  StatusOr<RedisReply> RedisCommand(const std::vector<std::string>& args) {
    return redis_->Command(args);
  }

  // An INFO field of Redis ("used_memory"); "" when absent.
  std::string RedisInfo(const std::string& section, const std::string& field) {
    auto r = redis_->Command({"INFO", section});
    if (!r.ok()) return "";
    std::istringstream in(r->str);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(field + ":", 0) == 0) {
        std::string v = line.substr(field.size() + 1);
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
        return v;
      }
    }
    return "";
  }

  // MULTI/EXEC transactions Redis has run (each one fsynced with
  // appendfsync always, alone or with whatever else that event-loop turn
  // wrote).
  long RedisExecCalls() {
    std::string v = RedisInfo("commandstats", "cmdstat_exec");
    auto calls = v.find("calls=");
    return calls == std::string::npos ? 0 : std::atol(v.c_str() + calls + 6);
  }

  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(ports_.http); }
  std::string zmq_endpoint() const { return "tcp://127.0.0.1:" + std::to_string(ports_.zmq); }
  int redis_port() const { return ports_.redis; }
  pid_t coordinator_pid() const { return coordinator_pid_; }
  pid_t redis_pid() const { return redis_pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& redis_config() const { return redis_config_; }

 private:
  static std::string name_to_log(const std::string& name) {
    return name == "coordinator" ? "coordinator.log" : "redis.log";
  }

  // Polls `done` every 20 ms for up to `timeout_s`; false early when `pid`
  // has ended (left unreaped, for CheckAlive to report).
  static bool WaitUntil(const std::function<bool()>& done, double timeout_s, pid_t pid) {
    auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
    while (SteadyClock::now() < deadline) {
      if (done()) return true;
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  const BenchOptions& options_;
  std::string dir_;
  cli::FarmPorts ports_;
  pid_t redis_pid_ = -1;
  pid_t coordinator_pid_ = -1;
  std::unique_ptr<RedisClient> redis_;
  std::string redis_config_;
};

// `perf record --call-graph MODE` of one process while this object lives;
// nothing when `dir` is "".
class PerfRecording {
 public:
  PerfRecording(const std::string& dir, const std::string& call_graph, const std::string& name,
                pid_t pid) {
    if (dir.empty()) return;
    fs::create_directories(dir);
    path_ = dir + "/" + name + ".perf.data";
    auto p = SpawnLogged("perf", {"perf", "record", "-F", "499", "--call-graph", call_graph, "-p",
                                  std::to_string(pid), "-o", path_},
                         dir + "/" + name + ".perf.log");
    if (p.ok()) pid_ = *p;
  }
  ~PerfRecording() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    waitpid(pid_, nullptr, 0);
    Progress("perf profile of the coordinator: perf report -i " + path_);
  }

 private:
  std::string path_;
  pid_t pid_ = -1;
};

// ------------------------------------------------------------- specs ----

// A delivery spec of `deliverables` deliverables (alternately thumbnail-jpg
// and web-h264 at 90 lines, distinct names) of `source` into `output_dir`.
std::string SpecText(const std::string& name, const std::string& source,
                     const std::string& output_dir, int deliverables) {
  std::string s = "version: 1\nname: " + name + "\nsource: " + source +
                  "\noutput_dir: " + output_dir + "\ndeliverables:\n";
  for (int i = 0; i < deliverables; ++i) {
    if (i % 2 == 0) {
      s += Fmt("  - {name: poster-%04d, preset: thumbnail-jpg}\n", i);
    } else {
      s += Fmt("  - {name: web-%04d, preset: web-h264, height: 90}\n", i);
    }
  }
  return s;
}

struct SubmitRecord {
  int status = 0;  // HTTP status; 0 when no answer came
  bool shed = false;  // open loop only: never sent, it was too late
  int jobs = 0;
  std::string id;  // the delivery id the API answered
  std::string error;
  SteadyPoint scheduled{};  // open loop only: when it was due
  SteadyPoint sent{};
  SteadyPoint answered{};
};

// Submits specs 0..count-1 (from `spec_of`) from `threads` threads, each
// with its own keep-alive ApiClient, one request at a time per thread
// (closed loop). Returns one record per spec, in order.
std::vector<SubmitRecord> SubmitClosedLoop(const std::string& url, const std::string& base_dir,
                                           int count, int threads,
                                           const std::function<std::string(int)>& spec_of) {
  std::vector<SubmitRecord> out(static_cast<size_t>(count));
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) {
    pool.emplace_back([&] {
      cli::ApiClient client(*cli::ParseCoordinatorUrl(url));
      client.set_read_timeout_s(300);
      for (int i; (i = next++) < count;) {
        nlohmann::json body = cli::SubmitRequestBody(spec_of(i), "bench.yaml", base_dir);
        SubmitRecord& r = out[static_cast<size_t>(i)];
        r.sent = SteadyClock::now();
        auto resp = client.Post("/api/v1/deliveries", body);
        r.answered = SteadyClock::now();
        if (!resp.ok()) {
          r.error = resp.status().message();
        } else {
          r.status = resp->status;
          if (resp->status == 201) {
            r.jobs = resp->json.value("jobs", 0);
            r.id = resp->json.value("id", "");
          } else {
            r.error = resp->body.substr(0, 500);
          }
        }
        ++done;
      }
    });
  }
  // Progress about every 10%.
  int reported = 0;
  while (done.load() < count) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int d = done.load();
    if (count >= 20 && d * 10 / count > reported) {
      reported = d * 10 / count;
      Progress(Fmt("  submitted %d/%d deliveries", d, count));
    }
  }
  for (auto& th : pool) th.join();
  return out;
}

// Summary of submit round trips: "200 deliveries (20000 jobs) accepted in
// 9.1 s = 2198 jobs/s; POST p50 40 ms p99 90 ms". Non-OK when one failed.
Status SummariseSubmits(const std::vector<SubmitRecord>& records, std::string* text,
                        long* jobs_out) {
  std::vector<double> rtt;
  long jobs = 0;
  SteadyPoint first = SteadyPoint::max(), last = SteadyPoint::min();
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    if (r.status != 201) {
      return Status::Unavailable(Fmt("submission %zu failed (HTTP %d): ", i, r.status) + r.error);
    }
    jobs += r.jobs;
    rtt.push_back(Ms(r.answered - r.sent));
    first = std::min(first, r.sent);
    last = std::max(last, r.answered);
  }
  double wall = records.empty() ? 0 : SecondsBetween(first, last);
  *jobs_out = jobs;
  *text = Fmt("%zu deliveries (%ld jobs) accepted in %.1f s = %.0f jobs/s, %.1f deliveries/s; "
              "POST round trip p50 %.0f ms p99 %.0f ms max %.0f ms; first 10%% p50 %.0f ms, "
              "last 10%% p50 %.0f ms",
              records.size(), jobs, wall, wall > 0 ? jobs / wall : 0,
              wall > 0 ? records.size() / wall : 0, Percentile(rtt, 0.5), Percentile(rtt, 0.99),
              Percentile(rtt, 1.0),
              Percentile(std::vector<double>(rtt.begin(), rtt.begin() + rtt.size() / 10), 0.5),
              Percentile(std::vector<double>(rtt.end() - rtt.size() / 10, rtt.end()), 0.5));
  return Status::OK();
}

// ---------------------------------------------------------- fake workers ----

struct FakeWorkerOptions {
  std::string endpoint;     // the coordinator's ROUTER
  int workers = 50;         // DEALER sockets, one worker each, slots=1
  std::string name_prefix;  // names are prefix-000, prefix-001, ...
  std::vector<std::string> encoders = {"libx264", "aac",       "mjpeg",    "prores_ks",
                                       "pcm_s24le", "libx265", "mov_text", "dnxhd"};
  bool record_assigns = false;  // keep (job id, arrival time) of every Assign
  Duration result_resend = std::chrono::seconds(3);  // like reelfarm-worker
};

// Counters the pool thread writes and anyone may read.
struct FakeWorkerStats {
  std::atomic<long> welcomed{0};
  std::atomic<long> assigned{0};
  std::atomic<long> duplicate_assigns{0};
  std::atomic<long> grants{0};
  std::atomic<long> results_sent{0};
  std::atomic<long> results_resent{0};
  std::atomic<long> acked{0};  // first ack of a result we sent: a completed job
  std::atomic<long> cancels{0};
  std::atomic<long> reconnects{0};
  std::atomic<long> heartbeats_in{0};
  std::atomic<int64_t> first_assign_ns{0};  // steady clock, 0 = none yet
  std::atomic<int64_t> last_ack_ns{0};
};

int64_t SteadyNs(SteadyPoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
SteadyPoint FromSteadyNs(int64_t ns) {
  return SteadyPoint(std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::nanoseconds(ns)));
}

// N fake workers on one thread. They complete every job at once: Assign ->
// publish_request; PublishGrant -> JobResult{ok, outputs as expected};
// resend until result_ack. Start() once; Stop() (or the destructor) sends
// each a goodbye and joins the thread.
class FakeWorkerPool {
 public:
  explicit FakeWorkerPool(FakeWorkerOptions options) : options_(std::move(options)) {}
  ~FakeWorkerPool() { Stop(); }
  FakeWorkerPool(const FakeWorkerPool&) = delete;
  FakeWorkerPool& operator=(const FakeWorkerPool&) = delete;

  void Start() { thread_ = std::thread([this] { Loop(); }); }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
  }

  const FakeWorkerStats& stats() const { return stats_; }
  // REQUIRES: stopped. Every Assign received, in arrival order.
  const std::vector<std::pair<std::string, SteadyPoint>>& assigns() const { return assigns_; }

 private:
  struct Attempt {
    pb::Job job;
    uint64_t token = 0;
    std::string key;  // Assign.attempt_key, echoed as reelfarm-worker does
  };
  struct Unacked {
    pb::WorkerMessage message;  // holds the result
    SteadyPoint sent;
  };
  struct Conn {
    std::string name;
    std::unique_ptr<zmq::socket_t> socket;
    Duration heartbeat = std::chrono::seconds(1);
    SteadyPoint next_heartbeat;
    std::map<std::string, Attempt> running;  // assigned, result not sent yet
    std::map<std::pair<std::string, uint64_t>, Unacked> unacked;
  };

  void Send(Conn& c, const pb::WorkerMessage& m) {
    std::string payload = m.SerializeAsString();
    try {
      (void)c.socket->send(zmq::buffer(payload), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
      // Like reelfarm-worker: a lost message is covered by resends/leases.
    }
  }

  void SendHello(Conn& c) {
    pb::WorkerMessage m;
    auto* h = m.mutable_hello();
    h->set_name(c.name);
    h->set_host("bench");
    h->set_slots(1);
    for (const auto& e : options_.encoders) h->add_encoders(e);
    h->set_version("bench");
    for (const auto& [id, a] : c.running) {
      auto* r = h->add_running();
      r->set_job_id(id);
      r->set_token(a.token);
      r->set_attempt_key(a.key);
    }
    Send(c, m);
  }

  void SendHeartbeat(Conn& c) {
    pb::WorkerMessage m;
    m.mutable_heartbeat();
    for (const auto& [id, a] : c.running) {
      auto* r = m.mutable_heartbeat()->add_running();
      r->set_job_id(id);
      r->set_token(a.token);
      r->set_attempt_key(a.key);
    }
    Send(c, m);
  }

  // The result a worker sends after publishing every output of `a`.
  static pb::WorkerMessage ResultFor(const Attempt& a) {
    pb::WorkerMessage m;
    auto* r = m.mutable_result();
    r->set_job_id(a.job.id());
    r->set_token(a.token);
    r->set_attempt_key(a.key);
    r->set_ok(true);
    r->set_encode_seconds(0.001);
    char sha[65];
    uint64_t h = std::hash<std::string>()(a.job.id());
    std::snprintf(sha, sizeof sha, "%016llx%016llx%016llx%016llx",
                  static_cast<unsigned long long>(h), static_cast<unsigned long long>(h ^ 1),
                  static_cast<unsigned long long>(h ^ 2), static_cast<unsigned long long>(h ^ 3));
    for (const auto& out : a.job.outputs()) {
      auto* o = r->add_outputs();
      o->set_deliverable(out.deliverable());
      o->set_path(out.path());
      o->set_bytes(123456);
      o->set_sha256(sha);
      *o->mutable_media() = out.expect();
    }
    return m;
  }

  // `m` is taken apart (an assignment's job is moved, not copied: the fake
  // workers share the machine with the coordinator they measure).
  void Handle(Conn& c, pb::CoordinatorMessage& m, SteadyPoint now) {
    if (m.has_welcome()) {
      if (m.welcome().heartbeat_interval_ms() > 0) {
        c.heartbeat = std::chrono::milliseconds(m.welcome().heartbeat_interval_ms());
      }
      for (const auto& ref : m.welcome().cancel()) {
        auto it = c.running.find(ref.job_id());
        if (it != c.running.end() && it->second.token == ref.token()) c.running.erase(it);
      }
      for (auto& [key, u] : c.unacked) {
        Send(c, u.message);
        u.sent = now;
      }
      ++stats_.welcomed;
    } else if (m.has_assign()) {
      const auto& a = m.assign();
      if (options_.record_assigns) assigns_.emplace_back(a.job().id(), now);
      int64_t zero = 0;
      stats_.first_assign_ns.compare_exchange_strong(zero, SteadyNs(now));
      auto it = c.running.find(a.job().id());
      if (it != c.running.end() && it->second.token == a.token()) {
        ++stats_.duplicate_assigns;
        return;
      }
      ++stats_.assigned;
      Attempt& at = c.running[a.job().id()];
      at.token = a.token();
      at.key = a.attempt_key();
      at.job.Swap(m.mutable_assign()->mutable_job());
      pb::WorkerMessage ask;
      ask.mutable_publish_request()->set_job_id(at.job.id());
      ask.mutable_publish_request()->set_token(at.token);
      ask.mutable_publish_request()->set_attempt_key(at.key);
      Send(c, ask);
    } else if (m.has_publish_grant()) {
      const auto& g = m.publish_grant();
      auto it = c.running.find(g.job_id());
      if (it == c.running.end() || it->second.token != g.token()) return;
      ++stats_.grants;
      Unacked& u = c.unacked[{g.job_id(), g.token()}];
      u.message = ResultFor(it->second);
      u.sent = now;
      c.running.erase(it);
      Send(c, u.message);
      ++stats_.results_sent;
    } else if (m.has_cancel()) {
      ++stats_.cancels;
      auto it = c.running.find(m.cancel().job_id());
      if (it != c.running.end() && it->second.token == m.cancel().token()) c.running.erase(it);
    } else if (m.has_result_ack()) {
      if (c.unacked.erase({m.result_ack().job_id(), m.result_ack().token()}) > 0) {
        ++stats_.acked;
        stats_.last_ack_ns = SteadyNs(now);
      }
    } else if (m.has_reconnect()) {
      ++stats_.reconnects;
      SendHello(c);
    } else if (m.has_heartbeat()) {
      ++stats_.heartbeats_in;
    }
  }

  void Loop() {
    zmq::context_t ctx(1);
    std::vector<Conn> conns(static_cast<size_t>(options_.workers));
    std::vector<zmq::pollitem_t> items;
    SteadyPoint start = SteadyClock::now();
    for (int i = 0; i < options_.workers; ++i) {
      Conn& c = conns[static_cast<size_t>(i)];
      c.name = Fmt("%s-%03d", options_.name_prefix.c_str(), i);
      c.socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
      c.socket->set(zmq::sockopt::linger, 0);
      c.socket->connect(options_.endpoint);
      // Spread the heartbeats over the interval instead of one burst.
      c.next_heartbeat = start + c.heartbeat * i / std::max(1, options_.workers);
      SendHello(c);
      items.push_back({c.socket->handle(), 0, ZMQ_POLLIN, 0});
    }
    while (!stop_.load()) {
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(10));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      for (size_t i = 0; i < conns.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        zmq::message_t frame;
        while (conns[i].socket->recv(frame, zmq::recv_flags::dontwait)) {
          SteadyPoint now = SteadyClock::now();
          pb::CoordinatorMessage m;
          if (m.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) {
            Handle(conns[i], m, now);
          }
        }
      }
      SteadyPoint now = SteadyClock::now();
      for (auto& c : conns) {
        if (now >= c.next_heartbeat) {
          SendHeartbeat(c);
          c.next_heartbeat = now + c.heartbeat;
        }
        for (auto& [key, u] : c.unacked) {
          if (now - u.sent >= options_.result_resend) {
            Send(c, u.message);
            u.sent = now;
            ++stats_.results_resent;
          }
        }
      }
    }
    pb::WorkerMessage bye;
    bye.set_goodbye(true);
    for (auto& c : conns) {
      Send(c, bye);
      c.socket->set(zmq::sockopt::linger, 200);
      c.socket->close();
    }
  }

  FakeWorkerOptions options_;
  FakeWorkerStats stats_;
  std::vector<std::pair<std::string, SteadyPoint>> assigns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Waits until the pool's `welcomed` reaches n; false after `timeout_s`.
bool WaitWelcomed(const FakeWorkerPool& pool, long n, double timeout_s) {
  auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  while (pool.stats().welcomed.load() < n) {
    if (SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string PoolText(const FakeWorkerStats& s) {
  return Fmt("fake workers: %ld assigns, %ld duplicate assigns, %ld grants, %ld results "
             "(%ld resent), %ld acked, %ld cancels, %ld reconnects",
             s.assigned.load(), s.duplicate_assigns.load(), s.grants.load(),
             s.results_sent.load(), s.results_resent.load(), s.acked.load(), s.cancels.load(),
             s.reconnects.load());
}

// Deliveries in state `state` according to GET /api/v1/deliveries; -1 when
// the API did not answer.
long CountDeliveries(const std::string& url, const std::string& state, double* seconds) {
  cli::ApiClient client(*cli::ParseCoordinatorUrl(url));
  client.set_read_timeout_s(120);
  auto t0 = SteadyClock::now();
  auto r = client.Get("/api/v1/deliveries");
  if (seconds != nullptr) *seconds = SecondsBetween(t0, SteadyClock::now());
  if (!r.ok() || r->status != 200 || !r->json.is_object()) return -1;
  long n = 0;
  for (const auto& d : r->json["deliveries"]) n += d.value("state", "") == state ? 1 : 0;
  return n;
}

// ---------------------------------------------------------------- phases ----

struct Context {
  BenchOptions options;
  std::string root;    // the benchmark's temporary folder
  std::string source;  // the one source every spec uses
};

// A fresh folder under root for one phase's farm.
std::string PhaseDir(const Context& ctx, const std::string& phase) {
  std::string d = ctx.root + "/" + phase;
  fs::create_directories(d);
  return d;
}

Status RunRedisPhase(const Context& ctx) {
  Farm farm(ctx.options, PhaseDir(ctx, "redis"));
  Status s = farm.Start();
  if (!s.ok()) return s;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long rss = ProcStatusKb(farm.coordinator_pid(), "VmRSS");
  Figure(Fmt("memory idle: coordinator VmRSS %.1f MiB with no delivery and no worker", rss / 1024.0));

  std::map<std::string, std::string> rates;  // "SET c1" -> "4393.67"
  for (int clients : {1, 50}) {
    std::string out;
    std::vector<std::string> argv = {"redis-benchmark", "-h", "127.0.0.1", "-p",
                                     std::to_string(farm.redis_port()), "-q", "-t", "set,get",
                                     "-n", std::to_string(ctx.options.redis_bench_n), "-c",
                                     std::to_string(clients)};
    Progress("running redis-benchmark -q -t set,get -n " +
             std::to_string(ctx.options.redis_bench_n) + " -c " + std::to_string(clients));
    int ws = RunCapture(argv, &out);
    if (ws != 0) return Status::Unavailable("redis-benchmark: " + DescribeWaitStatus(ws));
    // -q prints progress with \r and one final "SET: N requests per second" line per test.
    std::replace(out.begin(), out.end(), '\r', '\n');
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      for (const char* test : {"SET", "GET"}) {
        std::string head = std::string(test) + ": ";
        if (line.rfind(head, 0) == 0 && line.find("requests per second") != std::string::npos) {
          rates[Fmt("%s c%d", test, clients)] = line.substr(head.size(), line.find(' ', head.size()) - head.size());
        }
      }
    }
  }
  Figure(Fmt("redis baseline (redis-benchmark -t set,get -n %d, same redis-server, %s): "
             "1 client unpipelined SET %s/s GET %s/s; 50 clients SET %s/s GET %s/s",
             ctx.options.redis_bench_n, farm.redis_config().c_str(), rates["SET c1"].c_str(),
             rates["GET c1"].c_str(), rates["SET c50"].c_str(), rates["GET c50"].c_str()));
  return farm.CheckAlive();
}

Status RunMemoryPhase(const Context& ctx) {
  const BenchOptions& o = ctx.options;
  Farm farm(o, PhaseDir(ctx, "memory"));
  Status s = farm.Start();
  if (!s.ok()) return s;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  long idle = ProcStatusKb(farm.coordinator_pid(), "VmRSS");
  const int per = o.memory_per_delivery;
  int deliveries = (o.memory_jobs + per - 1) / per;
  Progress(Fmt("memory: submitting %d jobs as %d deliveries of %d, %d threads; coordinator "
               "VmRSS idle %.1f MiB",
               o.memory_jobs, deliveries, per, o.submit_threads, idle / 1024.0));
  std::string out_root = farm.dir() + "/out";
  auto cpu0 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  auto records = SubmitClosedLoop(farm.http_url(), farm.dir(), deliveries, o.submit_threads, [&](int i) {
    int n = std::min(per, o.memory_jobs - i * per);
    return SpecText(Fmt("mem-%06d", i), ctx.source, Fmt("%s/%06d", out_root.c_str(), i), n);
  });
  auto cpu1 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  std::string text;
  long jobs = 0;
  s = SummariseSubmits(records, &text, &jobs);
  if (!s.ok()) return s;
  Figure("submit (memory phase, " + std::to_string(o.submit_threads) + " closed-loop clients): " +
         text + "; " + CpuText(cpu0, cpu1));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long rss = ProcStatusKb(farm.coordinator_pid(), "VmRSS");
  long hwm = ProcStatusKb(farm.coordinator_pid(), "VmHWM");
  Figure(Fmt("memory: coordinator VmRSS %.1f MiB with %ld queued jobs in %d deliveries and no "
             "worker (idle %.1f MiB; %.1f KiB per job; VmHWM %.1f MiB); redis used_memory %s, "
             "AOF %s bytes",
             rss / 1024.0, jobs, deliveries, idle / 1024.0,
             jobs > 0 ? static_cast<double>(rss - idle) / jobs : 0.0, hwm / 1024.0,
             farm.RedisInfo("memory", "used_memory_human").c_str(),
             farm.RedisInfo("persistence", "aof_current_size").c_str()));
  // What one job costs in Redis, and that each delivery's plan repeats its jobs.
  if (!records.empty() && !records[0].id.empty()) {
    auto strlen = [&](const std::string& key, const std::string& field) -> long long {
      auto r = farm.RedisCommand({"HSTRLEN", key, field});
      return r.ok() ? r->integer : -1;
    };
    const std::string& id = records[0].id;
    long long plan = strlen("rf:d:" + id, "plan");
    // The same job as the coordinator holds it: a parsed pb::Job.
    pb::Job job;
    auto raw = farm.RedisCommand({"HGET", "rf:j:" + id + ".j0", "job"});
    if (raw.ok()) job.ParseFromString(raw->str);
    Figure(Fmt("records: job %s.j0 is %zu bytes of protobuf in rf:j:<job>.job (%d argv "
               "elements, %d outputs), %zu bytes as a parsed pb::Job in memory "
               "(SpaceUsedLong); delivery %s's plan is %lld bytes in rf:d:<id>.plan for its %d "
               "jobs",
               id.c_str(), raw.ok() ? raw->str.size() : 0, job.argv_size(), job.outputs_size(),
               job.SpaceUsedLong(), id.c_str(), plan, records[0].jobs));
  }
  double list_s = 0;
  long queued = CountDeliveries(farm.http_url(), "queued", &list_s);
  Figure(Fmt("api: GET /api/v1/deliveries with %d deliveries (%ld jobs) answered in %.0f ms "
             "(%ld queued)",
             deliveries, jobs, list_s * 1000, queued));
  if (o.memory_reload) {
    double reload_s = 0;
    s = farm.RestartCoordinator(&reload_s);
    if (!s.ok()) return s;
    long rss2 = ProcStatusKb(farm.coordinator_pid(), "VmRSS");
    Figure(Fmt("reload: coordinator restart with %ld jobs in Redis healthy after %.1f s; "
               "VmRSS after reload %.1f MiB",
               jobs, reload_s, rss2 / 1024.0));
  }
  return farm.CheckAlive();
}

Status RunThroughputPhase(const Context& ctx) {
  const BenchOptions& o = ctx.options;
  Farm farm(o, PhaseDir(ctx, "throughput"));
  Status s = farm.Start();
  if (!s.ok()) return s;
  int deliveries = (o.backlog + o.per_delivery - 1) / o.per_delivery;
  Progress(Fmt("throughput: queueing %d jobs as %d deliveries of %d (no worker yet)", o.backlog,
               deliveries, o.per_delivery));
  std::string out_root = farm.dir() + "/out";
  auto records = SubmitClosedLoop(farm.http_url(), farm.dir(), deliveries, o.submit_threads, [&](int i) {
    int n = std::min(o.per_delivery, o.backlog - i * o.per_delivery);
    return SpecText(Fmt("tput-%06d", i), ctx.source, Fmt("%s/%06d", out_root.c_str(), i), n);
  });
  std::string text;
  long jobs = 0;
  s = SummariseSubmits(records, &text, &jobs);
  if (!s.ok()) return s;
  Progress("backlog queued: " + text);

  long exec0 = farm.RedisExecCalls();
  auto cpu0 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  FakeWorkerOptions wo;
  wo.endpoint = farm.zmq_endpoint();
  wo.workers = o.workers;
  wo.name_prefix = "tput";
  FakeWorkerPool pool(wo);
  auto t_start = SteadyClock::now();
  std::vector<std::string> intervals;
  {
    PerfRecording perf(o.perf_dir, o.perf_call_graph, "throughput", farm.coordinator_pid());
    pool.Start();
    auto deadline = t_start + std::chrono::duration<double>(o.drain_timeout_s);
    long last_acked = 0;
    auto last_t = t_start;
    while (pool.stats().acked.load() < jobs) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = SteadyClock::now();
      if (now - last_t >= std::chrono::seconds(2)) {
        long a = pool.stats().acked.load();
        intervals.push_back(Fmt("%.0f", (a - last_acked) / SecondsBetween(last_t, now)));
        Progress(Fmt("  %ld/%ld jobs completed, %s jobs/s in the last %.1f s", a, jobs,
                     intervals.back().c_str(), SecondsBetween(last_t, now)));
        last_acked = a;
        last_t = now;
      }
      s = farm.CheckAlive();
      if (!s.ok()) return s;
      if (now > deadline) {
        return Status::DeadlineExceeded(Fmt("only %ld of %ld jobs completed in %.0f s; ",
                                            pool.stats().acked.load(), jobs, o.drain_timeout_s) +
                                        PoolText(pool.stats()));
      }
    }
  }
  auto cpu1 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  long exec1 = farm.RedisExecCalls();
  const auto& st = pool.stats();
  SteadyPoint first = FromSteadyNs(st.first_assign_ns.load());
  SteadyPoint last = FromSteadyNs(st.last_ack_ns.load());
  double drain_s = SecondsBetween(first, last);
  std::string per_interval;
  for (const auto& x : intervals) per_interval += (per_interval.empty() ? "" : " ") + x;
  Figure(Fmt("throughput: %ld jobs completed by %d fake workers (slots=1, instant jobs) in "
             "%.2f s from the first Assign to the last result_ack = %.0f jobs/s "
             "(%.2f s from connecting = %.0f jobs/s); backlog %ld queued first, Redis "
             "appendfsync always",
             st.acked.load(), o.workers, drain_s, st.acked.load() / std::max(1e-9, drain_s),
             SecondsBetween(t_start, last),
             st.acked.load() / std::max(1e-9, SecondsBetween(t_start, last)), jobs));
  Figure(Fmt("throughput detail: jobs/s per 2 s interval: %s; %s; Redis EXEC transactions "
             "%ld (%.1f jobs each); ",
             per_interval.c_str(), CpuText(cpu0, cpu1).c_str(), exec1 - exec0,
             static_cast<double>(st.acked.load()) / std::max(1L, exec1 - exec0)) +
         PoolText(st));
  pool.Stop();
  double list_s = 0;
  long delivered = CountDeliveries(farm.http_url(), "delivered", &list_s);
  // A delivery is delivered once its manifest is written (by a thread of
  // its own, after the last job): up to 30 s more for the last manifests.
  SteadyPoint manifests_due = SteadyClock::now() + std::chrono::seconds(30);
  while (delivered != deliveries && SteadyClock::now() < manifests_due) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    delivered = CountDeliveries(farm.http_url(), "delivered", &list_s);
  }
  Progress(Fmt("check: %ld of %d deliveries delivered per GET /api/v1/deliveries (%.0f ms), "
               "%.1f s after the last result_ack",
               delivered, deliveries, list_s * 1000, SecondsBetween(last, SteadyClock::now())));
  if (delivered != deliveries) {
    return Status::Internal(Fmt("%ld of %d deliveries delivered after the drain", delivered,
                                deliveries));
  }
  return farm.CheckAlive();
}

// Submit-to-Assign latencies (ms) of the first Assign of every job of the
// deliveries named `prefix` + index (records[index]), from the POST's send
// time and from its scheduled time.
struct AssignLatencies {
  std::vector<double> from_sent;
  std::vector<double> from_due;
};

AssignLatencies LatenciesOf(const std::vector<std::pair<std::string, SteadyPoint>>& assigns,
                            const std::string& prefix, const std::vector<SubmitRecord>& records) {
  AssignLatencies out;
  std::map<size_t, int> seen;  // assigns per delivery
  for (const auto& [job_id, at] : assigns) {
    // "<prefix>000123-<seq>.j<k>": the delivery id is before the last '.',
    // its name before the id's last '-'.
    if (job_id.rfind(prefix, 0) != 0) continue;
    std::string delivery_id = job_id.substr(0, job_id.rfind('.'));
    size_t i = std::strtoul(delivery_id.c_str() + prefix.size(), nullptr, 10);
    if (i >= records.size() || records[i].status != 201) continue;
    const SubmitRecord& r = records[i];
    if (++seen[i] > r.jobs) continue;  // a re-dispatch: the first Assign only
    out.from_sent.push_back(Ms(at - r.sent));
    if (r.scheduled != SteadyPoint{}) out.from_due.push_back(Ms(at - r.scheduled));
  }
  return out;
}

// One open-loop window of deliveries of `per_delivery` deliverables.
Status RunLatencyWindow(const Context& ctx, int per_delivery) {
  const BenchOptions& o = ctx.options;
  Farm farm(o, PhaseDir(ctx, "latency-" + std::to_string(per_delivery)));
  Status s = farm.Start();
  if (!s.ok()) return s;
  FakeWorkerOptions wo;
  wo.endpoint = farm.zmq_endpoint();
  wo.workers = o.latency_workers;
  wo.name_prefix = "lat";
  wo.record_assigns = true;
  FakeWorkerPool pool(wo);
  pool.Start();
  if (!WaitWelcomed(pool, o.latency_workers, 30)) {
    return Status::Unavailable(Fmt("only %ld of %d fake workers welcomed",
                                   pool.stats().welcomed.load(), o.latency_workers));
  }
  std::string out_root = farm.dir() + "/out";
  const std::string url = farm.http_url();

  // What one submit must wait for at least: the coordinator probes the
  // source with this argv (common/probe.cc) on every submit.
  {
    std::vector<double> probe_ms;
    for (int i = 0; i < 10; ++i) {
      std::string out;
      auto p0 = SteadyClock::now();
      RunCapture({"ffprobe", "-v", "error", "-protocol_whitelist", "file", "-show_format",
                  "-show_streams", "-of", "json", "file:" + ctx.source},
                 &out);
      probe_ms.push_back(Ms(SteadyClock::now() - p0));
    }
    Figure(Fmt("ffprobe of the source alone (the coordinator runs it on every submit): p50 "
               "%.1f ms, min %.1f ms over 10 runs one at a time",
               Percentile(probe_ms, 0.5), Percentile(probe_ms, 0)));
  }

  // Warm-up (not measured): a few deliveries one at a time, until done.
  auto warm = SubmitClosedLoop(url, farm.dir(), o.latency_warmup, 1, [&](int i) {
    return SpecText(Fmt("warm-%06d", i), ctx.source, Fmt("%s/warm-%06d", out_root.c_str(), i),
                    per_delivery);
  });
  std::string text;
  long warm_jobs = 0;
  s = SummariseSubmits(warm, &text, &warm_jobs);
  if (!s.ok()) return s;
  auto until = SteadyClock::now() + std::chrono::seconds(30);
  while (pool.stats().acked.load() < warm_jobs && SteadyClock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Progress("latency warm-up: " + text);

  // Open loop: delivery i is due at t0 + i x interval, whatever happened to
  // the ones before; senders are plain httplib clients without keep-alive
  // (each submission is its own connection, like independent `reelfarm
  // submit` runs, and no idle connection pins an API thread).
  const double deliveries_per_s = o.latency_rate / per_delivery;
  const int count = static_cast<int>(std::lround(deliveries_per_s * o.latency_seconds));
  const auto interval = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(1.0 / deliveries_per_s));
  std::vector<std::string> bodies;
  for (int i = 0; i < count; ++i) {
    bodies.push_back(
        cli::SubmitRequestBody(SpecText(Fmt("lat-%06d", i), ctx.source,
                                        Fmt("%s/lat-%06d", out_root.c_str(), i),
                                        per_delivery),
                               "bench.yaml", farm.dir())
            .dump());
  }
  Progress(Fmt("latency: %d deliveries of %d deliverables, one every %.1f ms (%.0f jobs/s "
               "offered) for %.1f s, %d senders, %d idle fake workers",
               count, per_delivery, Ms(interval), o.latency_rate, o.latency_seconds,
               o.latency_senders, o.latency_workers));
  std::vector<SubmitRecord> records(static_cast<size_t>(count));
  std::atomic<int> next{0};
  const long acked_before = pool.stats().acked.load();
  const long exec0 = farm.RedisExecCalls();
  auto cpu0 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  const SteadyPoint t0 = SteadyClock::now() + std::chrono::milliseconds(100);
  const SteadyPoint last_send_at =
      t0 + std::chrono::duration_cast<SteadyClock::duration>(
               std::chrono::duration<double>(o.latency_seconds + o.latency_grace_s));
  {
    PerfRecording perf(o.perf_dir, o.perf_call_graph, "latency-" + std::to_string(per_delivery),
                       farm.coordinator_pid());
    std::vector<std::thread> senders;
    for (int t = 0; t < o.latency_senders; ++t) {
      senders.emplace_back([&] {
        httplib::Client client("127.0.0.1", std::stoi(url.substr(url.rfind(':') + 1)));
        client.set_keep_alive(false);
        client.set_connection_timeout(10, 0);
        client.set_read_timeout(300, 0);
        for (int i; (i = next++) < count;) {
          SubmitRecord& r = records[static_cast<size_t>(i)];
          r.scheduled = t0 + interval * i;
          std::this_thread::sleep_until(r.scheduled);
          r.sent = SteadyClock::now();
          if (r.sent > last_send_at) {
            r.shed = true;
            continue;
          }
          auto res = client.Post("/api/v1/deliveries", bodies[static_cast<size_t>(i)],
                                 "application/json");
          r.answered = SteadyClock::now();
          if (!res) {
            r.error = httplib::to_string(res.error());
            continue;
          }
          r.status = res->status;
          auto j = nlohmann::json::parse(res->body, nullptr, false);
          if (r.status == 201 && j.is_object()) r.jobs = j.value("jobs", 0);
          if (r.status != 201) r.error = res->body.substr(0, 500);
        }
      });
    }
    for (auto& th : senders) th.join();
    long expected = acked_before;
    for (const auto& r : records) expected += r.jobs;
    auto deadline = SteadyClock::now() + std::chrono::duration<double>(o.drain_timeout_s);
    while (pool.stats().acked.load() < expected && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  auto cpu1 = SampleCpu(farm.coordinator_pid(), farm.redis_pid());
  const long exec1 = farm.RedisExecCalls();
  pool.Stop();
  s = farm.CheckAlive();
  if (!s.ok()) return s;

  // Unloaded: the warm-up's deliveries, one in flight at a time.
  AssignLatencies unloaded = LatenciesOf(pool.assigns(), "warm-", warm);
  Figure(Fmt("latency unloaded submit->Assign (%d deliveries x %d deliverables sent one at a "
             "time, %d idle fake workers): p50 %.1f ms, p99 %.1f ms, max %.1f ms over %zu of "
             "%ld jobs; POST round trip %s",
             o.latency_warmup, per_delivery, o.latency_workers,
             Percentile(unloaded.from_sent, 0.5), Percentile(unloaded.from_sent, 0.99),
             Percentile(unloaded.from_sent, 1.0), unloaded.from_sent.size(), warm_jobs,
             text.substr(text.find("p50")).c_str()));

  // Loaded: per job, the Assign's arrival minus its delivery's POST send
  // (and scheduled) time.
  std::vector<double> rtt, send_lag;
  int failed = 0, shed = 0;
  long jobs = 0;
  SteadyPoint first_sent = SteadyPoint::max(), last_sent = SteadyPoint::min();
  std::string first_error;
  for (const auto& r : records) {
    if (r.shed) {
      ++shed;
      continue;
    }
    if (r.status != 201) {
      if (failed++ == 0) first_error = r.error;
      continue;
    }
    jobs += r.jobs;
    rtt.push_back(Ms(r.answered - r.sent));
    send_lag.push_back(Ms(r.sent - r.scheduled));
    first_sent = std::min(first_sent, r.sent);
    last_sent = std::max(last_sent, r.sent);
  }
  AssignLatencies loaded = LatenciesOf(pool.assigns(), "lat-", records);
  double send_span = std::max(o.latency_seconds, SecondsBetween(t0, last_sent));
  Figure(Fmt("latency submit->Assign at %.0f jobs/s offered (%d deliveries x %d deliverables, "
             "one every %.1f ms for %.1f s, %d idle fake workers, %d senders): p50 %.1f ms, p99 "
             "%.1f ms, max %.1f ms over %zu of %ld jobs (from the POST being sent to the Assign "
             "arriving); accepted %.0f jobs/s; %d of %d submissions shed (not sent within %.1f s "
             "of the window's end: every sender still waiting on the API), %d failed",
             o.latency_rate, count, per_delivery, Ms(interval), o.latency_seconds,
             o.latency_workers, o.latency_senders, Percentile(loaded.from_sent, 0.5),
             Percentile(loaded.from_sent, 0.99), Percentile(loaded.from_sent, 1.0),
             loaded.from_sent.size(), jobs, jobs / send_span, shed, count, o.latency_grace_s,
             failed));
  Figure(Fmt("latency detail: send lag behind schedule p50 %.1f ms p99 %.1f ms; Assign from "
             "the scheduled time p50 %.1f ms p99 %.1f ms; POST round trip p50 %.1f ms p99 "
             "%.1f ms; Redis EXEC %ld; %s; ",
             Percentile(send_lag, 0.5), Percentile(send_lag, 0.99),
             Percentile(loaded.from_due, 0.5), Percentile(loaded.from_due, 0.99),
             Percentile(rtt, 0.5), Percentile(rtt, 0.99), exec1 - exec0,
             CpuText(cpu0, cpu1).c_str()) +
         PoolText(pool.stats()));
  if (failed > 0) return Status::Unavailable(Fmt("%d latency submissions failed; the first: ", failed) + first_error);
  if (static_cast<long>(loaded.from_sent.size()) < jobs ||
      static_cast<long>(unloaded.from_sent.size()) < warm_jobs) {
    return Status::DeadlineExceeded(Fmt("only %zu of %ld jobs were assigned",
                                        loaded.from_sent.size(), jobs));
  }
  return Status::OK();
}

Status RunLatencyPhase(const Context& ctx) {
  for (int per_delivery : ctx.options.latency_per_delivery) {
    Status s = RunLatencyWindow(ctx, per_delivery);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// A 2 s 320x180 H.264 + AAC mov made with lavfi, as the test fixtures do.
Status MakeSource(const std::string& path) {
  std::string out;
  int ws = RunCapture({"ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f",
                       "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-f", "lavfi",
                       "-i", "sine=frequency=440:sample_rate=48000:duration=2", "-c:v", "libx264",
                       "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                       path},
                      &out);
  if (ws != 0) return Status::Unavailable("ffmpeg could not make the source: " + DescribeWaitStatus(ws));
  return Status::OK();
}

std::string MakeRoot(const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = (t != nullptr && *t != '\0') ? t : "/tmp";
  }
  std::string templ = base + "/reelfarm-bench-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return buf.data();
}

int Main(int argc, char** argv) {
  BenchOptions o;
  CLI::App app{"reelfarm scheduler benchmark: a real coordinator and Redis (AOF, fsync always) "
               "driven by fake workers over ZeroMQ; prints `[ figures ]` lines"};
  app.add_option("--phases", o.phases, "phases to run: redis memory throughput latency")
      ->delimiter(',')
      ->check(CLI::IsMember({"redis", "memory", "throughput", "latency"}))
      ->capture_default_str();
  app.add_option("--workers", o.workers, "fake workers for the throughput phase")
      ->capture_default_str()->check(CLI::Range(1, 2000));
  app.add_option("--backlog", o.backlog, "jobs queued before the throughput drain")
      ->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--per-delivery", o.per_delivery,
                 "deliverables per delivery in the throughput backlog")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--drain-timeout", o.drain_timeout_s, "seconds a drain may take")
      ->capture_default_str();
  app.add_option("--latency-rate", o.latency_rate, "jobs/s offered in the latency phase")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--latency-per-delivery", o.latency_per_delivery,
                 "deliverables per delivery in the latency phase; one window (fresh farm) each")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--latency-seconds", o.latency_seconds, "length of the open-loop window")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--latency-workers", o.latency_workers, "idle fake workers in the latency phase")
      ->capture_default_str()->check(CLI::Range(1, 2000));
  app.add_option("--latency-senders", o.latency_senders,
                 "HTTP sender threads (the most submissions in flight)")
      ->capture_default_str()->check(CLI::Range(1, 512));
  app.add_option("--latency-warmup", o.latency_warmup,
                 "deliveries sent one at a time before the window (the unloaded figure)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  app.add_option("--latency-grace", o.latency_grace_s,
                 "seconds after the window a late submission may still be sent; later: shed")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--memory-jobs", o.memory_jobs, "jobs queued for the memory figure")
      ->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--memory-per-delivery", o.memory_per_delivery,
                 "deliverables per delivery in the memory phase")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--memory-reload", o.memory_reload,
                 "restart the coordinator after the memory figure and time its reload")
      ->capture_default_str();
  app.add_option("--redis-bench-n", o.redis_bench_n, "redis-benchmark -n")
      ->capture_default_str()->check(CLI::Range(1, 100000000));
  app.add_option("--submit-threads", o.submit_threads, "closed-loop submitting clients")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--bin-dir", o.bin_dir, "folder holding reelfarm-coordinator")
      ->capture_default_str();
  app.add_option("--tmp-dir", o.tmp_dir, "parent of the benchmark's folder (default $TMPDIR or /tmp)");
  app.add_option("--coordinator-log-level", o.coordinator_log_level,
                 "the coordinator's --log-level")
      ->capture_default_str();
  app.add_option("--perf-dir", o.perf_dir,
                 "record `perf record` of the coordinator during each drain/window here");
  app.add_option("--perf-call-graph", o.perf_call_graph, "perf record --call-graph mode")
      ->capture_default_str();
  app.add_flag("--keep", o.keep, "keep the benchmark's folder (logs, Redis AOF, perf data)");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);

  Context ctx;
  ctx.options = o;
  ctx.root = MakeRoot(o.tmp_dir);
  if (ctx.root.empty()) {
    std::cerr << "cannot make a temporary folder\n";
    return 1;
  }
  const std::string coordinator = cli::DaemonPath(o.bin_dir, "reelfarm-coordinator");
  std::string revision;
  RunCapture({"git", "-C", REELFARM_SOURCE_DIR, "describe", "--always", "--dirty"}, &revision);
  while (!revision.empty() && revision.back() == '\n') revision.pop_back();
  std::string built_at = "unknown";
  struct stat st;
  if (stat(coordinator.c_str(), &st) == 0) {
    std::tm tm{};
    gmtime_r(&st.st_mtime, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    built_at = buf;
  }
  Figure(Fmt("machine: nproc %u, CPU %s, %.1f GiB RAM, date %s; coordinator %s built %s from "
             "source tree %s",
             std::thread::hardware_concurrency(), CpuModel().c_str(),
             sysconf(_SC_PHYS_PAGES) * static_cast<double>(sysconf(_SC_PAGE_SIZE)) / (1 << 30),
             UtcNow().c_str(), coordinator.c_str(), built_at.c_str(),
             revision.empty() ? "unknown" : revision.c_str()));
  Progress("folder " + ctx.root);
  ctx.source = ctx.root + "/source.mov";
  Status s = MakeSource(ctx.source);
  int rc = 0;
  if (!s.ok()) {
    std::cerr << s.ToString() << "\n";
    rc = 1;
  }
  const std::vector<std::pair<std::string, std::function<Status(const Context&)>>> phases = {
      {"redis", RunRedisPhase},
      {"memory", RunMemoryPhase},
      {"throughput", RunThroughputPhase},
      {"latency", RunLatencyPhase}};
  auto t0 = SteadyClock::now();
  for (const auto& [name, run] : phases) {
    if (rc != 0) break;
    if (std::find(o.phases.begin(), o.phases.end(), name) == o.phases.end()) continue;
    Progress("phase " + name);
    // Other work on the machine lowers every figure: say so up front.
    MachineTicks m0 = ReadMachineTicks();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    MachineTicks m1 = ReadMachineTicks();
    double busy_cores = m1.busy - m0.busy;
    if (busy_cores > 0.25) {
      Progress(Fmt("WARNING: before this phase the machine was already %.0f%% of one core busy "
                   "with other processes; the figures below compete with them",
                   100 * busy_cores));
    }
    auto p0 = SteadyClock::now();
    s = run(ctx);
    if (!s.ok()) {
      std::cout << "[ failed ] phase " << name << ": " << s.ToString() << std::endl;
      std::cout << "[ failed ] logs under " << ctx.root << "/" << name << std::endl;
      rc = 1;
      ctx.options.keep = true;
      break;
    }
    Progress(Fmt("phase %s took %.1f s", name.c_str(), SecondsBetween(p0, SteadyClock::now())));
  }
  Progress(Fmt("total %.1f s", SecondsBetween(t0, SteadyClock::now())));
  if (!ctx.options.keep) {
    std::error_code ec;
    fs::remove_all(ctx.root, ec);
  } else {
    Progress("kept " + ctx.root);
  }
  return rc;
}

}  // namespace
}  // namespace reelfarm::bench

int main(int argc, char** argv) { return reelfarm::bench::Main(argc, argv); }
