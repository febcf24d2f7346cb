// The coordinator's job and worker state machine. Pure: no I/O, no clock of
// its own (every call takes `now`), no randomness but a seeded generator and
// the attempt-key source it is given (FarmOptions::random_bytes).
// It consumes worker messages and time, and returns Effects: messages to send
// and records to persist. The daemon (coordinator.cc) persists the dirty
// records to Redis *before* it sends the messages, so Redis always holds at
// least what any worker has been told.
#ifndef REELFARM_COORDINATOR_FARM_STATE_H_
#define REELFARM_COORDINATOR_FARM_STATE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

enum class JobState { kWaiting, kQueued, kRunning, kSucceeded, kFailed, kCancelled };
const char* JobStateName(JobState s);
bool ParseJobState(const std::string& name, JobState* out);
inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

struct JobRecord {
  // Persisted.
  // What the scheduler reads of the job: everything but its argv, inputs,
  // generated files, group members, fallback, the GPU variant's argv and the
  // outputs' expected media, cache entries and QC gates (PackJob strips
  // them). job.id is farm-unique.
  pb::Job job;
  // The whole job, serialized: what a worker is sent and Redis stores. Set
  // it (or leave it empty) before PackJob; after, it may hold those bytes
  // deflated (zlib: a job is mostly argv text, about a fifth of its size),
  // and Payload() gives them back.
  std::string payload;
  uint32_t payload_size = 0;  // in memory only: the serialized job's bytes (PackJob)
  bool packed = false;        // in memory only: PackJob ran
  // In memory only: the length of payload's first bytes that serialize the
  // job as a CPU slot is sent it (all but its GPU variant, field 18, which
  // the serializer writes last); 0 when the payload is not laid out so (then
  // the job is parsed and rebuilt for each assignment). Set by PackJob.
  size_t cpu_payload_size = 0;

  // Whether payload holds the serialized job deflated (PackJob keeps it so
  // only when that is smaller).
  bool payload_deflated() const { return payload.size() < payload_size; }
  // The serialized job (payload, inflated when it is deflated).
  std::string Payload() const;
  std::string delivery_id;
  int priority = 50;
  uint64_t seq = 0;  // FIFO order within a priority
  JobState state = JobState::kQueued;
  int attempts = 0;    // attempts started so far
  uint64_t token = 0;  // the current (or last) attempt's fencing token
  // The current (or last) attempt's secret (16 random bytes, Assign's
  // attempt_key): messages about the attempt must carry it. Empty: none yet
  // (a record from before keys existed matches nothing).
  std::string attempt_key;
  std::string worker;  // the current (or last) attempt's worker
  // At most this many threads for the next attempts (halved after an
  // attempt ran out of memory); 0 = the worker's budget.
  int max_threads = 0;
  // The current (or last) attempt runs on a GPU slot (docs/gpu.md).
  bool on_gpu = false;
  std::string error;
  std::string log_tail;
  pb::JobResult result;  // the accepted result, when succeeded

  // In memory only.
  SteadyTime lease_until{};  // a running attempt is lost after this
  SteadyTime not_before{};   // retry backoff
  SteadyTime queued_at{};    // when it last entered the queue
  SteadyTime started_at{};   // when its current attempt was assigned
  // Until when the running attempt may be renaming its outputs into place
  // (its publish grant, with the lease's margin); a cancel leaves such an
  // attempt to finish, so what it publishes is listed.
  SteadyTime publishing_until{};
  double progress = 0;
  double fps = 0;
  double speed = 0;
  std::set<std::string> failed_on;  // workers where an attempt reported failure
};

// Moves the whole job in `rec->job` into `rec->payload` (deflated when that
// is smaller) and leaves its summary in `rec->job`. A payload set before
// must be `rec->job` serialized. Sets `rec->cpu_payload_size`. A packed
// record is left alone.
void PackJob(JobRecord* rec);
// Replaces a packed record's job with `whole` (packed again).
void RepackJob(JobRecord* rec, pb::Job whole);
// The whole job of a packed record.
pb::Job UnpackJob(const JobRecord& rec);
// Frees the plan's jobs (the job records hold them): clear_jobs() would keep
// every emptied Job allocated for reuse.
void DropPlanJobs(pb::Plan* plan);

struct DeliveryRecord {
  std::string id;
  std::string name;
  std::string spec_file;
  std::string output_dir;
  int priority = 50;
  uint64_t seq = 0;
  int64_t created_ms = 0;
  int64_t finished_ms = 0;  // 0 while unfinished
  bool cancelled = false;
  bool finished = false;
  pb::Plan plan;
  std::vector<std::string> job_ids;
  // In memory only.
  int unfinished_jobs = 0;        // jobs not yet terminal
  bool manifest_pending = false;  // finished, its manifest not written yet
  // The last failed write of its manifest ("" when none) and how many in a
  // row failed; the coordinator retries with backoff.
  std::string manifest_error;
  int manifest_failures = 0;
};

struct WorkerRecord {
  std::string name;
  std::string peer;  // ZeroMQ routing id of its current connection
  // With CURVE: the authenticated public key (Z85) the name is bound to
  // while this record lives; a Hello under this name from another key is
  // refused. Empty without CURVE.
  std::string key;
  std::string host;
  std::string version;
  int slots = 1;
  int cores = 0;             // as the worker announced them; 0 = unknown
  int threads_per_slot = 0;  // each of its FFmpegs' thread budget
  std::set<std::string> encoders;
  bool gpu = false;
  std::vector<std::string> gpu_names;
  // Jobs it runs at once on GPU encoders, next to `slots` on its CPUs
  // (docs/gpu.md), and the codecs its GPUs decode.
  int gpu_slots = 0;
  std::vector<std::string> gpu_decoders;
  // A GPU encoder failed to open here (session limit, driver gone): no GPU
  // work until it says hello again.
  bool gpu_closed = false;
  SteadyTime last_seen{};
  bool lost = false;
  SteadyTime lost_at{};
  std::set<std::string> running;      // job ids
  std::set<std::string> running_gpu;  // those of them on GPU slots
  int cpu_running() const { return static_cast<int>(running.size() - running_gpu.size()); }
  int free_gpu_slots() const {
    return gpu_closed ? 0 : std::max(0, gpu_slots - static_cast<int>(running_gpu.size()));
  }
  int jobs_done = 0;
  int jobs_failed = 0;
  int failure_streak = 0;      // reported failures since its last success
  int confirmed_failures = 0;  // of those, jobs that then succeeded elsewhere
  bool quarantined = false;    // out of rotation until released
  std::string quarantine_reason;
  // Draining (the worker said so in its Hello or last Heartbeat): gets no
  // new work; what it runs finishes or comes back when it leaves.
  bool draining = false;
};

struct FarmOptions {
  Duration heartbeat_interval = std::chrono::milliseconds(1000);
  // A worker (and its attempts) is lost after heartbeat_interval x liveness
  // without a message.
  int liveness = 3;
  // Attempts per job, lost attempts included, before it is failed.
  int max_attempts = 3;
  // Retry backoff after a reported failure: base x 2^(n-1), capped, with
  // +-25% jitter.
  Duration retry_base = std::chrono::milliseconds(1000);
  Duration retry_cap = std::chrono::seconds(60);
  // A worker whose failures of this many jobs in a row were followed by
  // their success on other workers is quarantined (no more jobs).
  int quarantine_after = 3;
  // How long a lost worker stays listed.
  Duration lost_retention = std::chrono::minutes(10);
  uint64_t seed = 1;
  // Where attempt keys come from: n random bytes. The daemon gives a CSPRNG
  // (SecureRandomBytes); empty, keys come from a generator seeded with
  // `seed` (tests: reproducible, and predictable, so never in a daemon).
  std::function<std::string(size_t)> random_bytes;
  // REQUIRES: called once before use; clamps nonsense to defaults.
  void Sanitize();
  Duration expiry() const { return heartbeat_interval * liveness; }
};

struct Outgoing {
  Outgoing() = default;
  Outgoing(std::string to, pb::CoordinatorMessage m) : peer(std::move(to)), message(std::move(m)) {}

  std::string peer;
  pb::CoordinatorMessage message;
  // An assignment sent as stored: these bytes are its job on the wire and
  // message.assign.job holds only the job's id (no parse and rebuild of the
  // job per assignment). Empty: message is whole.
  std::string job_bytes;

  // What is sent: message with job_bytes spliced in as assign.job.
  std::string Wire() const;
  // The message as its worker reads it (tests, logs).
  pb::CoordinatorMessage Whole() const;
};

// Something that happened, for metrics and logs. Labels derived from it must
// stay bounded: preset, kind, result and reason are small fixed sets; job,
// delivery and worker are for logs only.
struct FarmEvent {
  enum class Kind {
    kAssigned,    // queue_wait set
    kSucceeded,   // run_time set
    kFailed,      // the job failed for good; reason set
    kRetry,       // a reported failure, queued again with backoff; reason set
    kRedispatch,  // an attempt lost without a result, queued again; reason set
    kCancelled,
    kStaleResult,
    kDeliveryFinished,  // reason = the delivery's final state
    kQuarantined,       // worker set; reason = why, for logs
  };
  Kind kind;
  std::string job_id;
  std::string delivery_id;
  std::string preset;  // of the job's first output
  std::string worker;
  // kRedispatch: worker_lost | worker_left | worker_restarted | lease_expired;
  // kRetry / kFailed: retryable | not_retryable | qc_failed | gave_up | dependency |
  // split (kRetry: a group member queued on its own) | reuse_failed (kRetry:
  // a cached output failed its check and is made instead) | gpu_unavailable
  // (kRetry: a GPU encoder did not open; run again at once, on the CPU where
  // it may);
  // kDeliveryFinished: delivered | failed | cancelled.
  std::string reason;
  Duration queue_wait{};
  Duration run_time{};
};

// A message refused because it claimed an attempt or a name its sender does
// not hold: the current attempt's token without its key, or from another
// connection than the attempt's worker; a Hello for a name another live
// connection (or, with CURVE, another key) holds.
struct ForgedMessage {
  std::string kind;      // hello | result | progress | publish | heartbeat (a bounded label)
  std::string peer;      // the sender's routing id (bytes)
  std::string peer_key;  // its CURVE key, "" without CURVE
  std::string job_id;    // the attempt's job, or the name for a Hello
  std::string why;
};

struct Effects {
  std::vector<Outgoing> messages;
  std::set<std::string> dirty_jobs;
  // Of those, the jobs whose payload is new (a split group and its members):
  // stored whole, not just their state.
  std::set<std::string> rewritten_jobs;
  std::set<std::string> dirty_deliveries;
  std::vector<std::string> finished_deliveries;
  // Workers whose quarantine started (name -> reason) or ended ("" reason):
  // the daemon persists these.
  std::map<std::string, std::string> quarantine_changes;
  int stale_results = 0;              // results refused because their attempt was superseded
  std::vector<ForgedMessage> forged;  // refused: the daemon logs and counts them
  std::vector<FarmEvent> events;
};

// Aggregates for the API and metrics.
struct DeliveryCounts {
  int total = 0;  // deliverables, plan failures included
  int delivered = 0;
  int failed = 0;
  int cancelled = 0;
  int running = 0;
  int queued = 0;
  double progress = 0;  // 0..1
  std::string state;    // queued|running|delivered|failed|cancelled
};

// Not thread-safe: the daemon serialises calls.
class FarmState {
 public:
  explicit FarmState(FarmOptions options);

  // Adds a submitted or reloaded delivery. Jobs already running (reloaded
  // after a restart) get a fresh lease of one expiry, within which their
  // worker must claim them by a Hello or Heartbeat.
  void AddDelivery(DeliveryRecord delivery, std::vector<JobRecord> jobs, SteadyTime now,
                   Effects* fx);

  // A message from the peer with ZeroMQ routing id `peer` and, with CURVE,
  // the public key (Z85) the connection authenticated with. Only a worker's
  // own connection speaks for it: everything but a Hello from a connection
  // that has not introduced itself is answered with `reconnect`, and a
  // message about an attempt counts only from the attempt's worker and with
  // the attempt's key.
  void OnMessage(const std::string& peer, const pb::WorkerMessage& msg, SteadyTime now, Effects* fx,
                 const std::string& peer_key = "");

  // Expires workers and leases, sends heartbeats, dispatches queued jobs
  // (unless dispatch is paused).
  void Tick(SteadyTime now, Effects* fx);

  // The assignment of attempt `token` of `job_id` was never sent (the daemon
  // could not persist it): the job goes back to the queue in its old place
  // and the attempt does not count. Nothing when that attempt is not current.
  void Unassign(const std::string& job_id, uint64_t token, Effects* fx);
  // While paused, Tick assigns nothing (the daemon cannot persist
  // assignments; work waits instead of using up attempts).
  void set_dispatch_paused(bool paused) { dispatch_paused_ = paused; }
  // Sending to `peer` failed: its connection is gone (ROUTER_MANDATORY; the
  // process died or the socket was replaced). Its worker is lost now, its
  // attempts handed on, and the name is free for the worker's new
  // connection. Call Unassign first for an assignment that could not be
  // sent.
  void PeerGone(const std::string& peer, SteadyTime now, Effects* fx);
  bool dispatch_paused() const { return dispatch_paused_; }

  // Puts a worker out of rotation (also for one not connected yet, e.g.
  // reloaded from Redis at start), or back into it.
  void Quarantine(const std::string& worker, const std::string& reason, Effects* fx);
  Status Release(const std::string& worker, Effects* fx);
  // Gives a delivery that has not finished a new priority (0..100, higher
  // first): its queued jobs move in the queue at once, later ones are queued
  // with it. NotFound, InvalidArgument (out of range), FailedPrecondition
  // (finished).
  Status SetPriority(const std::string& delivery_id, int priority, Effects* fx);
  // Asks `worker` to drain (a `drain` message): it gets no new work from
  // now on. NotFound when no connected worker has that name.
  Status Drain(const std::string& worker, Effects* fx);

  // Cancels every unfinished job of a delivery. NotFound for an unknown id.
  // An attempt granted leave to publish (and still within it at `now`) may
  // be renaming its files into place: it is left to finish, and what it
  // publishes is recorded and listed; the delivery finishes after it.
  Status Cancel(const std::string& delivery_id, SteadyTime now, Effects* fx);

  // Runs again what failed or was cancelled: every such job of the delivery
  // (`deliverable` "") or of one deliverable, with the failed jobs they
  // wait for, from attempt 1; what was delivered stays. The delivery is
  // unfinished again (its manifest is written again when it ends).
  // NotFound (delivery or deliverable), FailedPrecondition (nothing to run
  // again, or a deliverable that cannot be made from the source).
  Status Retry(const std::string& delivery_id, const std::string& deliverable, SteadyTime now,
               Effects* fx);
  // Cancels one deliverable's unfinished jobs (a queued decode-once group it
  // shares runs as its other members instead). FailedPrecondition while a
  // group it shares is running: one FFmpeg makes them all.
  Status CancelDeliverable(const std::string& delivery_id, const std::string& deliverable,
                           SteadyTime now, Effects* fx);

  const DeliveryRecord* FindDelivery(const std::string& id) const;
  // For the daemon's bookkeeping (finished_ms, manifest_pending); the
  // scheduling fields are FarmState's.
  DeliveryRecord* MutableDelivery(const std::string& id);
  const JobRecord* FindJob(const std::string& id) const;
  const std::map<std::string, DeliveryRecord>& deliveries() const { return deliveries_; }
  const std::map<std::string, WorkerRecord>& workers() const { return workers_; }
  // Deliverables only: intermediate outputs (chunks, audio parts) count
  // through the progress of the job that joins them.
  DeliveryCounts Counts(const DeliveryRecord& d) const;
  // 0..1 for one job; a job waiting on parts shows theirs.
  double Progress(const JobRecord& j) const;
  // Why a queued job cannot start on any worker connected now (none has
  // what it needs, e.g. a GPU slot for `encoder: gpu`); "" when one could
  // (busy or not), or the job is not queued.
  std::string Unrunnable(const JobRecord& j) const;
  size_t queued_jobs() const { return queue_.size(); }
  uint64_t last_token() const { return last_token_; }
  const FarmOptions& options() const { return options_; }

 private:
  using QueueKey = std::tuple<int, uint64_t, std::string>;  // (-priority, seq, id)

  void OnHello(const std::string& peer, const std::string& peer_key, const pb::Hello& hello,
               SteadyTime now, Effects* fx);
  // Why a Hello for a name `old` holds, from another connection, is refused;
  // "" when it is the same worker (a CURVE key match, `old` gone quiet, or
  // the Hello proves it holds old's running attempts).
  std::string HelloRefusal(const WorkerRecord& old, const std::string& peer_key,
                           const pb::Hello& hello, SteadyTime now) const;
  // `w` (null: an unknown connection) sent this result.
  void OnResult(const std::string& peer, const std::string& peer_key, const WorkerRecord* w,
                const pb::JobResult& result, SteadyTime now, Effects* fx);
  // The job's attempt `token` is running and `key` is its attempt key
  // (compared in constant time).
  bool IsCurrentAttempt(const JobRecord& job, uint64_t token) const;
  bool KeyMatches(const JobRecord& job, const std::string& key) const;
  // The message about (job, token, key) from worker `w`: whether it speaks
  // for the running attempt. When it names the current attempt but not with
  // its key or not from its worker, records it as forged.
  bool Authentic(const JobRecord* job, uint64_t token, const std::string& key,
                 const WorkerRecord* w, const std::string& kind, const std::string& peer,
                 const std::string& peer_key, Effects* fx) const;
  std::string NewAttemptKey();
  WorkerRecord* WorkerForPeer(const std::string& peer);
  void Enqueue(JobRecord& job, SteadyTime now, Effects* fx);
  // Ends the running attempt of `job` (not terminal yet) without a result:
  // lost worker, lapsed lease. Requeues it or fails it after max_attempts.
  // `code` is the bounded reason for metrics (FarmEvent::reason).
  void LoseAttempt(JobRecord& job, const std::string& reason, const std::string& code,
                   SteadyTime now, Effects* fx);
  void Emit(FarmEvent::Kind kind, const JobRecord& job, const std::string& reason, Effects* fx,
            Duration queue_wait = {}, Duration run_time = {});
  void FailJob(JobRecord& job, const std::string& error, const std::string& code, Effects* fx);
  // A group (decode once, encode many) that failed for good, with `result`
  // (possibly empty) listing what it published: the published outputs stay
  // its own and it ends succeeded with those; every other output is queued
  // again as its member job, on its own. False when `job` is no group.
  bool SplitGroup(JobRecord& job, const pb::JobResult& result, const std::string& why,
                  SteadyTime now, Effects* fx);
  // A "reuse" job whose cache entry failed (missing, changed bytes): it
  // ends with no output and its fallback jobs (which make the output) are
  // queued in its place. False when `job` has none or its delivery is
  // cancelled.
  bool Fallback(JobRecord& job, const pb::JobResult& result, SteadyTime now, Effects* fx);
  // Adds a job record of delivery `d` (indexes, counters).
  JobRecord& AddJob(DeliveryRecord& d, JobRecord rec);
  void Finish(JobRecord& job, JobState state, Effects* fx);
  // Queues the waiting jobs that depended on `job` once all their
  // dependencies succeeded.
  void ReleaseDependents(const JobRecord& job, SteadyTime now, Effects* fx);
  bool DependenciesSucceeded(const JobRecord& job) const;
  void CheckDelivery(const std::string& delivery_id, Effects* fx);
  void Dispatch(SteadyTime now, Effects* fx);
  // Where `w` can run `job` (in rotation, a slot of the kind, what it
  // needs): on a GPU slot (its GPU variant, or a GPU-only job) before a CPU
  // one. `free_now`: only a slot free now counts; else any slot (a GPU's
  // only while not closed). kNone when it cannot.
  enum class SlotKind { kNone, kCpu, kGpu };
  static SlotKind SlotFor(const WorkerRecord& w, const pb::Job& job, bool free_now);
  // The encoders and GPU `needs` asks for.
  static bool HasWhatItNeeds(const WorkerRecord& w, const pb::Requirements& needs);
  // Whether `w` could ever run `job` (any slot kind, busy or not).
  static bool Suits(const WorkerRecord& w, const pb::Job& job);
  Duration Backoff(int attempts);
  void DetachFromWorker(const JobRecord& job);
  // A running attempt of `job` is told to stop (Cancel to its worker) and
  // detached from it; nothing for a job not running.
  void StopAttempt(const JobRecord& job, Effects* fx);

  FarmOptions options_;
  std::mt19937_64 rng_;
  std::mt19937_64 key_rng_;  // attempt keys when options_.random_bytes is empty
  std::map<std::string, DeliveryRecord> deliveries_;
  std::unordered_map<std::string, JobRecord> jobs_;
  // Jobs in state kRunning (their leases are checked every tick).
  std::set<std::string> running_;
  // Job id -> the ids of the jobs that depend on it.
  std::unordered_map<std::string, std::vector<std::string>> dependents_;
  std::map<std::string, WorkerRecord> workers_;        // by name
  std::map<std::string, std::string> peer_to_worker_;  // routing id -> name
  std::set<QueueKey> queue_;
  uint64_t last_token_ = 0;
  SteadyTime last_heartbeat_{};
  bool dispatch_paused_ = false;
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_FARM_STATE_H_
