#include "coordinator/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace reelfarm {
namespace {

using Clock = std::chrono::steady_clock;

// The connection's stream: every read is bounded by the current request's
// deadline (not only by a per-read timeout), and by the bytes a request may
// take: headers until the pre-routing handler sees them, then the body.
class GuardStream : public httplib::Stream {
 public:
  GuardStream(int sock, const HttpLimits& limits) : sock_(sock), limits_(limits) {
    buf_.resize(4096);
  }

  // A new request starts: its whole reading must end by now + timeout.
  void StartRequest() {
    deadline_ = Clock::now() + limits_.request_timeout;
    in_headers_ = true;
    delivered_ = 0;
    timed_out_ = false;
  }
  // The headers are in: from here on the body's limit applies.
  void EndHeaders() {
    in_headers_ = false;
    delivered_ = 0;
  }
  bool timed_out() const { return timed_out_; }
  bool HasBuffered() const { return off_ < len_; }

  bool is_readable() const override { return HasBuffered() || WaitFor(POLLIN, Remaining()) > 0; }
  bool is_writable() const override { return WaitFor(POLLOUT, limits_.write_timeout) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    const size_t limit =
        in_headers_ ? limits_.max_header_bytes
                    : limits_.max_body_bytes + 64 * 1024;  // chunked framing on top of the body
    if (delivered_ >= limit) return -1;
    size = std::min(size, limit - delivered_);
    if (!HasBuffered()) {
      auto remaining = Remaining();
      if (remaining <= std::chrono::milliseconds::zero()) {
        timed_out_ = true;
        return -1;
      }
      int ready = WaitFor(POLLIN, remaining);
      if (ready <= 0) {
        if (ready == 0) timed_out_ = true;
        return -1;
      }
      ssize_t n;
      do {
        n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    size_t n = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_.data() + off_, n);
    off_ += n;
    delivered_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (WaitFor(POLLOUT, limits_.write_timeout) <= 0) return -1;
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(false, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  std::chrono::milliseconds Remaining() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  }

  int WaitFor(short events, std::chrono::milliseconds timeout) const {
    if (timeout < std::chrono::milliseconds::zero()) timeout = std::chrono::milliseconds::zero();
    pollfd p{sock_, events, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (r < 0 && errno == EINTR);
    return r;
  }

  void Address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    int r = remote ? getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len)
                   : getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len);
    ip.clear();
    port = 0;
    if (r != 0) return;
    char text[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  int sock_;
  const HttpLimits& limits_;
  std::vector<char> buf_;
  size_t off_ = 0, len_ = 0;
  Clock::time_point deadline_{};
  bool in_headers_ = true;
  size_t delivered_ = 0;
  bool timed_out_ = false;
};

// The request being served on this thread (httplib runs a connection's
// requests and their handlers on one pool thread).
thread_local GuardStream* tls_stream = nullptr;
thread_local bool tls_close_after = false;

std::string PeerAddress(int sock) {
  GuardStream probe(sock, HttpLimits{});
  std::string ip;
  int port = 0;
  probe.get_remote_ip_and_port(ip, port);
  return ip;
}

bool WaitReadable(int sock, std::chrono::milliseconds timeout,
                  const std::atomic<socket_t>& server_socket) {
  // In slices, so a stopping server does not wait out a kept-alive client.
  const auto end = Clock::now() + timeout;
  while (server_socket != INVALID_SOCKET) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left <= std::chrono::milliseconds::zero()) return false;
    pollfd p{sock, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
  return false;
}

// After refusing a request whose body is still coming: stop writing, read
// and drop what the client already sent (briefly), so closing does not reset
// the connection before the client has read the answer.
void CloseGently(int sock) {
  ::shutdown(sock, SHUT_WR);
  char scratch[16384];
  const auto end = Clock::now() + std::chrono::milliseconds(500);
  size_t dropped = 0;
  while (Clock::now() < end && dropped < (1u << 20)) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) break;
    ssize_t n = ::recv(sock, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n <= 0) break;
    dropped += static_cast<size_t>(n);
  }
}

const char kBusyReply[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Content-Length: 52\r\nConnection: close\r\n\r\n"
    "{\"error\": \"too many connections from this address\"}";

}  // namespace

GuardedHttpServer::GuardedHttpServer(HttpLimits limits) : limits_(limits) {
  if (limits_.threads < 1) limits_.threads = 1;
  if (limits_.keep_alive_max_requests < 1) limits_.keep_alive_max_requests = 1;
  const size_t threads = static_cast<size_t>(limits_.threads);
  new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  set_payload_max_length(limits_.max_body_bytes);
  set_keep_alive_max_count(static_cast<size_t>(limits_.keep_alive_max_requests));
  set_keep_alive_timeout(std::max<time_t>(1, limits_.keep_alive_timeout.count() / 1000));
  Server::set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (tls_stream != nullptr) tls_stream->EndHeaders();
    if (RefuseOversized(req, res)) return HandlerResponse::Handled;
    return user_pre_routing_ ? user_pre_routing_(req, res) : HandlerResponse::Unhandled;
  });
  set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    return RefuseOversized(req, res) ? 413 : 100;
  });
}

void GuardedHttpServer::SetPreRoutingHandler(HandlerWithResponse handler) {
  user_pre_routing_ = std::move(handler);
}

bool GuardedHttpServer::RefuseOversized(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_header("Content-Length")) return false;
  const std::string& text = req.get_header_value("Content-Length");
  unsigned long long declared = 0;
  bool bad = text.empty() || text.size() > 19;
  for (char c : text) {
    if (c < '0' || c > '9') {
      bad = true;
      break;
    }
    if (!bad) declared = declared * 10 + static_cast<unsigned>(c - '0');
  }
  if (!bad && declared <= limits_.max_body_bytes) return false;
  ++too_large_;
  tls_close_after = true;
  res.status = bad ? 400 : 413;
  res.set_header("Connection", "close");
  res.set_content(bad ? std::string("{\"error\": \"bad Content-Length\"}\n")
                      : "{\"error\": \"the body is larger than this server accepts (" +
                            std::to_string(limits_.max_body_bytes) + " bytes)\"}\n",
                  "application/json");
  return true;
}

bool GuardedHttpServer::AcquireClientSlot(const std::string& ip) {
  std::lock_guard<std::mutex> lock(clients_mu_);
  int& n = clients_[ip];
  if (limits_.max_connections_per_client > 0 && n >= limits_.max_connections_per_client) {
    if (n == 0) clients_.erase(ip);
    return false;
  }
  ++n;
  return true;
}

void GuardedHttpServer::ReleaseClientSlot(const std::string& ip) {
  std::lock_guard<std::mutex> lock(clients_mu_);
  auto it = clients_.find(ip);
  if (it != clients_.end() && --it->second <= 0) clients_.erase(it);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  const std::string ip = PeerAddress(sock);
  if (!AcquireClientSlot(ip)) {
    ++refused_;
    (void)::send(sock, kBusyReply, sizeof(kBusyReply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    CloseGently(sock);
    ::close(sock);
    return false;
  }
  GuardStream strm(sock, limits_);
  bool ret = false;
  tls_close_after = false;
  for (int left = limits_.keep_alive_max_requests; left > 0; --left) {
    if (!strm.HasBuffered() && !WaitReadable(sock, limits_.keep_alive_timeout, svr_sock_)) break;
    strm.StartRequest();
    tls_stream = &strm;
    bool connection_closed = false;
    ret = process_request(strm, left == 1, connection_closed, nullptr);
    tls_stream = nullptr;
    if (strm.timed_out()) ++timed_out_;
    if (!ret || connection_closed || tls_close_after || strm.timed_out()) break;
  }
  if (tls_close_after) CloseGently(sock);
  tls_close_after = false;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  ReleaseClientSlot(ip);
  return ret;
}

}  // namespace reelfarm
