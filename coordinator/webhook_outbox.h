// Webhooks of deliveries, delivered at least once (docs/webhooks.md).
//
// Events are not sent from where state changes: a reconciler derives every
// event a delivery should have emitted from its persisted state (after each
// change is saved, and once at start), with ids that depend only on that
// state, and enqueues those not enqueued before. A crash between a state
// change and its enqueue is caught by the next reconcile (at the latest the
// next start); nothing is enqueued twice. A sender thread POSTs what is due,
// retries with backoff and moves what keeps failing to a bounded dead-letter
// list. Only the active coordinator writes (fenced by its lease).
//
// Redis keys (prefix "rf:wh:"):
//   rf:wh:subs:<delivery>  STRING JSON [{url, secret (base64), events}]: the
//                          spec's webhooks, written before the delivery
//   rf:wh:since            HASH farm-wide url -> ms it was first configured:
//                          older deliveries are not reported to it
//   rf:wh:seen:<delivery>  SET of entry ids ever enqueued for the delivery
//   rf:wh:due              ZSET entry id -> when its next attempt is due (ms)
//   rf:wh:e:<entry id>     HASH msg_id type url ref delivery body attempts
//                          last_error created_ms
//   rf:wh:dead             LIST of JSON dead letters, newest first, bounded
// An entry is one message to one endpoint: "<msg id>_<12 hex of endpoint>".
// `ref` names the secret: "farm" (the coordinator's --webhook-secret-file,
// never stored) or "<delivery>#<n>" (the n-th of rf:wh:subs:<delivery>).
#ifndef REELFARM_COORDINATOR_WEBHOOK_OUTBOX_H_
#define REELFARM_COORDINATOR_WEBHOOK_OUTBOX_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/redis_client.h"
#include "common/spec.h"
#include "common/status.h"
#include "common/webhooks.h"
#include "coordinator/farm_state.h"

namespace reelfarm {

class CoordinatorMetrics;

inline constexpr char kWebhookKeyPrefix[] = "rf:wh:";

struct WebhookOptions {
  std::vector<std::string> urls;  // farm-wide: every delivery's events
  std::string secret_file;        // their secret (whsec_...); required with urls
  // --webhook-allow: CIDRs, addresses or host names that may receive
  // webhooks although not public (WebhookAllowList).
  std::vector<std::string> allow;
  WebhookRetryOptions retry;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds io_timeout{5000};  // each read or write of a POST
  size_t max_dead_letters = 1000;              // the newest are kept
  // Uniform in [0, 1) for the retry jitter; empty: a generator of its own.
  std::function<double()> unit_random;
};

// One endpoint a delivery's events go to.
struct WebhookSubscription {
  std::string url;
  std::string key;                  // the secret's bytes
  std::vector<std::string> events;  // empty: all
};

// What the reconciler reads of a delivery.
struct WebhookDeliveryView {
  std::string id;
  std::string name;
  std::string output_dir;
  int version = 1;
  int64_t created_ms = 0;
  struct Item {
    std::string deliverable;
    std::string preset;
    std::string path;  // relative to output_dir
    bool delivered = false;
    bool failed = false;
    std::string sha256;
    int64_t bytes = 0;
    std::string error;
    // Tells a deliverable's runs apart: the fencing token of the attempt that
    // ended it (of what it waited for when it never ran; 0 for a plan
    // failure). A retry's run has another.
    uint64_t generation = 0;
  };
  std::vector<Item> items;
  bool finished = false;  // and its manifest written
  int64_t finished_ms = 0;
  std::string state;
  int delivered = 0, failed = 0, cancelled = 0;
};
WebhookDeliveryView ViewOfDelivery(const FarmState& farm, const DeliveryRecord& d);

struct WebhookEvent {
  std::string key;   // what it reports, e.g. "film-3|deliverable.published|web|17"
  std::string id;    // WebhookMessageId(key)
  std::string type;  // kEvent*
  std::string body;  // BuildWebhookBody
};
// Pure: every event `v` should have emitted by now, in the order they
// happened (accepted, each deliverable's end, finished); `now_ms` stamps
// the bodies. The same state always gives the same keys and ids. When
// `wanted` is given, events whose id it refuses are left out (their bodies
// never built).
std::vector<WebhookEvent> DeriveWebhookEvents(
    const WebhookDeliveryView& v, int64_t now_ms,
    const std::function<bool(const std::string& id)>& wanted = {});

// The spec's webhooks and `extra` (the submit request's own, with absolute
// secret files inside `allowed_roots` when given), their secret files read
// (bounded, no symlink) and parsed: the subscriptions, or errors naming the
// spec file, line and field (webhooks[N].url, request.webhooks[N].secret_file).
// A URL whose host is an IP literal that `allow` does not admit is refused
// here; host names are checked at each send.
std::vector<SpecError> ReadWebhookSubscriptions(const DeliverySpec& spec,
                                                const std::vector<WebhookSpec>& extra,
                                                const std::vector<std::string>& allowed_roots,
                                                const WebhookAllowList& allow,
                                                std::vector<WebhookSubscription>* out);
// The "webhooks" of a submit request: a list of at most kMaxSpecWebhooks
// {"url": string, "secret_file": string, "events": [known types]}; false
// when it is not that.
bool ParseRequestWebhooks(const nlohmann::json& list, std::vector<WebhookSpec>* out);

// An endpoint of one delivery's events.
struct WebhookTarget {
  std::string url;
  std::string ref;                  // "farm" or "<delivery>#<n>"
  std::vector<std::string> events;  // empty: all
  int64_t since_ms = 0;             // deliveries created before: none
};
// "<msg id>_<12 hex of ref and url>".
std::string WebhookEntryId(const std::string& msg_id, const WebhookTarget& target);

// The enqueue side and the API; not thread-safe (the coordinator calls it
// under its lock, with its Redis connection). The API methods use a
// connection of their own and may be called from any thread.
class WebhookOutbox {
 public:
  // `redis` (not owned) is the caller's; `endpoint` opens the API's own.
  WebhookOutbox(WebhookOptions options, RedisClient* redis, const RedisEndpoint& endpoint,
                Clock* clock, std::string prefix = kWebhookKeyPrefix);

  // Reads the farm-wide secret, checks the URLs and the allow-list, and
  // records when each farm-wide URL was first configured. InvalidArgument
  // naming the flag.
  Status Init();
  void set_fence(RedisClient::Fence fence) { fence_ = std::move(fence); }
  const WebhookOptions& options() const { return options_; }
  const WebhookAllowList& allow() const { return allow_; }
  const std::string& farm_key() const { return farm_key_; }

  // The spec's webhooks of a delivery, stored before the delivery is (so a
  // stored delivery always has them). Uses `redis` (the submission lane's connection).
  static Status SaveSubscriptions(RedisClient* redis, const RedisClient::Fence& fence,
                                  const std::string& prefix, const std::string& delivery_id,
                                  const std::vector<WebhookSubscription>& subs);
  // Remembers them for the reconciler (after SaveSubscriptions).
  void AddSubscriptions(const std::string& delivery_id, std::vector<WebhookSubscription> subs);
  // At start: the stored subscriptions and enqueued ids of these deliveries.
  Status Load(const std::vector<std::string>& delivery_ids);

  // Enqueues the events of these deliveries not enqueued before, due now.
  // On a Redis failure the deliveries are remembered and tried again by
  // RetryPending.
  Status Reconcile(const std::vector<WebhookDeliveryView>& views);
  // Deliveries whose reconcile failed (Redis refused): their ids, cleared.
  std::set<std::string> TakePending();

  // GET /api/v1/webhooks: queue depth, the next entries and dead letters.
  StatusOr<nlohmann::json> Describe(size_t max_listed = 100);
  // Moves a dead letter back into the queue, due now, its attempts from 0.
  // NotFound when no dead letter has that entry id.
  Status Redeliver(const std::string& entry_id);

  std::vector<WebhookTarget> TargetsOf(const WebhookDeliveryView& v) const;
  // Whether any endpoint may want this delivery's events (farm-wide
  // webhooks, or its own): without, its view need not be built.
  bool HasTargets(const std::string& delivery_id) const {
    return !options_.urls.empty() || subs_.count(delivery_id) != 0;
  }
  // Whether any delivery may have webhooks (a farm without them skips the
  // bookkeeping).
  bool AnyTargets() const { return !options_.urls.empty() || !subs_.empty(); }
  // Signals each enqueue (the sender's wake-up); may be empty.
  void set_on_enqueue(std::function<void()> f) { on_enqueue_ = std::move(f); }

 private:
  Status Write(RedisClient* redis, const std::vector<std::vector<std::string>>& cmds);

  WebhookOptions options_;
  RedisClient* redis_;
  std::unique_ptr<RedisClient> api_redis_;  // guarded by api_mu_
  std::mutex api_mu_;
  Clock* clock_;
  std::string prefix_;
  RedisClient::Fence fence_;
  WebhookAllowList allow_;
  std::string farm_key_;
  std::map<std::string, int64_t> since_;  // farm url -> ms
  std::map<std::string, std::vector<WebhookSubscription>> subs_;
  std::map<std::string, std::set<std::string>> seen_;  // delivery -> entry ids
  std::set<std::string> pending_;
  std::function<void()> on_enqueue_;
};

// The result of one POST.
struct WebhookPostResult {
  int status = 0;     // the HTTP status; 0 when none came
  std::string error;  // why it failed ("" on 2xx)
};
// POSTs `body` to `url` with `headers`: resolves the host, refuses unless
// every address is allowed (WebhookAddressProblem), connects to the first
// checked address (never resolving again: DNS rebinding cannot swap it),
// follows no redirect, reads the status and headers only.
WebhookPostResult PostWebhook(const WebhookUrl& url,
                              const std::multimap<std::string, std::string>& headers,
                              const std::string& body, const WebhookAllowList& allow,
                              std::chrono::milliseconds connect_timeout,
                              std::chrono::milliseconds io_timeout);

// The sender thread: pops due entries, signs and POSTs them, deletes them
// on 2xx, reschedules them with backoff, dead-letters them after the last
// attempt.
class WebhookSender {
 public:
  // `outbox` (options, allow-list, farm key) and `metrics` (may be null)
  // are not owned and must outlive the sender.
  WebhookSender(const WebhookOutbox* outbox, const RedisEndpoint& endpoint,
                RedisClient::Fence fence, Clock* clock, CoordinatorMetrics* metrics,
                std::string prefix = kWebhookKeyPrefix);
  ~WebhookSender();
  void Start();
  // Joins the thread; with `send_due`, after sending what is due once more
  // (for up to 2 s: a clean stop, before the lease is handed over).
  void Stop(bool send_due = false);
  void Wake();

 private:
  void Loop();
  // One entry; true when it was attempted.
  void Attempt(const std::string& entry_id);
  StatusOr<std::string> KeyOf(const std::string& ref);
  Status Write(const std::vector<std::vector<std::string>>& cmds);
  void UpdateGauges();

  const WebhookOutbox* outbox_;
  std::unique_ptr<RedisClient> redis_;
  RedisClient::Fence fence_;
  Clock* clock_;
  CoordinatorMetrics* metrics_;
  std::string prefix_;
  std::function<double()> unit_random_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;      // guarded by mu_
  bool send_due_ = false;  // guarded by mu_: a last pass after stop_
  bool woken_ = false;     // guarded by mu_
  std::thread thread_;
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_WEBHOOK_OUTBOX_H_
