#include "common/redis_client.h"

#include <hiredis/hiredis.h>

#include <charconv>

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

namespace {

// KEYS[1] the fence, ARGV[1] its owner, ARGV[2] a key that must not exist
// (""), ARGV[3] the epoch key, ARGV[4] the owner's epoch, ARGV[5] the
// lease's ttl in ms, then each command as its length and its arguments.
constexpr char kFencedScript[] = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  if holder then return redis.error_reply('FENCED ' .. holder) end
  local epoch = tonumber(redis.call('GET', ARGV[3]) or '0')
  if epoch > tonumber(ARGV[4]) then return redis.error_reply('FENCED free since epoch ' .. epoch) end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5])
  if epoch < tonumber(ARGV[4]) then redis.call('SET', ARGV[3], ARGV[4]) end
end
if ARGV[2] ~= '' and redis.call('EXISTS', ARGV[2]) == 1 then
  return redis.error_reply('EXISTS ' .. ARGV[2])
end
local i = 6
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 'OK'
)lua";

}  // namespace

Status RedisClient::FencedTransaction(const Fence& fence, const std::string& must_not_exist,
                                      const std::vector<std::vector<std::string>>& commands) {
  std::vector<std::string> args = {"EVAL",
                                   kFencedScript,
                                   "1",
                                   fence.key,
                                   fence.owner,
                                   must_not_exist,
                                   fence.epoch_key,
                                   std::to_string(fence.epoch),
                                   std::to_string(fence.ttl_ms)};
  for (const auto& c : commands) {
    args.push_back(std::to_string(c.size()));
    args.insert(args.end(), c.begin(), c.end());
  }
  auto r = Command(args);
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kError) return Status::OK();
  if (r->str.rfind("FENCED", 0) == 0) {
    return Status::Unavailable("not the active coordinator: the lease " + fence.key + " is " +
                               (r->str.size() > 7 ? "held by " + r->str.substr(7) : "lost"));
  }
  // An error reply's first word is its code (Redis adds "ERR " to one without).
  if (r->str.rfind("EXISTS ", 0) == 0) {
    return Status::FailedPrecondition(must_not_exist + " already exists");
  }
  return Status::Internal("redis fenced transaction: " + r->str);
}

Status RedisClient::Ping() {
  auto r = Command({"PING"});
  if (!r.ok()) return r.status();
  if (r->type == RedisReply::Type::kError) return Status::Unavailable("redis: " + r->str);
  return Status::OK();
}

}  // namespace reelfarm
