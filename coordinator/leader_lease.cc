#include "coordinator/leader_lease.h"

#include <utility>

namespace reelfarm {
namespace {

// 1: ours, extended; 2: found free and taken back (nobody held it since our
// epoch; the epoch restored when Redis lost it); -1: another's, or free
// after another held it.
constexpr char kRenewScript[] = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return -1 end
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
if epoch > tonumber(ARGV[3]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if epoch < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
return 2
)lua";

constexpr char kReleaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

}  // namespace

LeaderLease::LeaderLease(RedisClient* redis, LeaseOptions options, std::string owner)
    : redis_(redis), options_(std::move(options)), owner_(std::move(owner)) {}

StatusOr<bool> LeaderLease::TryAcquire() {
  auto set = redis_->Command(
      {"SET", options_.key, owner_, "NX", "PX", std::to_string(options_.ttl.count())});
  if (!set.ok()) return set.status();
  if (set->type == RedisReply::Type::kError) return Status::Unavailable("SET lease: " + set->str);
  if (set->type != RedisReply::Type::kStatus) return false;  // nil: held by another
  auto epoch = redis_->Command({"INCR", options_.epoch_key});
  if (!epoch.ok()) return epoch.status();
  if (epoch->type != RedisReply::Type::kInteger) {
    return Status::Unavailable("INCR lease epoch: " + epoch->str);
  }
  epoch_ = static_cast<uint64_t>(epoch->integer);
  return true;
}

StatusOr<LeaderLease::Renewal> LeaderLease::Renew() {
  auto r = redis_->Command({"EVAL", kRenewScript, "2", options_.key, options_.epoch_key, owner_,
                            std::to_string(options_.ttl.count()), std::to_string(epoch_)});
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kInteger) return Status::Unavailable("renew lease: " + r->str);
  return r->integer == 1 ? Renewal::kHeld : r->integer == 2 ? Renewal::kReclaimed : Renewal::kTaken;
}

void LeaderLease::Release() {
  (void)redis_->Command({"EVAL", kReleaseScript, "1", options_.key, owner_});
}

RedisClient::Fence LeaderLease::fence() const {
  return {options_.key, owner_, options_.epoch_key, epoch_,
          static_cast<int64_t>(options_.ttl.count())};
}

StatusOr<std::string> LeaderLease::Holder() {
  auto r = redis_->Command({"GET", options_.key});
  if (!r.ok()) return r.status();
  return r->type == RedisReply::Type::kString ? r->str : std::string();
}

}  // namespace reelfarm
