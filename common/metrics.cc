#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

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
  // Where to knock when stopping: the bound host, loopback for a wildcard
  // or anything that is no IPv4 address.
  std::string host = address.substr(0, address.rfind(':'));
  if (host == "0.0.0.0" || inet_pton(AF_INET, host.c_str(), &s->knock_addr_) != 1) {
    inet_pton(AF_INET, "127.0.0.1", &s->knock_addr_);
  }
  return s;
}

MetricsServer::~MetricsServer() {
  if (!exposer_) return;
  // civetweb's listener looks at its stop flag only when its poll() returns,
  // which it does after two seconds without a connection: knock on the port
  // until the server is gone, or every daemon takes up to 2 s to stop.
  std::vector<sockaddr_in> doors;
  for (int port : exposer_->GetListeningPorts()) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr = knock_addr_;
    doors.push_back(to);
  }
  std::atomic<bool> stopped{false};
  std::thread knocker([&] {
    while (!stopped.load()) {
      for (const sockaddr_in& to : doors) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        (void)::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
        ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped.store(true);
  knocker.join();
}

}  // namespace reelfarm
