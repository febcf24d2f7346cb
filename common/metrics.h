// The Prometheus endpoint both daemons serve (prometheus-cpp's civetweb
// exposer), with reelfarm_build_info registered.
#ifndef REELFARM_COMMON_METRICS_H_
#define REELFARM_COMMON_METRICS_H_

#include <memory>
#include <string>

#include <prometheus/registry.h>

#include "common/status.h"

namespace prometheus {
class Exposer;
}

namespace reelfarm {

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
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_METRICS_H_
