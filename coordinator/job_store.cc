#include "coordinator/job_store.h"

#include <algorithm>
#include <map>

#include "common/secure.h"

namespace reelfarm {
namespace {

std::map<std::string, std::string> HashFromReply(const RedisReply& r) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].str] = r.elements[i + 1].str;
  }
  return out;
}

int64_t ToInt(const std::map<std::string, std::string>& h, const std::string& key) {
  auto it = h.find(key);
  if (it == h.end() || it->second.empty()) return 0;
  try {
    return std::stoll(it->second);
  } catch (...) {
    return 0;
  }
}

std::string Get(const std::map<std::string, std::string>& h, const std::string& key) {
  auto it = h.find(key);
  return it == h.end() ? std::string() : it->second;
}

std::string JoinLines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += item + "\n";
  return out;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (nl > start) out.push_back(text.substr(start, nl - start));
  }
  return out;
}

}  // namespace

JobStore::JobStore(RedisClient* redis, std::string prefix)
    : redis_(redis), prefix_(std::move(prefix)) {}

StatusOr<uint64_t> JobStore::NextSeq() { return ReserveSeqs(1); }

StatusOr<uint64_t> JobStore::ReserveSeqs(uint64_t n) {
  auto r = redis_->Command({"INCRBY", prefix_ + "seq", std::to_string(n)});
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kInteger) return Status::Internal("INCRBY: " + r->str);
  return static_cast<uint64_t>(r->integer);
}

std::vector<std::string> JobStore::DeliveryCommand(const DeliveryRecord& d) const {
  return {"HSET",        prefix_ + "d:" + d.id,
          "name",        d.name,
          "spec_file",   d.spec_file,
          "output_dir",  d.output_dir,
          "priority",    std::to_string(d.priority),
          "seq",         std::to_string(d.seq),
          "created_ms",  std::to_string(d.created_ms),
          "finished_ms", std::to_string(d.finished_ms),
          "cancelled",   d.cancelled ? "1" : "0",
          "finished",    d.finished ? "1" : "0",
          "plan",        d.plan.SerializeAsString(),
          "job_ids",     JoinLines(d.job_ids)};
}

std::vector<std::string> JobStore::JobCommand(const JobRecord& j, bool with_payload) const {
  std::vector<std::string> cmd = {"HSET",        prefix_ + "j:" + j.job.id(),
                                  "delivery",    j.delivery_id,
                                  "priority",    std::to_string(j.priority),
                                  "seq",         std::to_string(j.seq),
                                  "state",       JobStateName(j.state),
                                  "attempts",    std::to_string(j.attempts),
                                  "token",       std::to_string(j.token),
                                  "attempt_key", HexBytes(j.attempt_key),
                                  "worker",      j.worker,
                                  "error",       j.error,
                                  "log_tail",    j.log_tail,
                                  "result",      j.result.SerializeAsString()};
  if (j.max_threads > 0) {
    cmd.push_back("max_threads");
    cmd.push_back(std::to_string(j.max_threads));
  }
  cmd.push_back("on_gpu");
  cmd.push_back(j.on_gpu ? "1" : "0");
  if (with_payload) {
    cmd.push_back("job");
    cmd.push_back(j.payload.empty() ? j.job.SerializeAsString() : j.Payload());
  }
  return cmd;
}

StatusOr<std::string> JobStore::EnsureEpoch(const std::string& proposed) {
  auto set = redis_->Command({"SET", prefix_ + "epoch", proposed, "NX"});
  if (!set.ok()) return set.status();
  if (set->type == RedisReply::Type::kError) return Status::Unavailable("SET epoch: " + set->str);
  return ReadEpoch();
}

StatusOr<std::string> JobStore::ReadEpoch() {
  auto r = redis_->Command({"GET", prefix_ + "epoch"});
  if (!r.ok()) return r.status();
  if (r->type == RedisReply::Type::kError) return Status::Unavailable("GET epoch: " + r->str);
  return r->type == RedisReply::Type::kString ? r->str : std::string();
}

Status JobStore::ProbeWrite(int64_t now_ms) {
  auto r = redis_->Command({"SET", prefix_ + "healthz", std::to_string(now_ms), "PX", "60000"});
  if (!r.ok()) return r.status();
  if (r->type == RedisReply::Type::kError)
    return Status::Unavailable("redis refuses writes: " + r->str);
  return Status::OK();
}

StatusOr<bool> JobStore::DeliveryExists(const std::string& id) {
  auto r = redis_->Command({"EXISTS", prefix_ + "d:" + id});
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kInteger) return Status::Unavailable("EXISTS: " + r->str);
  return r->integer != 0;
}

Status JobStore::SaveNewDelivery(const DeliveryRecord& d, const std::vector<JobRecord>& jobs) {
  // An id is never reused: were Redis' sequence to go backwards (it lost its
  // data), an existing delivery would be overwritten.
  const std::string key = prefix_ + "d:" + d.id;
  if (!fence_.key.empty()) {
    std::vector<std::vector<std::string>> cmds;
    cmds.push_back(DeliveryCommand(d));
    for (const auto& j : jobs) cmds.push_back(JobCommand(j, true));
    cmds.push_back({"SADD", prefix_ + "deliveries", d.id});
    Status s = Write(cmds, key);
    if (s.code() == Status::Code::kFailedPrecondition) {
      return Status::FailedPrecondition("delivery id " + d.id + " already exists in redis");
    }
    return s;
  }
  auto watched = redis_->Command({"WATCH", key});
  if (!watched.ok()) return watched.status();
  auto exists = DeliveryExists(d.id);
  if (!exists.ok() || *exists) {
    (void)redis_->Command({"UNWATCH"});
    if (!exists.ok()) return exists.status();
    return Status::FailedPrecondition("delivery id " + d.id + " already exists in redis");
  }
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(DeliveryCommand(d));
  for (const auto& j : jobs) cmds.push_back(JobCommand(j, true));
  cmds.push_back({"SADD", prefix_ + "deliveries", d.id});
  auto r = redis_->Transaction(cmds);
  return r.status();
}

Status JobStore::Save(const std::vector<const DeliveryRecord*>& deliveries,
                      const std::vector<const JobRecord*>& jobs,
                      const std::set<std::string>& rewritten) {
  if (deliveries.empty() && jobs.empty()) return Status::OK();
  std::vector<std::vector<std::string>> cmds;
  for (const auto* d : deliveries) cmds.push_back(DeliveryCommand(*d));
  for (const auto* j : jobs) cmds.push_back(JobCommand(*j, rewritten.count(j->job.id()) > 0));
  return Write(cmds);
}

Status JobStore::Write(const std::vector<std::vector<std::string>>& cmds,
                       const std::string& must_not_exist) {
  if (fence_.key.empty()) return redis_->Transaction(cmds).status();
  return redis_->FencedTransaction(fence_, must_not_exist, cmds);
}

Status JobStore::SaveQuarantine(const std::map<std::string, std::string>& changes) {
  if (changes.empty()) return Status::OK();
  std::vector<std::vector<std::string>> cmds;
  for (const auto& [name, reason] : changes) {
    if (reason.empty()) {
      cmds.push_back({"HDEL", prefix_ + "quarantine", name});
    } else {
      cmds.push_back({"HSET", prefix_ + "quarantine", name, reason});
    }
  }
  return Write(cmds);
}

Status JobStore::LoadQuarantine(std::map<std::string, std::string>* out) {
  auto r = redis_->Command({"HGETALL", prefix_ + "quarantine"});
  if (!r.ok()) return r.status();
  *out = HashFromReply(*r);
  return Status::OK();
}

Status JobStore::LoadAll(std::vector<std::pair<DeliveryRecord, std::vector<JobRecord>>>* out) {
  out->clear();
  auto ids = redis_->Command({"SMEMBERS", prefix_ + "deliveries"});
  if (!ids.ok()) return ids.status();
  for (const auto& idr : ids->elements) {
    auto h = redis_->Command({"HGETALL", prefix_ + "d:" + idr.str});
    if (!h.ok()) return h.status();
    auto hash = HashFromReply(*h);
    DeliveryRecord d;
    d.id = idr.str;
    d.name = Get(hash, "name");
    d.spec_file = Get(hash, "spec_file");
    d.output_dir = Get(hash, "output_dir");
    d.priority = static_cast<int>(ToInt(hash, "priority"));
    d.seq = static_cast<uint64_t>(ToInt(hash, "seq"));
    d.created_ms = ToInt(hash, "created_ms");
    d.finished_ms = ToInt(hash, "finished_ms");
    d.cancelled = Get(hash, "cancelled") == "1";
    d.finished = Get(hash, "finished") == "1";
    if (!d.plan.ParseFromString(Get(hash, "plan"))) {
      return Status::Internal("corrupt plan in redis for delivery " + d.id);
    }
    // The job ids (a split group adds some); older records: the plan's jobs.
    std::vector<std::string> job_ids = SplitLines(Get(hash, "job_ids"));
    if (job_ids.empty()) {
      for (const auto& job : d.plan.jobs()) job_ids.push_back(job.id());
    }
    DropPlanJobs(&d.plan);  // the job records hold them
    std::vector<std::vector<std::string>> cmds;
    for (const auto& jid : job_ids) cmds.push_back({"HGETALL", prefix_ + "j:" + jid});
    auto replies = redis_->Pipeline(cmds);
    if (!replies.ok()) return replies.status();
    std::vector<JobRecord> jobs;
    for (const auto& jr : replies.value()) {
      auto jh = HashFromReply(jr);
      JobRecord j;
      j.payload = Get(jh, "job");
      if (j.payload.empty() || !j.job.ParseFromString(j.payload)) {
        return Status::Internal("corrupt job in redis for delivery " + d.id);
      }
      PackJob(&j);
      j.delivery_id = Get(jh, "delivery");
      j.priority = static_cast<int>(ToInt(jh, "priority"));
      j.seq = static_cast<uint64_t>(ToInt(jh, "seq"));
      if (!ParseJobState(Get(jh, "state"), &j.state)) {
        return Status::Internal("bad job state in redis for " + j.job.id());
      }
      j.attempts = static_cast<int>(ToInt(jh, "attempts"));
      j.token = static_cast<uint64_t>(ToInt(jh, "token"));
      j.attempt_key = UnhexBytes(Get(jh, "attempt_key"));
      j.worker = Get(jh, "worker");
      j.error = Get(jh, "error");
      j.log_tail = Get(jh, "log_tail");
      j.result.ParseFromString(Get(jh, "result"));
      j.max_threads = static_cast<int>(ToInt(jh, "max_threads"));
      j.on_gpu = ToInt(jh, "on_gpu") != 0;
      jobs.push_back(std::move(j));
    }
    out->emplace_back(std::move(d), std::move(jobs));
  }
  std::sort(out->begin(), out->end(),
            [](const auto& a, const auto& b) { return a.first.seq < b.first.seq; });
  return Status::OK();
}

}  // namespace reelfarm
