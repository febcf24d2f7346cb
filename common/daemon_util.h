// Process-level helpers shared by the daemons' main().
#ifndef REELFARM_COMMON_DAEMON_UTIL_H_
#define REELFARM_COMMON_DAEMON_UTIL_H_

#include <atomic>
#include <string>

namespace reelfarm {

// Installs SIGINT/SIGTERM handlers that set the returned flag, and ignores
// SIGPIPE. Call once from main().
const std::atomic<bool>& InstallStopSignals();

// Sets up spdlog: level ("debug", "info", ...), format "text" or "json".
// Returns false for an unknown level or format.
bool ConfigureLogging(const std::string& level, const std::string& format,
                      const std::string& component);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_DAEMON_UTIL_H_
