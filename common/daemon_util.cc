#include "common/daemon_util.h"

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace reelfarm {
namespace {

std::atomic<bool> g_stop{false};  // written only by the signal handler

void OnStopSignal(int) { g_stop.store(true); }

}  // namespace

const std::atomic<bool>& InstallStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return g_stop;
}

bool ConfigureLogging(const std::string& level, const std::string& format,
                      const std::string& component) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stderr_logger_mt(component);
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  if (format == "json") {
    // One JSON object a line; %v is the message, escaped by the caller's
    // fields staying free of quotes is not guaranteed, so keep it simple.
    spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":")" +
                        component + R"(","msg":"%v"})");
  } else if (format == "text") {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [" + component + "] %v");
  } else {
    return false;
  }
  return true;
}

}  // namespace reelfarm
