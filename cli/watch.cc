#include "cli/watch.h"

#include <chrono>
#include <thread>

#include "cli/progress_view.h"
#include "cli/render.h"

namespace reelfarm::cli {

namespace {

void SleepInterruptibly(double seconds, const std::atomic<bool>* interrupted) {
  auto end = std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(seconds));
  while (std::chrono::steady_clock::now() < end) {
    if (interrupted != nullptr && interrupted->load()) return;
    auto left = end - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
}

}  // namespace

WatchResult WatchDelivery(const std::function<StatusOr<ApiResponse>()>& fetch,
                          const WatchOptions& options, std::ostream& out, std::ostream& err) {
  WatchResult result;
  ProgressView view(options.terminal, options.columns);
  auto sleep = [&](double s) {
    if (options.sleep) {
      options.sleep(s);
    } else {
      SleepInterruptibly(s, options.interrupted);
    }
  };
  auto interrupted = [&] { return options.interrupted != nullptr && options.interrupted->load(); };
  int unreachable = 0;  // polls in a row without a usable answer
  bool warned = false;
  bool first = true;
  while (true) {
    if (!first) sleep(options.poll_interval_s);
    first = false;
    if (interrupted()) {
      out.flush();
      err << "Interrupted.\n";
      result.exit_code = 130;
      return result;
    }
    if (options.check_farm) {
      Status farm = options.check_farm();
      if (!farm.ok()) {
        out.flush();
        err << "error: " << farm.message() << "\n";
        result.exit_code = 4;
        return result;
      }
    }
    StatusOr<ApiResponse> response = fetch();
    if (!response.ok()) {
      if (!warned) {
        err << "warning: " << response.status().message() << "; retrying\n";
        view = ProgressView(options.terminal, options.columns);  // redraw below the warning
      }
      warned = true;
      if (++unreachable >= options.max_unreachable_polls) {
        err << "error: gave up: the coordinator did not answer " << unreachable
            << " polls in a row\n";
        result.exit_code = 4;
        return result;
      }
      continue;
    }
    if (response->status == 404) {
      err << "error: " << response->ErrorMessage() << "\n";
      result.exit_code = 1;
      return result;
    }
    if (response->status == 503) {  // Redis down behind the coordinator: transient
      if (!warned) {
        err << "warning: " << response->ErrorMessage() << "; retrying\n";
        view = ProgressView(options.terminal, options.columns);
      }
      warned = true;
      if (++unreachable >= options.max_unreachable_polls) {
        err << "error: the coordinator kept answering 503: " << response->ErrorMessage() << "\n";
        result.exit_code = 4;
        return result;
      }
      continue;
    }
    if (warned) {
      err << "The coordinator answers again.\n";
      view = ProgressView(options.terminal, options.columns);
    }
    warned = false;
    unreachable = 0;
    if (response->status != 200 || !response->json.is_object()) {
      err << "error: unexpected answer from the coordinator: " << response->ErrorMessage() << "\n";
      result.exit_code = 1;
      return result;
    }
    result.delivery = response->json;
    out << view.Update(result.delivery);
    out.flush();
    if (IsTerminalDeliveryState(JsonString(result.delivery, "state"))) {
      out << "\n" << RenderSummary(result.delivery);
      out.flush();
      result.exit_code = ExitCodeForDelivery(result.delivery);
      return result;
    }
    const int manifest_failures =
        static_cast<int>(JsonNumber(result.delivery, "manifest_failures"));
    if (manifest_failures > 0 && manifest_failures >= options.manifest_failures_to_give_up) {
      out << "\n";
      out.flush();
      err << "error: every deliverable is finished, but the manifest cannot be written ("
          << manifest_failures << " tries): " << JsonString(result.delivery, "manifest_error")
          << "\nThe coordinator keeps trying; fix the folder and watch again.\n";
      result.exit_code = 5;
      return result;
    }
  }
}

}  // namespace reelfarm::cli
