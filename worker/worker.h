// The worker daemon: announces its encoders and slots to the coordinator over
// a ZeroMQ DEALER, heartbeats, runs assigned attempts (JobExecutor, one
// thread per slot in use), streams progress, reports results until they are
// acknowledged, and reconnects with backoff when the coordinator goes quiet
// (the Paranoid Pirate pattern).
//
// The session's logic (what to send when, the attempts held, results until
// acknowledged, the reconnect) is WorkerSession's; this is the glue: the
// socket, the attempt threads and the clock.
//
// Threads: Run()'s loop owns the socket and the session; attempt threads
// only push to the outbox under mu_, and wait there for publish answers.
#ifndef REELFARM_WORKER_WORKER_H_
#define REELFARM_WORKER_WORKER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/process_runner.h"
#include "common/status.h"
#include "proto/reelfarm.pb.h"
#include "worker/encoder_probe.h"
#include "worker/job_executor.h"
#include "worker/worker_session.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace reelfarm {

class MetricsServer;
class ServiceNotifier;
class WorkerMetrics;

struct WorkerOptions {
  // The coordinator's ZeroMQ endpoint, or several separated by commas (an
  // active coordinator and its standbys): after the one it talks to goes
  // quiet, the worker tries the next.
  std::string coordinator = "tcp://127.0.0.1:8471";
  std::string name;  // default "<hostname>-<pid>"
  // Cores the worker's FFmpegs share; 0 = UsableCores() (affinity and CPU
  // quota). Slots: jobs run at once; 0 = DefaultSlots(cores). Each FFmpeg
  // gets executor.threads threads; 0 = ThreadsPerSlot(cores, slots).
  // Sanitized once by the constructor.
  int cores = 0;
  int slots = 0;
  std::string metrics = "0.0.0.0:9471";  // empty = off
  std::string ffmpeg = "ffmpeg";
  JobExecutorOptions executor;
  // Memory cgroups for each FFmpeg (MemoryCgroupParent): "auto" = this
  // process's own cgroup when it may create children there, else none;
  // "off"; or a cgroup folder (an error when unusable).
  std::string memory_cgroup = "auto";
  // Until the coordinator's Welcome says otherwise.
  Duration heartbeat_interval = std::chrono::milliseconds(1000);
  int liveness = 3;
  Duration reconnect_min = std::chrono::milliseconds(250);
  Duration reconnect_max = std::chrono::seconds(8);
  Duration progress_interval = std::chrono::milliseconds(500);
  Duration result_resend = std::chrono::seconds(3);
  // CURVE: this worker's secret key file and the coordinator's public key
  // (inline Z85 or a file). Both or neither.
  std::string curve_secret_file;
  std::string curve_server_key;
  // Skip the encoder probe and announce these (tests); empty = probe.
  std::vector<std::string> encoders_override;
  // Jobs run at once on GPU encoders, next to `slots` (docs/gpu.md): -1 =
  // the NVENC sessions the probe opened at once (0 without NVENC, and with
  // encoders_override); 0 = no GPU work here.
  int gpu_slots = -1;
  int max_gpu_sessions = 16;  // the probe's ceiling
  // Draining (docs/operations.md): how long running attempts may go on
  // after the drain starts before what is left is handed back.
  Duration drain_timeout = std::chrono::hours(1);
};

class Worker {
 public:
  // `clock` and `runner` are not owned and must outlive the worker.
  Worker(WorkerOptions options, Clock* clock, ProcessRunner* runner);
  ~Worker();

  // Probes the encoders and starts the metrics endpoint.
  Status Start();
  // Runs until *stop turns true, then stops running attempts and says
  // goodbye. Once *drain (may be null) turns true the worker drains: it
  // takes no new work and ends when what it runs has finished and been
  // acknowledged, or when drain_timeout has passed (then as on stop: what is
  // left is cancelled and handed back). Each turn tells `notifier` (not
  // owned; may be null) that the loop is alive; the end, that it stops.
  void Run(const std::atomic<bool>& stop, ServiceNotifier* notifier = nullptr,
           const std::atomic<bool>* drain = nullptr);

  // The worker's name (its option, or "<hostname>-<pid>").
  const std::string& name() const { return options_.name; }

 private:
  // Defaults filled in, nonsense clamped; called once.
  static WorkerOptions Sanitize(WorkerOptions options);

  // An attempt's thread. Which attempts the worker holds, and what becomes
  // of their results, is the session's; this is only the thread.
  struct Attempt {
    uint64_t token = 0;
    std::unique_ptr<std::atomic<bool>> cancel;
    std::unique_ptr<std::atomic<bool>> done;
    std::thread thread;
  };

  // A publish request waiting for the coordinator's answer.
  struct PublishWait {
    bool answered = false;
    bool granted = false;
    SteadyTime deadline{};
  };

  // Blocks the attempt's thread until the coordinator grants or refuses the
  // publish of (job, token), or an expiry passes without an answer.
  StatusOr<SteadyTime> AwaitPublish(const std::string& job_id, uint64_t token,
                                    const std::string& attempt_key);
  void AnswerPublish(const std::string& job_id, uint64_t token, bool granted, int valid_ms);
  WorkerSessionOptions SessionOptions() const;
  // Closes the socket (when open) and opens a new one.
  void Connect();
  void Send(const pb::WorkerMessage& m);
  // Carries out what the session asks for.
  void Apply(const SessionEffects& fx);
  void StartAttempt(const pb::Assign& assign);
  void ReapFinished();
  // Hands what the attempt threads pushed to the session.
  void DrainOutbox();
  void Push(pb::WorkerMessage m);  // from any thread

  WorkerOptions options_;
  Clock* clock_;
  ProcessRunner* runner_;
  std::unique_ptr<MemoryCgroupParent> cgroups_;  // null: no memory cgroups
  std::unique_ptr<JobExecutor> executor_;        // made by Start()
  EncoderProbeResult caps_;

  std::string curve_public_, curve_secret_, curve_server_;  // Z85; empty = off
  std::unique_ptr<zmq::context_t> zmq_;
  std::unique_ptr<zmq::socket_t> dealer_;
  std::vector<std::string> endpoints_;  // options_.coordinator, split
  size_t endpoint_ = 0;                 // the one connected to
  size_t connects_ = 0;
  std::unique_ptr<WorkerSession> session_;  // made by Run(); its thread only

  std::mutex mu_;  // guards outbox_, publish_waits_ and expiry_
  std::condition_variable publish_cv_;
  std::map<std::pair<std::string, uint64_t>, PublishWait> publish_waits_;
  // From the attempt threads: progress, results and publish requests.
  std::deque<pb::WorkerMessage> outbox_;
  // heartbeat interval x liveness, as the last Welcome set them.
  Duration expiry_{};

  std::map<std::string, Attempt> attempts_;  // by job id; Run()'s thread only
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<WorkerMetrics> worker_metrics_;  // null when metrics are off
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_WORKER_H_
