// What a daemon tells the service manager that runs it (systemd's notify
// protocol, docs/operations.md): that it is ready (its ports are listening),
// that it is stopping, and, while its main loop turns, that it is alive
// (the watchdog). The core is pure (a send function and a clock); the
// systemd adapter (sd_notify from libsystemd) is FromEnvironment's.
#ifndef REELFARM_COMMON_SERVICE_NOTIFY_H_
#define REELFARM_COMMON_SERVICE_NOTIFY_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"

namespace reelfarm {

class ServiceNotifier {
 public:
  // `send` delivers one notification ("READY=1\nSTATUS=..."). `watchdog`:
  // the interval the manager expects WATCHDOG=1 within (0: none); Alive()
  // sends it every half interval at most. `clock` is not owned.
  ServiceNotifier(std::function<void(const std::string&)> send, std::chrono::microseconds watchdog,
                  const Clock* clock);

  // systemd's: sd_notify to $NOTIFY_SOCKET, the watchdog from
  // $WATCHDOG_USEC (sd_watchdog_enabled). Without $NOTIFY_SOCKET (not run
  // by systemd with Type=notify) every call does nothing.
  static std::unique_ptr<ServiceNotifier> FromEnvironment(const Clock* clock);

  // READY=1 with a status line (what it serves).
  void Ready(const std::string& status);
  // STOPPING=1: shutting down (what it still does).
  void Stopping(const std::string& status);
  // STATUS= alone.
  void Status(const std::string& status);
  // WATCHDOG=1, when half the interval has passed since the last one. Call
  // from the main loop: a loop that hangs stops the pings, and systemd
  // restarts the daemon (WatchdogSec).
  void Alive();

  std::chrono::microseconds watchdog() const { return watchdog_; }

 private:
  std::function<void(const std::string&)> send_;
  std::chrono::microseconds watchdog_;
  const Clock* clock_;
  SteadyTime next_ping_{};
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_SERVICE_NOTIFY_H_
