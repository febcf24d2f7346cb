// Process-level helpers shared by the daemons' main(), and structured logging.
#ifndef REELFARM_COMMON_DAEMON_UTIL_H_
#define REELFARM_COMMON_DAEMON_UTIL_H_

#include <spdlog/formatter.h>

#include <atomic>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace reelfarm {

// Installs SIGINT/SIGTERM handlers that set the returned flag, and ignores
// SIGPIPE. Call once from main().
const std::atomic<bool>& InstallStopSignals();

// For a daemon that drains before it stops: the first SIGINT/SIGTERM sets
// `drain`, a second one `stop`. Also ignores SIGPIPE. Call once from main(),
// instead of InstallStopSignals.
struct DrainSignals {
  const std::atomic<bool>& drain;
  const std::atomic<bool>& stop;
};
DrainSignals InstallDrainSignals();

// Sets up spdlog: level ("debug", "info", ...), format "text" or "json".
// Returns false for an unknown level or format.
//
// "json": every line is one JSON object {"ts", "level", "component", "msg",
// ...fields}, escaped by nlohmann::json, where the fields are those of the
// LogFields scopes alive on the logging thread (e.g. "delivery", "job").
// "text": the fields are appended as " key=value".
bool ConfigureLogging(const std::string& level, const std::string& format,
                      const std::string& component);

// The formatter ConfigureLogging installs: "json" or "text"; nullptr for an
// unknown format.
std::unique_ptr<spdlog::formatter> MakeLogFormatter(const std::string& format,
                                                    const std::string& component);

using LogFieldList = std::vector<std::pair<std::string, std::string>>;

// Attaches fields (bounded in number: ids such as "delivery", "job",
// "worker") to every line this thread logs while the scope lives. Scopes
// nest; an inner field of the same key wins. Empty values are left out.
class LogFields {
 public:
  LogFields(std::initializer_list<std::pair<std::string, std::string>> fields);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

  // The fields in force on this thread, outermost first.
  static LogFieldList Current();

 private:
  size_t added_ = 0;
};

// One JSON log line (no newline). Pure; `fields` later in the list override
// earlier ones, and none may override ts/level/component/msg.
std::string FormatJsonLogLine(const std::string& ts, const std::string& level,
                              const std::string& component, const std::string& msg,
                              const LogFieldList& fields);

// "delivery-7.j3" -> "delivery-7": a job id is its delivery's id, a dot and
// the planner's job name (which has no dot). Empty when there is no dot.
std::string DeliveryOfJob(const std::string& job_id);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_DAEMON_UTIL_H_
