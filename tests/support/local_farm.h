// A real farm on loopback for integration tests: redis-server, the
// coordinator and workers as separate processes (the same binaries users
// run), with handles to kill and restart each one.
#ifndef REELFARM_TESTS_SUPPORT_LOCAL_FARM_H_
#define REELFARM_TESTS_SUPPORT_LOCAL_FARM_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm::testing {

struct LocalFarmOptions {
  int workers = 2;
  int slots = 1;
  int heartbeat_ms = 250;  // fast expiry: liveness x heartbeat
  int liveness = 3;
  // The coordinator's --piece-cost. 0 (here): one job per deliverable, so a
  // fault test can watch a deliverable's own job run; tests of the
  // planner's pieces set it.
  double piece_cost = 0;
  std::vector<std::string> extra_worker_args;
  std::vector<std::string> extra_coordinator_args;
  // Extra arguments for one worker only (by index), after the shared ones.
  std::map<int, std::vector<std::string>> worker_args;
  // Each worker serves Prometheus metrics on a loopback port of its own
  // (worker_metrics_port); off by default.
  bool worker_metrics = false;
};

// Not thread-safe. Everything it started dies with it.
class LocalFarm {
 public:
  explicit LocalFarm(LocalFarmOptions options);
  ~LocalFarm();

  // Redis, then the coordinator, then the workers; waits for each to answer.
  Status Start();
  Status StartRedis();
  // `once`: extra arguments for this start only (after the shared ones).
  Status StartCoordinator(const std::vector<std::string>& once = {});
  Status StartWorker(int index);

  // Sends `sig` to a process by name ("redis", "coordinator", "worker-0"...)
  // and, for SIGKILL/SIGTERM, reaps it.
  void Signal(const std::string& name, int sig);
  pid_t pid(const std::string& name) const;
  // Whether the process has ended (reaps it if so).
  bool Exited(const std::string& name);
  // Restarts every worker process that has ended (as a supervisor such as
  // systemd would); returns how many.
  int ReviveDeadWorkers();
  // The process names of the workers, by worker name ("local-0" -> "worker-0").
  static std::string ProcessOfWorker(const std::string& worker_name);

  // HTTP against the coordinator's API; a JSON null when unreachable.
  nlohmann::json Get(const std::string& path);
  // Submits a spec file; returns the delivery id or an error.
  StatusOr<std::string> Submit(const std::string& spec_path);
  // GET /api/v1/deliveries/<id>.
  nlohmann::json Delivery(const std::string& id);
  // CONFIG SET on the farm's Redis (to make it refuse writes, say); the
  // error Redis answered, if any.
  Status RedisConfigSet(const std::string& key, const std::string& value);

  // Polls `done` every 50 ms until it holds or `timeout_s` passes. Waiting
  // on a condition of real processes, not on time.
  static bool WaitFor(const std::function<bool()>& done, double timeout_s);

  const std::string& dir() const { return dir_; }
  int redis_port() const { return redis_port_; }
  int http_port() const { return http_port_; }
  // The coordinator's ZeroMQ endpoint (what workers connect to).
  std::string zmq_endpoint() const { return "tcp://127.0.0.1:" + std::to_string(zmq_port_); }
  std::string api_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  int metrics_port() const { return metrics_port_; }
  // 0 unless options.worker_metrics.
  int worker_metrics_port(int index) const {
    return index < static_cast<int>(worker_metrics_ports_.size()) ? worker_metrics_ports_[index]
                                                                  : 0;
  }
  std::string LogTail(const std::string& name) const;
  // Starts a process of the farm's under `name` (a second coordinator, a
  // worker with arguments of its own): killed with the farm, reaped by
  // Signal/Exited, its log in LogTail(name).
  Status Spawn(const std::string& name, const std::vector<std::string>& argv);

 private:
  LocalFarmOptions options_;
  std::string dir_;
  int redis_port_ = 0, zmq_port_ = 0, http_port_ = 0, metrics_port_ = 0;
  std::vector<int> worker_metrics_ports_;
  std::map<std::string, pid_t> pids_;
};

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_LOCAL_FARM_H_
