// Time, injected: logic takes a Clock (or a `now` argument) so tests drive
// time with FakeClock and never sleep.
#ifndef REELFARM_COMMON_CLOCK_H_
#define REELFARM_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace reelfarm {

using SteadyTime = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time for leases, heartbeats and timeouts.
  virtual SteadyTime Now() const = 0;
  // Wall-clock milliseconds since the Unix epoch, for records people read.
  virtual int64_t WallMillis() const = 0;
};

class RealClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  int64_t WallMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Time moves only when Advance() is called.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t wall_millis = 1'700'000'000'000) : wall_(wall_millis) {}
  SteadyTime Now() const override { return SteadyTime(Duration(steady_.load())); }
  int64_t WallMillis() const override { return wall_.load(); }
  void Advance(Duration d) {
    steady_ += d.count();
    wall_ += std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }

 private:
  std::atomic<Duration::rep> steady_{1'000'000'000};
  std::atomic<int64_t> wall_;
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_CLOCK_H_
