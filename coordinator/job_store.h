// Persistence of deliveries and jobs in Redis, the farm's source of truth.
//
// Keys (prefix "rf:" by default):
//   rf:seq             counter for delivery ids and FIFO order (INCRBY: the
//                      coordinator reserves blocks of numbers)
//   rf:deliveries      SET of delivery ids
//   rf:d:<id>          HASH delivery: name spec_file output_dir priority seq
//                      created_ms finished_ms cancelled finished
//                      plan(pb, without its jobs) job_ids (one per line)
//   rf:quarantine      HASH worker name -> why it is out of rotation
//   rf:j:<job id>      HASH job: job(pb) delivery priority seq state attempts
//                      token attempt_key(hex) worker error log_tail
//                      result(pb)
// A delivery and all its jobs are written in one MULTI/EXEC.
#ifndef REELFARM_COORDINATOR_JOB_STORE_H_
#define REELFARM_COORDINATOR_JOB_STORE_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/redis_client.h"
#include "coordinator/farm_state.h"

namespace reelfarm {

class JobStore {
 public:
  // `redis` is not owned and must outlive the store. Not thread-safe.
  explicit JobStore(RedisClient* redis, std::string prefix = "rf:");

  // From now on every write runs only while the coordinator holds its lease
  // (coordinator/leader_lease.h): one that lost it cannot write, even one
  // paused and resumed.
  void set_fence(RedisClient::Fence fence) { fence_ = std::move(fence); }

  StatusOr<uint64_t> NextSeq();
  // Reserves `n` sequence numbers at once: returns the last of them (the
  // block is last-n+1 .. last). Numbers of a block never used are skipped.
  StatusOr<uint64_t> ReserveSeqs(uint64_t n);
  // The id of this Redis' data (rf:epoch): set by the first coordinator
  // (SET NX with `proposed`), then kept. Returns the stored one.
  StatusOr<std::string> EnsureEpoch(const std::string& proposed);
  // The stored epoch; "" when there is none (Redis lost its data).
  StatusOr<std::string> ReadEpoch();
  // A write Redis must accept for the coordinator to work (SET rf:healthz
  // with an expiry): an error when Redis refuses writes (out of memory,
  // too few replicas, a failed background save) though it answers PING.
  Status ProbeWrite(int64_t now_ms);
  // Whether rf:d:<id> exists.
  StatusOr<bool> DeliveryExists(const std::string& id);
  // Stores each job's payload (the job itself when it is not packed yet).
  // Never overwrites: FailedPrecondition when the delivery id exists
  // (checked under WATCH, so atomically with the write).
  Status SaveNewDelivery(const DeliveryRecord& d, const std::vector<JobRecord>& jobs);
  // Writes the named records in one transaction: a job's state always, its
  // payload only when its id is in `rewritten` (it is immutable otherwise).
  Status Save(const std::vector<const DeliveryRecord*>& deliveries,
              const std::vector<const JobRecord*>& jobs,
              const std::set<std::string>& rewritten = {});
  // Quarantined workers (rf:quarantine, name -> reason): "" reason removes.
  Status SaveQuarantine(const std::map<std::string, std::string>& changes);
  Status LoadQuarantine(std::map<std::string, std::string>* out);
  // Every delivery with its jobs, oldest first.
  Status LoadAll(std::vector<std::pair<DeliveryRecord, std::vector<JobRecord>>>* out);

 private:
  std::vector<std::string> DeliveryCommand(const DeliveryRecord& d) const;
  std::vector<std::string> JobCommand(const JobRecord& j, bool with_payload) const;

  // The write, fenced when set_fence was called.
  Status Write(const std::vector<std::vector<std::string>>& cmds,
               const std::string& must_not_exist = "");

  RedisClient* redis_;
  std::string prefix_;
  RedisClient::Fence fence_;  // key "": none
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_JOB_STORE_H_
