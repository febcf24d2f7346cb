#include "common/metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/gauge.h>

namespace reelfarm {

const std::vector<double>& TranscodeSecondsBuckets() {
  static const std::vector<double> kBuckets = {0.5, 1,   2.5,  5,    10,   30,   60,   120,
                                               300, 600, 1200, 1800, 3600, 7200, 14400};
  return kBuckets;
}

const std::vector<double>& QueueWaitSecondsBuckets() {
  static const std::vector<double> kBuckets = {0.1, 0.5, 1,    5,    15,   30,   60,
                                               300, 900, 1800, 3600, 7200, 14400};
  return kBuckets;
}

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                              const std::string& component) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->registry_ = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("reelfarm_build_info")
      .Help("reelfarm build information; always 1")
      .Register(*s->registry_)
      .Add({{"version", REELFARM_VERSION}, {"component", component}})
      .Set(1);
  try {
    s->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return Status::Unavailable("cannot serve metrics on " + address + ": " + e.what());
  }
  s->exposer_->RegisterCollectable(s->registry_);
  return s;
}

MetricsServer::~MetricsServer() = default;

}  // namespace reelfarm
