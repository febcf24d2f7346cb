#include "common/service_notify.h"

#include <systemd/sd-daemon.h>

namespace reelfarm {
namespace {

// A status line as the protocol carries it: one line.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

ServiceNotifier::ServiceNotifier(std::function<void(const std::string&)> send,
                                 std::chrono::microseconds watchdog, const Clock* clock)
    : send_(std::move(send)), watchdog_(watchdog), clock_(clock) {}

std::unique_ptr<ServiceNotifier> ServiceNotifier::FromEnvironment(const Clock* clock) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) <= 0) usec = 0;
  // sd_notify does nothing (returns 0) without $NOTIFY_SOCKET.
  return std::make_unique<ServiceNotifier>(
      [](const std::string& text) { (void)sd_notify(/*unset_environment=*/0, text.c_str()); },
      std::chrono::microseconds(usec), clock);
}

void ServiceNotifier::Ready(const std::string& status) {
  send_("READY=1\nSTATUS=" + OneLine(status));
}

void ServiceNotifier::Stopping(const std::string& status) {
  send_("STOPPING=1\nSTATUS=" + OneLine(status));
}

void ServiceNotifier::Status(const std::string& status) { send_("STATUS=" + OneLine(status)); }

void ServiceNotifier::Alive() {
  if (watchdog_.count() <= 0) return;
  const SteadyTime now = clock_->Now();
  if (now < next_ping_) return;
  send_("WATCHDOG=1");
  next_ping_ = now + std::chrono::duration_cast<SteadyTime::duration>(watchdog_ / 2);
}

}  // namespace reelfarm
