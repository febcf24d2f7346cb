// systemd's notify protocol with the real daemons (deploy/systemd runs them
// Type=notify with WatchdogSec): a test socket stands in for systemd at
// $NOTIFY_SOCKET; each daemon says READY=1 once its ports listen, pings
// WATCHDOG=1 from its main loop at half $WATCHDOG_USEC, and says STOPPING=1
// on SIGTERM. Messages are told apart by the sender's pid (SO_PASSCRED).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

// A datagram socket at `path` that receives notifications with their
// sender's pid.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    int one = 1;
    ok_ = ok_ && ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0;
    timeval tv{0, 100000};  // receive waits at most 100 ms
    ok_ = ok_ && ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

  // Receives what arrives until `done` holds over everything received so
  // far, or `timeout_s` passes.
  bool ReceiveUntil(const std::function<bool()>& done, double timeout_s) {
    return LocalFarm::WaitFor(
        [&] {
          char data[4096];
          alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
          iovec iov{data, sizeof(data)};
          msghdr msg{};
          msg.msg_iov = &iov;
          msg.msg_iovlen = 1;
          msg.msg_control = control;
          msg.msg_controllen = sizeof(control);
          ssize_t n = ::recvmsg(fd_, &msg, 0);
          if (n > 0) {
            pid_t pid = 0;
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
              if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                ucred cred;
                std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                pid = cred.pid;
              }
            }
            received[pid].push_back(std::string(data, static_cast<size_t>(n)));
          }
          return done();
        },
        timeout_s);
  }

  // How many messages from `pid` start with `prefix`.
  int Count(pid_t pid, const std::string& prefix) {
    int n = 0;
    for (const auto& m : received[pid]) n += m.rfind(prefix, 0) == 0;
    return n;
  }

  std::map<pid_t, std::vector<std::string>> received;

 private:
  int fd_ = -1;
  bool ok_ = false;
};

TEST(ServiceNotify, DaemonsSayReadyPingTheWatchdogAndSayStopping) {
  LocalFarmOptions options;
  options.workers = 1;
  LocalFarm farm(options);
  NotifySocket socket(farm.dir() + "/notify");
  ASSERT_TRUE(socket.ok()) << std::strerror(errno);
  ASSERT_TRUE(farm.StartRedis().ok());
  // Only the daemons under test run as if systemd started them.
  ::setenv("NOTIFY_SOCKET", (farm.dir() + "/notify").c_str(), 1);
  ::setenv("WATCHDOG_USEC", "400000", 1);
  Status coordinator = farm.StartCoordinator();
  Status worker = farm.StartWorker(0);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ASSERT_TRUE(coordinator.ok()) << coordinator.ToString();
  ASSERT_TRUE(worker.ok()) << worker.ToString();
  const pid_t c = farm.pid("coordinator"), w = farm.pid("worker-0");

  // Ready with what each serves; then the loops ping the watchdog (every
  // 0.2 s here), again and again.
  ASSERT_TRUE(socket.ReceiveUntil(
      [&] { return socket.Count(c, "WATCHDOG=1") >= 3 && socket.Count(w, "WATCHDOG=1") >= 3; }, 20))
      << "coordinator: " << socket.received[c].size() << ", worker: " << socket.received[w].size();
  ASSERT_FALSE(socket.received[c].empty());
  EXPECT_EQ(socket.received[c][0].rfind("READY=1\nSTATUS=coordinator: workers on tcp://", 0), 0u)
      << socket.received[c][0];
  EXPECT_EQ(socket.received[w][0], "READY=1\nSTATUS=worker local-0 of " + farm.zmq_endpoint());
  EXPECT_EQ(socket.Count(c, "READY=1"), 1);
  EXPECT_FALSE(farm.Get("/api/v1/workers").is_null()) << "ready means answering";

  // SIGTERM: each says it is stopping before it ends.
  farm.Signal("worker-0", SIGTERM);
  farm.Signal("coordinator", SIGTERM);
  ASSERT_TRUE(socket.ReceiveUntil(
      [&] { return socket.Count(c, "STOPPING=1") == 1 && socket.Count(w, "STOPPING=1") == 1; },
      10));
  EXPECT_EQ(socket.received[w].back().rfind("STOPPING=1\nSTATUS=worker local-0 stopping", 0), 0u)
      << socket.received[w].back();
}

}  // namespace
}  // namespace reelfarm::testing
