#include "common/redis_client.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <cstdlib>

namespace reelfarm {
namespace {

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

void Append(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(ctx, static_cast<int>(args.size()), argv.data(), lens.data());
}

}  // namespace

StatusOr<RedisEndpoint> ParseRedisUrl(const std::string& url) {
  const std::string kScheme = "redis://";
  if (url.rfind(kScheme, 0) != 0) {
    return Status::InvalidArgument("redis URL must start with redis:// (got '" + url + "')");
  }
  RedisEndpoint ep;
  std::string rest = url.substr(kScheme.size());
  auto at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    if (colon == std::string::npos) {
      ep.password = cred;
    } else {
      ep.user = cred.substr(0, colon);
      ep.password = cred.substr(colon + 1);
    }
  }
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), ep.db);
      if (ec != std::errc() || p != db.data() + db.size() || ep.db < 0) {
        return Status::InvalidArgument("redis URL has a bad database number: " + db);
      }
    }
  }
  auto colon = rest.rfind(':');
  if (colon != std::string::npos) {
    std::string port = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), ep.port);
    if (ec != std::errc() || p != port.data() + port.size() || ep.port <= 0 || ep.port > 65535) {
      return Status::InvalidArgument("redis URL has a bad port: " + port);
    }
  }
  if (!rest.empty()) ep.host = rest;
  return ep;
}

RedisClient::RedisClient(RedisEndpoint endpoint, int timeout_ms)
    : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

RedisClient::~RedisClient() { Drop(); }

void RedisClient::Drop() {
  armed_.reset();  // a WATCH does not outlive its connection
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

Status RedisClient::EnsureConnected() {
  if (ctx_ != nullptr) return Status::OK();
  timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
  redisContext* c = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv);
  if (c == nullptr) return Status::Unavailable("cannot allocate redis context");
  if (c->err) {
    std::string msg = "cannot connect to redis at " + endpoint_.host + ":" +
                      std::to_string(endpoint_.port) + ": " + c->errstr;
    redisFree(c);
    return Status::Unavailable(msg);
  }
  redisSetTimeout(c, tv);
  ctx_ = c;
  auto setup = [&](const std::vector<std::string>& args) -> Status {
    auto r = Command(args);
    if (!r.ok()) return r.status();
    if (r->type == RedisReply::Type::kError) {
      Drop();
      return Status::Unavailable("redis refused " + args[0] + ": " + r->str);
    }
    return Status::OK();
  };
  if (!endpoint_.password.empty()) {
    Status s = endpoint_.user.empty() ? setup({"AUTH", endpoint_.password})
                                      : setup({"AUTH", endpoint_.user, endpoint_.password});
    if (!s.ok()) return s;
  }
  if (endpoint_.db != 0) {
    Status s = setup({"SELECT", std::to_string(endpoint_.db)});
    if (!s.ok()) return s;
  }
  return Status::OK();
}

StatusOr<RedisReply> RedisClient::Command(const std::vector<std::string>& args) {
  auto replies = Pipeline({args});
  if (!replies.ok()) return replies.status();
  return std::move(replies.value()[0]);
}

StatusOr<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  if (!armed_) return RawPipeline(commands);
  // An armed fence's WATCH would make this one's own EXEC fail, or be
  // ended by it: ended here, in the same round trip.
  armed_.reset();
  std::vector<std::vector<std::string>> all;
  all.reserve(commands.size() + 1);
  all.push_back({"UNWATCH"});
  all.insert(all.end(), commands.begin(), commands.end());
  auto replies = RawPipeline(all);
  if (!replies.ok()) return replies.status();
  replies->erase(replies->begin());
  return replies;
}

StatusOr<std::vector<RedisReply>> RedisClient::RawPipeline(
    const std::vector<std::vector<std::string>>& commands) {
  Status s = EnsureConnected();
  if (!s.ok()) return s;
  for (const auto& cmd : commands) Append(ctx_, cmd);
  std::vector<RedisReply> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
      std::string msg =
          std::string("redis connection failed: ") + (ctx_->errstr[0] ? ctx_->errstr : "no reply");
      Drop();
      return Status::Unavailable(msg);
    }
    auto* reply = static_cast<redisReply*>(raw);
    out.push_back(Convert(reply));
    freeReplyObject(reply);
  }
  return out;
}

StatusOr<std::vector<RedisReply>> RedisClient::Transaction(
    const std::vector<std::vector<std::string>>& commands) {
  std::vector<std::vector<std::string>> all;
  all.reserve(commands.size() + 2);
  all.push_back({"MULTI"});
  for (const auto& c : commands) all.push_back(c);
  all.push_back({"EXEC"});
  auto replies = Pipeline(all);
  if (!replies.ok()) return replies.status();
  for (const auto& r : replies.value()) {
    if (r.type == RedisReply::Type::kError) return Status::Internal("redis transaction: " + r.str);
  }
  const RedisReply& exec = replies.value().back();
  if (exec.type != RedisReply::Type::kArray) return Status::Internal("redis transaction aborted");
  return exec.elements;
}

Status RedisClient::FencedTransaction(const Fence& fence, const std::string& must_not_exist,
                                      const std::vector<std::vector<std::string>>& commands) {
  // WATCH the lease (and its epoch, and the key that must not exist), read
  // them, then MULTI/EXEC: EXEC does nothing when any of them changed since
  // (another coordinator took the lease, or this one's own renewal touched
  // it: tried again). Two round trips of plain commands, one when the last
  // fenced EXEC left its WATCH and read armed: a Lua script doing the same
  // copies every argument into Lua and costs 40% of the farm's throughput
  // (bench/RESULTS.md).
  const std::vector<std::string> rearm_watch = {"WATCH", fence.key, fence.epoch_key};
  // No write follows: the WATCH ends here.
  auto give_up = [this](Status why) {
    (void)Command({"UNWATCH"});
    return why;
  };
  auto first_error = [](const std::vector<RedisReply>& replies) -> const RedisReply* {
    for (const auto& r : replies) {
      if (r.type == RedisReply::Type::kError) return &r;
    }
    return nullptr;
  };
  for (int tries = 0; tries < 8; ++tries) {
    RedisReply holder, epoch_reply;
    bool exists = false;
    if (armed_ && must_not_exist.empty() && armed_->key == fence.key &&
        armed_->epoch_key == fence.epoch_key) {
      holder = std::move(armed_->holder);
      epoch_reply = std::move(armed_->epoch);
      armed_.reset();  // the EXEC below ends its WATCH
    } else {
      std::vector<std::string> watch = rearm_watch;
      if (!must_not_exist.empty()) watch.push_back(must_not_exist);
      std::vector<std::vector<std::string>> read = {
          watch, {"GET", fence.key}, {"GET", fence.epoch_key}};
      if (!must_not_exist.empty()) read.push_back({"EXISTS", must_not_exist});
      // Pipeline: a WATCH armed for another fence is ended first.
      auto seen = Pipeline(read);
      if (!seen.ok()) return seen.status();
      if (const RedisReply* e = first_error(*seen)) {
        return give_up(Status::Internal("redis fenced transaction: " + e->str));
      }
      holder = std::move((*seen)[1]);
      epoch_reply = std::move((*seen)[2]);
      exists = !must_not_exist.empty() && (*seen)[3].integer != 0;
    }
    const uint64_t epoch = epoch_reply.type == RedisReply::Type::kString
                               ? std::strtoull(epoch_reply.str.c_str(), nullptr, 10)
                               : 0;
    std::vector<std::vector<std::string>> all = {{"MULTI"}};
    if (holder.type == RedisReply::Type::kString && holder.str != fence.owner) {
      return give_up(Status::Unavailable("not the active coordinator: the lease " + fence.key +
                                         " is held by " + holder.str));
    }
    if (holder.type != RedisReply::Type::kString) {
      // Free: ours again only if nobody took it since our epoch.
      if (epoch > fence.epoch) {
        return give_up(Status::Unavailable("not the active coordinator: the lease " + fence.key +
                                           " was held by another since epoch " +
                                           std::to_string(fence.epoch)));
      }
      all.push_back({"SET", fence.key, fence.owner, "PX", std::to_string(fence.ttl_ms)});
      if (epoch < fence.epoch) all.push_back({"SET", fence.epoch_key, std::to_string(fence.epoch)});
    }
    if (exists) return give_up(Status::FailedPrecondition(must_not_exist + " already exists"));
    all.insert(all.end(), commands.begin(), commands.end());
    all.push_back({"EXEC"});
    const size_t exec_at = all.size() - 1;
    // Armed for the next one: WATCH and read again after the EXEC.
    all.push_back(rearm_watch);
    all.push_back({"GET", fence.key});
    all.push_back({"GET", fence.epoch_key});
    auto replies = RawPipeline(all);
    if (!replies.ok()) return replies.status();
    if (const RedisReply* e = first_error(*replies)) {
      return give_up(Status::Internal("redis fenced transaction: " + e->str));
    }
    armed_ = ArmedFence{fence.key, fence.epoch_key, std::move((*replies)[exec_at + 2]),
                        std::move((*replies)[exec_at + 3])};
    if ((*replies)[exec_at].type == RedisReply::Type::kArray) return Status::OK();
    // EXEC did nothing: a watched key changed. Again, from the read that
    // followed it (unless a key must not exist: read afresh).
  }
  return Status::Unavailable("the coordinator lease kept changing during a write");
}

Status RedisClient::Ping() {
  auto r = Command({"PING"});
  if (!r.ok()) return r.status();
  if (r->type == RedisReply::Type::kError) return Status::Unavailable("redis: " + r->str);
  return Status::OK();
}

}  // namespace reelfarm
