// One active coordinator per Redis (docs/operations.md): a lease, the key
// rf:leader holding the active coordinator's owner id with an expiry it
// renews. Every write of the active coordinator is fenced by it
// (JobStore::set_fence): one that lost the lease (paused, partitioned)
// cannot write, whatever it believes. rf:leader:epoch counts acquisitions,
// so a coordinator that finds the lease free again can tell whether anyone
// else led in between.
#ifndef REELFARM_COORDINATOR_LEADER_LEASE_H_
#define REELFARM_COORDINATOR_LEADER_LEASE_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "common/redis_client.h"
#include "common/status.h"

namespace reelfarm {

struct LeaseOptions {
  std::string key = "rf:leader";
  std::string epoch_key = "rf:leader:epoch";
  // A holder that stops renewing loses it after this long: a standby takes
  // over within ttl plus its poll (ttl / 6).
  std::chrono::milliseconds ttl{3000};
};

// Not thread-safe (one RedisClient of its own).
class LeaderLease {
 public:
  enum class Renewal {
    kHeld,       // ours, extended by ttl
    kReclaimed,  // had expired (Redis away, or lost its data) and nobody took
                 // it since: ours again
    kTaken,      // another coordinator holds it, or held it since
  };
  // `redis` is not owned; `owner` must be unique to this process.
  LeaderLease(RedisClient* redis, LeaseOptions options, std::string owner);

  // SET key owner NX PX ttl; when it is ours, epoch() is the new epoch.
  StatusOr<bool> TryAcquire();
  StatusOr<Renewal> Renew();
  // Gives it up when ours (a clean stop: a standby takes over at once).
  void Release();
  // Who holds it ("" none).
  StatusOr<std::string> Holder();

  // What every write of the holder is fenced by (JobStore::set_fence).
  RedisClient::Fence fence() const;
  uint64_t epoch() const { return epoch_; }
  const std::string& owner() const { return owner_; }
  const LeaseOptions& options() const { return options_; }

 private:
  RedisClient* redis_;
  LeaseOptions options_;
  std::string owner_;
  uint64_t epoch_ = 0;
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_LEADER_LEASE_H_
