// The farm `reelfarm run` starts for itself: a private redis-server, one
// reelfarm-coordinator and N reelfarm-worker processes on loopback ports,
// with their state and logs in a private temporary folder. It is the same
// Redis / ZeroMQ / HTTP path as a real farm, only started and stopped here.
#ifndef REELFARM_CLI_EMBEDDED_FARM_H_
#define REELFARM_CLI_EMBEDDED_FARM_H_

#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::cli {

struct EmbeddedFarmOptions {
  int workers = 2;
  // Cores the workers share, divided evenly (each gets --cores C/workers);
  // 0 = UsableCores(). Slots per worker; 0 = the worker's default (one per
  // 4 of its cores).
  int cores = 0;
  int slots = 0;
  bool keep_state = false;  // keep the state folder (logs, Redis files) after Stop
  // Folder holding reelfarm-coordinator and reelfarm-worker; when empty or
  // when a binary is not there, it is looked up in PATH.
  std::string bin_dir;
  std::string redis_server = "redis-server";
  // Parent of the state folder; empty: $TMPDIR, else /tmp.
  std::string tmp_dir;
  // How long Redis, then the coordinator, may take to answer.
  double start_timeout_s = 10;
  // Seconds between SIGTERM and SIGKILL in Stop.
  double stop_grace_s = 5;
  // How long the workers may take to announce themselves (encoder probe).
  double workers_timeout_s = 60;
  // Extra reelfarm-coordinator arguments.
  std::vector<std::string> coordinator_args;
  // When it becomes true, Start gives up (Cancelled).
  const std::atomic<bool>* interrupted = nullptr;
};

// Ports picked for one farm.
struct FarmPorts {
  int redis = 0;
  int zmq = 0;
  int http = 0;
  int metrics = 0;
  std::vector<int> worker_metrics;
};

// Argument vectors of the children (pure, for tests and for messages).
std::vector<std::string> RedisArgv(const std::string& redis_server, int port,
                                   const std::string& dir);
std::vector<std::string> CoordinatorArgv(const std::string& binary, const FarmPorts& ports);
struct WorkerShapeArgs {
  int cores = 1;  // --cores
  int slots = 0;  // --slots; 0 leaves the worker's default
};
std::vector<std::string> WorkerArgv(const std::string& binary, const FarmPorts& ports, int index,
                                    const WorkerShapeArgs& shape);

// `bin_dir/name` when that is an executable file, else `name` (PATH lookup).
std::string DaemonPath(const std::string& bin_dir, const std::string& name);
// The folder of the running executable (readlink /proc/self/exe); "" if unknown.
std::string SelfBinDir();

// `count` distinct free loopback TCP ports: each is bound on 127.0.0.1 port
// 0, read back, and all are closed together at the end (so no two picks
// collide; another process may still take one before the child binds it).
StatusOr<std::vector<int>> PickFreePorts(int count);

// The last `max_bytes` of a file (from a line start when possible); "" when
// it cannot be read.
std::string TailOfFile(const std::string& path, size_t max_bytes = 2000);

// Not thread-safe. Start and Stop must be called from the main thread (child
// processes are tied to the thread that forks them through PR_SET_PDEATHSIG).
class EmbeddedFarm {
 public:
  explicit EmbeddedFarm(EmbeddedFarmOptions options);
  ~EmbeddedFarm();  // Stop()
  EmbeddedFarm(const EmbeddedFarm&) = delete;
  EmbeddedFarm& operator=(const EmbeddedFarm&) = delete;

  // Makes the state folder, starts redis-server and waits for PING, starts
  // the coordinator and waits for GET /healthz = 200, starts the workers.
  // Unavailable (with the relevant log's tail) when something did not come
  // up in time; Cancelled when interrupted. Children started so far keep
  // running until Stop.
  Status Start();

  // OK while every child still runs; otherwise Unavailable naming the first
  // one that ended, how, and the tail of its log.
  Status CheckChildren();

  // Waits until every worker has announced itself to the coordinator, so
  // that a delivery submitted next is planned for all of them.
  Status WaitForWorkers();

  // SIGTERM to the workers, then the coordinator, then Redis; SIGKILL to any
  // still alive after stop_grace_s; reaps them all; removes the state folder
  // unless keep_state. Idempotent.
  void Stop();

  // "http://127.0.0.1:PORT" once Start has picked the ports.
  std::string http_url() const;
  const std::string& state_dir() const { return state_dir_; }
  const FarmPorts& ports() const { return ports_; }

 private:
  struct Child {
    std::string name;  // "redis", "coordinator", "worker local-1"
    pid_t pid = -1;
    std::string log_path;
    bool reaped = false;
    int wait_status = 0;
  };

  // SpawnLogged (common/child_process.h): stdin from /dev/null, stdout and
  // stderr appended to `log_path`, its own process group and
  // PR_SET_PDEATHSIG=SIGKILL, so nothing outlives `reelfarm run`.
  Status Spawn(const std::string& name, const std::vector<std::string>& argv,
               const std::string& log_path);
  // Non-OK when `child` has ended (reaps it).
  Status CheckChild(Child& child);
  // SIGTERM to each, SIGKILL after stop_grace_s, reaps all.
  void StopGroup(const std::vector<Child*>& group);
  bool Interrupted() const;
  Status WaitForRedis(Child& redis);
  Status WaitForCoordinator(Child& coordinator);

  EmbeddedFarmOptions options_;
  std::string state_dir_;
  FarmPorts ports_;
  std::vector<Child> children_;  // in start order
  bool stopped_ = false;
};

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_EMBEDDED_FARM_H_
