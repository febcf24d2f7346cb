// The Prometheus endpoint both daemons serve (prometheus-cpp's civetweb
// exposer), with reelfarm_build_info registered.
#ifndef REELFARM_COMMON_METRICS_H_
#define REELFARM_COMMON_METRICS_H_

#include <netinet/in.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace prometheus {
class Exposer;
}

namespace reelfarm {

// Naming (https://prometheus.io/docs/practices/naming/): one prefix
// "reelfarm_", base units (seconds, bytes, ratios 0..1), counters end in
// "_total". Labels are bounded sets only (preset, kind, result, reason,
// state, encoder); never a job id, delivery id or file name.

// Histogram upper bounds (seconds) for a transcode's run time: a thumbnail
// takes a second, a 4K master hours.
const std::vector<double>& TranscodeSecondsBuckets();
// Upper bounds (seconds) for the time a job waits in the queue.
const std::vector<double>& QueueWaitSecondsBuckets();

class MetricsServer {
 public:
  // Serves /metrics on `address` ("HOST:PORT"). `component` is
  // "coordinator" or "worker", a label of reelfarm_build_info.
  static StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                        const std::string& component);
  ~MetricsServer();
  // Thread-safe, as prometheus-cpp's registry is.
  prometheus::Registry& registry() { return *registry_; }

 private:
  MetricsServer() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  in_addr knock_addr_{};  // an IPv4 address the server listens on
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_METRICS_H_
