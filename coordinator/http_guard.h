// The coordinator's HTTP server, hardened against slow and oversized
// clients (issue 12): cpp-httplib's Server (thread per connection) with its
// own connection loop.
//
// - Each request must arrive whole (request line, headers and body) within
//   `request_timeout` of its first byte; a client trickling header lines to
//   hold a thread is cut off then (httplib alone only bounds each read).
// - Headers are limited to `max_header_bytes`, bodies to `max_body_bytes`:
//   a declared Content-Length above it is answered 413 at once, before any
//   of the body is read; a chunked body is cut off past the limit.
// - An idle kept-alive connection is closed after `keep_alive_timeout`.
// - One client address may hold at most `max_connections_per_client`
//   connections; further ones get 503 and are closed.
// - `threads` connections are served at once (the rest wait their turn).
#ifndef REELFARM_COORDINATOR_HTTP_GUARD_H_
#define REELFARM_COORDINATOR_HTTP_GUARD_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace reelfarm {

struct HttpLimits {
  int threads = 64;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{5000};
  int keep_alive_max_requests = 100;
  std::chrono::milliseconds write_timeout{5000};
  size_t max_header_bytes = 64 << 10;
  size_t max_body_bytes = 4 << 20;
  int max_connections_per_client = 32;
};

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(HttpLimits limits);

  // Runs after the guard's own checks (the body has not been read yet).
  void SetPreRoutingHandler(HandlerWithResponse handler);

  const HttpLimits& limits() const { return limits_; }
  // What the guard refused so far.
  int64_t requests_timed_out() const { return timed_out_.load(); }
  int64_t requests_too_large() const { return too_large_.load(); }
  int64_t connections_refused() const { return refused_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // False when `ip` already holds its share of connections.
  bool AcquireClientSlot(const std::string& ip);
  void ReleaseClientSlot(const std::string& ip);
  // The 413 answer (and the connection closed after it) when the request
  // declares a body over the limit; true when it did.
  bool RefuseOversized(const httplib::Request& req, httplib::Response& res);

  HttpLimits limits_;
  HandlerWithResponse user_pre_routing_;
  std::mutex clients_mu_;
  std::map<std::string, int> clients_;  // address -> open connections
  std::atomic<int64_t> timed_out_{0};
  std::atomic<int64_t> too_large_{0};
  std::atomic<int64_t> refused_{0};
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_HTTP_GUARD_H_
