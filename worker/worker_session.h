// The worker's side of its session with the coordinator, as a state machine.
// Pure: no sockets, no threads, no clock of its own (every call that depends
// on time takes `now`). It consumes coordinator messages, the attempts'
// progress, results and publish requests, and time, and returns
// SessionEffects: messages to send, attempts to start or cancel, publish
// requests to answer, and when to reopen the connection. The daemon
// (worker.cc) is the glue: it owns the socket and the attempt threads.
//
// It keeps the protocol: Hello on every (re)connect, listing the attempts it
// still holds (running, and finished with a result not yet acknowledged,
// each with its attempt key); a Heartbeat every heartbeat interval listing
// the same; results sent again every result_resend and on every Welcome
// until their result_ack; and the Paranoid Pirate reconnect: the coordinator
// silent for heartbeat_interval x liveness, the connection is reopened after
// a backoff that doubles from reconnect_min to reconnect_max and starts over
// after a Welcome.
#ifndef REELFARM_WORKER_WORKER_SESSION_H_
#define REELFARM_WORKER_WORKER_SESSION_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct WorkerSessionOptions {
  // What the Hello announces.
  std::string name;
  std::string host;
  int slots = 1;
  int cores = 0;
  int threads_per_slot = 0;
  std::vector<std::string> encoders;
  bool gpu = false;
  std::vector<std::string> gpu_names;
  int gpu_slots = 0;
  std::vector<std::string> gpu_decoders;
  std::string version;
  // Until the coordinator's Welcome says otherwise.
  Duration heartbeat_interval = std::chrono::milliseconds(1000);
  int liveness = 3;  // at least 2
  Duration reconnect_min = std::chrono::milliseconds(250);
  Duration reconnect_max = std::chrono::seconds(8);
  Duration result_resend = std::chrono::seconds(3);
};

// One attempt: a job id and its fencing token.
struct AttemptId {
  std::string job_id;
  uint64_t token = 0;
  bool operator==(const AttemptId&) const = default;
};

// The coordinator's answer to an attempt's publish request.
struct PublishAnswer {
  std::string job_id;
  uint64_t token = 0;
  bool granted = false;
  int valid_ms = 0;  // granted: rename within this many ms of receiving it
};

struct SessionEffects {
  // Close the connection (when open) and open a new one, before sending
  // `send`.
  bool reconnect = false;
  // In order, after the reconnect when there is one.
  std::vector<pb::WorkerMessage> send;
  // Attempts to stop (set their cancel flag), before starting `start`: an
  // attempt superseded by a newer one of the same job is listed here, and
  // must have stopped before the newer one starts.
  std::vector<AttemptId> cancel;
  // Attempts to run.
  std::vector<pb::Assign> start;
  // Publish requests answered (granted, or refused by a cancel).
  std::vector<PublishAnswer> publish_answers;

  // For logs.
  bool welcomed = false;  // a Welcome arrived
  // The coordinator went silent: the connection is reopened after this.
  Duration reconnect_in{};
  // The first hello_refused since the last Welcome: why.
  std::string hello_refused;
};

// Not thread-safe: the daemon's loop thread makes every call.
class WorkerSession {
 public:
  explicit WorkerSession(WorkerSessionOptions options);

  // Opens the connection and says Hello.
  SessionEffects Start(SteadyTime now);
  // A frame from the coordinator. A frame that did not parse is passed as an
  // empty message: it still shows the coordinator is alive.
  SessionEffects OnMessage(const pb::CoordinatorMessage& m, SteadyTime now);
  // Heartbeats, result resends, the silence check and the reconnect.
  SessionEffects Tick(SteadyTime now);
  // From the attempts (through the loop thread).
  SessionEffects OnProgress(const pb::Progress& p);
  // The attempt (result.job_id(), result.token()) ended with `result`. It is
  // reported until acknowledged, unless the coordinator cancelled the
  // attempt (or the worker is stopping): then nothing is reported.
  SessionEffects OnAttemptFinished(const pb::JobResult& result);
  // The attempt waits for leave to publish its outputs. Answered in a later
  // effect (grant or cancel), or at once when the attempt was cancelled.
  SessionEffects OnPublishRequested(const std::string& job_id, uint64_t token,
                                    const std::string& attempt_key);
  // Shutting down: every attempt is cancelled (nothing of them is reported
  // any more) and `send` holds the goodbye, to send once they have stopped.
  SessionEffects Stop();
  // Draining (SIGTERM, or the coordinator's `drain` message): from now on
  // the Hello and every Heartbeat say so (one is sent at once), and the
  // coordinator gives this worker no new work; running attempts go on and
  // report as before. Stop() ends it.
  SessionEffects Drain(SteadyTime now);
  bool draining() const { return draining_; }
  // Nothing left to finish or report: no attempt running, no result
  // waiting for its acknowledgement.
  bool Idle() const;

  // Attempts running (not cancelled), then finished attempts whose result is
  // not acknowledged yet: what Hello and Heartbeat list.
  std::vector<pb::JobRef> RunningRefs() const;
  Duration heartbeat_interval() const { return options_.heartbeat_interval; }
  int liveness() const { return options_.liveness; }
  // The current reconnect backoff (zero after a Welcome).
  Duration backoff() const { return backoff_; }
  bool welcomed() const { return welcomed_; }
  size_t unacked_results() const { return unacked_.size(); }
  const WorkerSessionOptions& options() const { return options_; }

 private:
  using Key = std::pair<std::string, uint64_t>;  // (job id, token)

  struct Attempt {
    std::string key;  // Assign.attempt_key: echoed in every message about it
    // Cancelled by the coordinator or the shutdown: not listed, and its
    // result is not reported.
    bool cancelled = false;
    // Stopped for a newer Assign of its job: not listed, but its result is
    // still reported (and acknowledged by the coordinator as stale).
    bool superseded = false;
  };

  pb::WorkerMessage Hello() const;
  pb::WorkerMessage Heartbeat() const;
  void Connect(SteadyTime now, SessionEffects* fx);
  void StartAttempt(const pb::Assign& assign, SessionEffects* fx);
  // The coordinator's cancel of (job, token): refuses its pending publish
  // and stops the attempt when it runs.
  void CancelAttempt(const std::string& job_id, uint64_t token, SessionEffects* fx);
  void ResendResults(SessionEffects* fx) const;

  WorkerSessionOptions options_;
  bool started_ = false;
  bool stopped_ = false;
  bool draining_ = false;
  bool welcomed_ = false;
  bool hello_refused_reported_ = false;  // one report per refused streak
  SteadyTime last_recv_{};
  SteadyTime last_heartbeat_{};
  SteadyTime last_resend_{};
  SteadyTime reconnect_at_{};  // zero: no reconnect pending
  Duration backoff_{};

  std::map<Key, Attempt> attempts_;       // started, no result yet
  std::map<Key, pb::JobResult> unacked_;  // reported, not acknowledged
  std::set<Key> publish_waits_;           // publish requests not answered
};

}  // namespace reelfarm

#endif  // REELFARM_WORKER_WORKER_SESSION_H_
