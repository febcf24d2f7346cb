// The polling loop behind `reelfarm watch` and `reelfarm run`.
#ifndef REELFARM_CLI_WATCH_H_
#define REELFARM_CLI_WATCH_H_

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cli/api_client.h"
#include "common/status.h"

namespace reelfarm::cli {

struct WatchOptions {
  double poll_interval_s = 0.5;
  bool terminal = false;  // progress bars redrawn in place, else plain lines
  size_t columns = 0;     // terminal width; 0 = unknown
  // Polls that get no answer in a row before giving up (exit 4): about
  // 10 s at the default interval, so a coordinator restart is ridden out.
  int max_unreachable_polls = 20;
  // Checked before each poll; true ends the watch with exit code 130.
  const std::atomic<bool>* interrupted = nullptr;
  // Checked before each poll when set (run: are the farm's processes all
  // alive?); a non-OK Status is printed and ends the watch with exit 4.
  std::function<Status()> check_farm;
  // Waits between polls; the default sleeps in short steps and returns
  // early when interrupted. Tests pass a no-op.
  std::function<void(double seconds)> sleep;
  // Every deliverable finished but this many writes of the manifest failed
  // in a row (a read-only or full folder): the error is printed and the
  // watch ends with exit 5. The coordinator goes on retrying.
  int manifest_failures_to_give_up = 3;
};

struct WatchResult {
  // 0 all delivered, 3 one or more failed or cancelled, 4 unreachable (or a
  // farm process died), 5 finished but the manifest cannot be written, 1
  // unknown delivery or unexpected answer, 130 interrupted.
  int exit_code = 4;
  nlohmann::json delivery;  // the last delivery seen (null if none)
};

// Polls `fetch` (GET /api/v1/deliveries/ID) until the delivery is terminal,
// writing progress to `out` and problems to `err`; on the end prints the
// summary (RenderSummary) to `out`.
WatchResult WatchDelivery(const std::function<StatusOr<ApiResponse>()>& fetch,
                          const WatchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_WATCH_H_
