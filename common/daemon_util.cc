#include "common/daemon_util.h"

#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>
#include <nlohmann/json.hpp>

namespace reelfarm {
namespace {

std::atomic<bool> g_stop{false};  // written only by the signal handler

void OnStopSignal(int) { g_stop.store(true); }

std::atomic<bool> g_drain{false};  // written only by the signal handler
std::atomic<int> g_signals{0};

void OnDrainSignal(int) {
  if (g_signals.fetch_add(1) == 0) {
    g_drain.store(true);
  } else {
    g_stop.store(true);
  }
}

// The fields of the LogFields scopes alive on this thread, outermost first.
thread_local LogFieldList t_fields;

bool IsReservedKey(const std::string& key) {
  return key == "ts" || key == "level" || key == "component" || key == "msg";
}

std::string Iso8601Utc(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  snprintf(frac, sizeof(frac), ".%03dZ", static_cast<int>(ms % 1000));
  return std::string(buf, n) + frac;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string component) : component_(std::move(component)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line =
        FormatJsonLogLine(Iso8601Utc(msg.time), std::string(level.data(), level.size()), component_,
                          std::string(msg.payload.data(), msg.payload.size()), t_fields);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(component_);
  }

 private:
  std::string component_;
};

// The usual text pattern, then the thread's fields as " key=value".
class TextFormatter final : public spdlog::formatter {
 public:
  explicit TextFormatter(std::string component)
      : component_(std::move(component)),
        pattern_("%Y-%m-%d %H:%M:%S.%e %^%l%$ [" + component_ + "] %v",
                 spdlog::pattern_time_type::local, "") {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    pattern_.format(msg, dest);
    std::string extra;
    for (const auto& [k, v] : t_fields) extra += " " + k + "=" + v;
    dest.append(extra.data(), extra.data() + extra.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>(component_);
  }

 private:
  std::string component_;
  spdlog::pattern_formatter pattern_;
};

}  // namespace

namespace {

// `handler` for SIGINT and SIGTERM; SIGPIPE ignored.
void InstallSignalHandler(void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace

const std::atomic<bool>& InstallStopSignals() {
  InstallSignalHandler(OnStopSignal);
  return g_stop;
}

DrainSignals InstallDrainSignals() {
  InstallSignalHandler(OnDrainSignal);
  return {g_drain, g_stop};
}

bool ConfigureLogging(const std::string& level, const std::string& format,
                      const std::string& component) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  std::unique_ptr<spdlog::formatter> formatter = MakeLogFormatter(format, component);
  if (!formatter) return false;
  auto logger = spdlog::get(component);
  if (!logger) logger = spdlog::stderr_logger_mt(component);
  logger->set_formatter(std::move(formatter));
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  return true;
}

std::unique_ptr<spdlog::formatter> MakeLogFormatter(const std::string& format,
                                                    const std::string& component) {
  if (format == "json") return std::make_unique<JsonFormatter>(component);
  if (format == "text") return std::make_unique<TextFormatter>(component);
  return nullptr;
}

LogFields::LogFields(std::initializer_list<std::pair<std::string, std::string>> fields) {
  for (const auto& [k, v] : fields) {
    if (v.empty() || IsReservedKey(k)) continue;
    t_fields.emplace_back(k, v);
    ++added_;
  }
}

LogFields::~LogFields() { t_fields.resize(t_fields.size() - added_); }

LogFieldList LogFields::Current() { return t_fields; }

std::string FormatJsonLogLine(const std::string& ts, const std::string& level,
                              const std::string& component, const std::string& msg,
                              const LogFieldList& fields) {
  // ordered_json keeps ts, level, component, msg first for people reading raw
  // lines; later fields of the same key replace earlier ones.
  nlohmann::ordered_json line;
  line["ts"] = ts;
  line["level"] = level;
  line["component"] = component;
  line["msg"] = msg;
  for (const auto& [k, v] : fields) {
    if (!IsReservedKey(k)) line[k] = v;
  }
  // Invalid UTF-8 (e.g. a file name from FFmpeg's log) is replaced, so the
  // line stays valid JSON.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string DeliveryOfJob(const std::string& job_id) {
  auto dot = job_id.rfind('.');
  return dot == std::string::npos ? std::string() : job_id.substr(0, dot);
}

}  // namespace reelfarm
