// JobStore against a real redis-server: what is saved comes back, including
// after the server restarts from its append-only file.
#include "coordinator/job_store.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "coordinator/leader_lease.h"
#include "tests/support/local_farm.h"

namespace reelfarm::testing {
namespace {

DeliveryRecord MakeDelivery(const std::string& id, uint64_t seq) {
  DeliveryRecord d;
  d.id = id;
  d.name = "film";
  d.spec_file = "spec.yaml";
  d.output_dir = "/tmp/out";
  d.priority = 70;
  d.seq = seq;
  d.created_ms = 1234;
  d.plan.set_name("film");
  for (int i = 0; i < 2; ++i) {
    auto* j = d.plan.add_jobs();
    j->set_id(id + ".j" + std::to_string(i));
    j->add_argv("ffmpeg");
    j->add_argv("-i");
    j->add_argv(std::string("binary\0safe", 11));
  }
  d.job_ids = {id + ".j0", id + ".j1"};
  return d;
}

std::vector<JobRecord> MakeJobs(const DeliveryRecord& d) {
  std::vector<JobRecord> jobs;
  for (const auto& pj : d.plan.jobs()) {
    JobRecord j;
    j.job = pj;
    j.delivery_id = d.id;
    j.priority = d.priority;
    j.seq = d.seq * 100000 + jobs.size();
    jobs.push_back(j);
  }
  return jobs;
}

TEST(JobStore, SavesAndReloadsDeliveriesAndJobStatesAcrossARedisRestart) {
  LocalFarm farm(LocalFarmOptions{});
  ASSERT_TRUE(farm.StartRedis().ok());
  RedisEndpoint ep;
  ep.port = farm.redis_port();
  RedisClient redis(ep, 2000);
  JobStore store(&redis);

  auto seq = store.NextSeq();
  ASSERT_TRUE(seq.ok());
  DeliveryRecord d = MakeDelivery("film-1", *seq);
  auto jobs = MakeJobs(d);
  ASSERT_TRUE(store.SaveNewDelivery(d, jobs).ok());

  jobs[0].state = JobState::kRunning;
  jobs[0].attempts = 2;
  jobs[0].token = 42;
  jobs[0].worker = "w1";
  jobs[1].state = JobState::kFailed;
  jobs[1].error = "ffmpeg exited with code 1";
  jobs[1].result.set_error("boom");
  d.finished_ms = 99;
  ASSERT_TRUE(store.Save({&d}, {&jobs[0], &jobs[1]}).ok());

  // Restart Redis: the append-only file brings everything back.
  farm.Signal("redis", SIGKILL);
  ASSERT_TRUE(farm.StartRedis().ok());
  // The client's old connection died with the server: the first call reports
  // it, the next ones reconnect.
  ASSERT_TRUE(LocalFarm::WaitFor([&] { return redis.Ping().ok(); }, 10));

  std::vector<std::pair<DeliveryRecord, std::vector<JobRecord>>> loaded;
  ASSERT_TRUE(store.LoadAll(&loaded).ok());
  ASSERT_EQ(loaded.size(), 1u);
  const auto& [ld, lj] = loaded[0];
  EXPECT_EQ(ld.id, "film-1");
  EXPECT_EQ(ld.priority, 70);
  EXPECT_EQ(ld.finished_ms, 99);
  ASSERT_EQ(lj.size(), 2u);
  // The job comes back whole in its payload (a state update does not rewrite
  // it), its summary without the argv.
  EXPECT_EQ(UnpackJob(lj[0]).argv(2), std::string("binary\0safe", 11));
  EXPECT_EQ(lj[0].job.id(), "film-1.j0");
  EXPECT_EQ(lj[0].job.argv_size(), 0);
  EXPECT_EQ(lj[0].state, JobState::kRunning);
  EXPECT_EQ(lj[0].token, 42u);
  EXPECT_EQ(lj[0].attempts, 2);
  EXPECT_EQ(lj[0].worker, "w1");
  EXPECT_EQ(lj[1].state, JobState::kFailed);
  EXPECT_EQ(lj[1].error, "ffmpeg exited with code 1");
  EXPECT_EQ(lj[1].result.error(), "boom");
  auto next = store.NextSeq();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, *seq + 1);
  auto block = store.ReserveSeqs(64);
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(*block, *next + 64) << "the last number of a block of 64 after the last one used";
}

TEST(JobStore, ReportsUnavailableWhenRedisIsDown) {
  LocalFarm farm(LocalFarmOptions{});
  RedisEndpoint ep;
  ep.port = farm.redis_port();  // nothing listens there yet
  RedisClient redis(ep, 500);
  JobStore store(&redis);
  auto seq = store.NextSeq();
  EXPECT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), Status::Code::kUnavailable);
}

// The coordinator lease as the store's fence: writes go through only for
// the holder; a lease found free is taken back only by a holder nobody
// succeeded since; a second coordinator waits.
TEST(JobStore, WritesAreFencedByTheCoordinatorLease) {
  LocalFarm farm(LocalFarmOptions{});
  ASSERT_TRUE(farm.StartRedis().ok());
  RedisEndpoint ep;
  ep.port = farm.redis_port();
  RedisClient redis_a(ep, 2000), redis_b(ep, 2000), admin(ep, 2000);
  LeaseOptions lease;
  lease.ttl = std::chrono::milliseconds(60000);  // expiry is the test's to cause (DEL)
  LeaderLease a(&redis_a, lease, "a"), b(&redis_b, lease, "b");
  ASSERT_TRUE(*a.TryAcquire());
  EXPECT_EQ(a.epoch(), 1u);
  EXPECT_FALSE(*b.TryAcquire()) << "one holder at a time";
  EXPECT_EQ(*b.Holder(), "a");

  JobStore store_a(&redis_a), store_b(&redis_b);
  store_a.set_fence(a.fence());
  store_b.set_fence(b.fence());
  DeliveryRecord d = MakeDelivery("film-1", 1);
  ASSERT_TRUE(store_a.SaveNewDelivery(d, MakeJobs(d)).ok());
  Status twice = store_a.SaveNewDelivery(d, MakeJobs(d));
  EXPECT_EQ(twice.code(), Status::Code::kFailedPrecondition)
      << "an id is never overwritten: " << twice.ToString();
  DeliveryRecord other = MakeDelivery("film-2", 2);
  Status fenced = store_b.SaveNewDelivery(other, MakeJobs(other));
  EXPECT_EQ(fenced.code(), Status::Code::kUnavailable) << fenced.ToString();
  EXPECT_NE(fenced.message().find("held by a"), std::string::npos) << fenced.message();
  auto exists = admin.Command({"EXISTS", "rf:d:film-2"});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->integer, 0) << "nothing of a fenced write reached Redis";

  // a's lease expires (Redis away): nobody took it, so a's next write or
  // renewal takes it back.
  ASSERT_TRUE(admin.Command({"DEL", "rf:leader"}).ok());
  EXPECT_EQ(*a.Renew(), LeaderLease::Renewal::kReclaimed);
  EXPECT_EQ(*a.Renew(), LeaderLease::Renewal::kHeld);
  ASSERT_TRUE(admin.Command({"DEL", "rf:leader"}).ok());
  EXPECT_TRUE(store_a.Save({&d}, {}).ok()) << "the write took the lease back";
  EXPECT_EQ(*a.Holder(), "a");

  // Now b takes over while a is away; a, back, can neither write nor renew.
  ASSERT_TRUE(admin.Command({"DEL", "rf:leader"}).ok());
  ASSERT_TRUE(*b.TryAcquire());
  EXPECT_EQ(b.epoch(), 2u);
  store_b.set_fence(b.fence());
  EXPECT_EQ(store_a.Save({&d}, {}).code(), Status::Code::kUnavailable);
  EXPECT_EQ(*a.Renew(), LeaderLease::Renewal::kTaken);
  // Even once b's lease is gone too: b led after a's epoch.
  ASSERT_TRUE(admin.Command({"DEL", "rf:leader"}).ok());
  EXPECT_EQ(store_a.Save({&d}, {}).code(), Status::Code::kUnavailable);
  EXPECT_EQ(*a.Renew(), LeaderLease::Renewal::kTaken);
  EXPECT_TRUE(store_b.Save({&other}, {}).ok());
  b.Release();
  EXPECT_EQ(*b.Holder(), "");
}

// A fenced write leaves the lease watched and read for the next one on its
// connection (one round trip instead of two); a lease taken in between by
// another coordinator, with nothing else said on that connection, still
// stops the next write whole.
TEST(JobStore, AWriteFromTheArmedReadIsStillFenced) {
  LocalFarm farm(LocalFarmOptions{});
  ASSERT_TRUE(farm.StartRedis().ok());
  RedisEndpoint ep;
  ep.port = farm.redis_port();
  RedisClient lease_conn(ep, 2000), writes(ep, 2000), admin(ep, 2000);
  LeaseOptions lease;
  lease.ttl = std::chrono::milliseconds(60000);
  LeaderLease a(&lease_conn, lease, "a");
  ASSERT_TRUE(*a.TryAcquire());
  JobStore store(&writes);
  store.set_fence(a.fence());
  auto watches = [&] {
    auto info = admin.Command({"INFO", "commandstats"});
    const std::string& text = info->str;
    auto at = text.find("cmdstat_watch:calls=");
    return at == std::string::npos ? 0L : std::stol(text.substr(at + 20));
  };
  DeliveryRecord d = MakeDelivery("film-1", 1);
  ASSERT_TRUE(store.SaveNewDelivery(d, MakeJobs(d)).ok());
  const long before = watches();
  for (int i = 0; i < 5; ++i) {
    d.priority = 10 + i;
    ASSERT_TRUE(store.Save({&d}, {}).ok());
  }
  // Each write re-arms once; none reads the lease before its EXEC.
  EXPECT_EQ(watches() - before, 5);
  auto priority = admin.Command({"HGET", "rf:d:film-1", "priority"});
  EXPECT_EQ(priority->str, "14");

  // Another coordinator's lease, taken after the armed read.
  ASSERT_TRUE(admin.Command({"SET", "rf:leader", "b"}).ok());
  d.priority = 99;
  Status fenced = store.Save({&d}, {});
  EXPECT_EQ(fenced.code(), Status::Code::kUnavailable) << fenced.ToString();
  EXPECT_NE(fenced.message().find("held by b"), std::string::npos) << fenced.message();
  priority = admin.Command({"HGET", "rf:d:film-1", "priority"});
  EXPECT_EQ(priority->str, "14") << "nothing of the fenced write reached Redis";

  // Another command in between ends the armed WATCH; the lease back with
  // a, the next write reads it afresh and goes through.
  ASSERT_TRUE(admin.Command({"SET", "rf:leader", "a"}).ok());
  ASSERT_TRUE(writes.Command({"PING"}).ok());
  ASSERT_TRUE(store.Save({&d}, {}).ok());
  priority = admin.Command({"HGET", "rf:d:film-1", "priority"});
  EXPECT_EQ(priority->str, "99");
}

}  // namespace
}  // namespace reelfarm::testing
