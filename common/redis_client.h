// A small synchronous Redis client over hiredis that reconnects after errors.
#ifndef REELFARM_COMMON_REDIS_CLIENT_H_
#define REELFARM_COMMON_REDIS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct redisContext;

namespace reelfarm {

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<RedisReply> elements;
  bool is_nil() const { return type == Type::kNil; }
};

// redis://[[user]:password@]host:port[/db]
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
StatusOr<RedisEndpoint> ParseRedisUrl(const std::string& url);

// Not thread-safe: one per thread, or guard with a mutex. After any I/O or
// protocol error the hiredis context is dropped and the next call reconnects
// (hiredis cannot reuse a context after an error).
class RedisClient {
 public:
  explicit RedisClient(RedisEndpoint endpoint, int timeout_ms = 5000);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // One command; a Redis error reply is returned as a reply of type kError
  // (an OK Status), a connection problem as Status::Unavailable.
  StatusOr<RedisReply> Command(const std::vector<std::string>& args);

  // Sends all commands in one round trip and returns their replies in order.
  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // Like Pipeline but wrapped in MULTI/EXEC: all or nothing. Returns the
  // EXEC reply's elements. Any error reply inside is a Status::Internal.
  StatusOr<std::vector<RedisReply>> Transaction(
      const std::vector<std::vector<std::string>>& commands);

  // A transaction that runs only while `fence.key` holds `fence.owner`
  // (WATCH of the lease, read, MULTI/EXEC; retried when the lease's own
  // renewal touched it in between). A successful one WATCHes and reads the
  // lease again in its own round trip, after its EXEC: the next one on this
  // connection (no other command in between, no `must_not_exist`) starts
  // from that read, one round trip instead of two. Any other command first
  // ends that WATCH.
  // A lease found free is taken back first when nobody took it since
  // `fence.epoch` (epoch_key not above it; restored when Redis lost it).
  // Unavailable naming the holder when it is another's (docs/operations.md),
  // FailedPrecondition when `must_not_exist` ("" none) exists. Error
  // replies inside are Internal.
  struct Fence {
    std::string key;
    std::string owner;
    std::string epoch_key;
    uint64_t epoch = 0;
    int64_t ttl_ms = 0;
  };
  Status FencedTransaction(const Fence& fence, const std::string& must_not_exist,
                           const std::vector<std::vector<std::string>>& commands);

  Status Ping();

 private:
  Status EnsureConnected();
  void Drop();
  // Pipeline without ending an armed fence's WATCH.
  StatusOr<std::vector<RedisReply>> RawPipeline(
      const std::vector<std::vector<std::string>>& commands);

  RedisEndpoint endpoint_;
  int timeout_ms_;
  redisContext* ctx_ = nullptr;
  // The lease and its epoch as read after the last fenced EXEC, under a
  // WATCH still in place on this connection.
  struct ArmedFence {
    std::string key;
    std::string epoch_key;
    RedisReply holder;
    RedisReply epoch;
  };
  std::optional<ArmedFence> armed_;
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_REDIS_CLIENT_H_
