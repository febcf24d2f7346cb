// Source facts remembered by the file's identity, so that the many deliveries
// of one picture-locked master are probed once, not once per submission.
#ifndef REELFARM_COMMON_PROBE_CACHE_H_
#define REELFARM_COMMON_PROBE_CACHE_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "common/probe.h"

namespace reelfarm {

// Thread-safe.
class ProbeCache {
 public:
  // Remembers at most `capacity` files (the least recently used go first).
  explicit ProbeCache(size_t capacity = 256);

  // ProbeSource(runner, ffprobe, path, timeout_s, ffmpeg), unless `path` was probed
  // before and its identity (device, inode, size, modification and change
  // times to the nanosecond) is what it was then: the facts of that probe.
  // Only successful probes of files that did not change while they were
  // probed are remembered. Any write to the file, a replacement (rename over
  // it) or a `touch` probes it again.
  StatusOr<pb::SourceFacts> Probe(ProcessRunner& runner, const std::string& ffprobe,
                                  const std::string& path, double timeout_s = 60,
                                  const std::string& ffmpeg = "");

  // Sha256File(path), remembered by the file's identity like a probe: a
  // picture-locked master is read in full once, not once per version.
  StatusOr<std::string> Sha256(const std::string& path);
  // ProgramVersion(runner, program), asked once per program.
  StatusOr<std::string> Version(ProcessRunner& runner, const std::string& program);

  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Identity {
    uint64_t device = 0;
    uint64_t inode = 0;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool operator==(const Identity&) const = default;
  };
  // A value remembered for a file as it was (its identity).
  template <typename T>
  struct Remembered {
    Identity identity;
    T value;
    uint64_t last_use = 0;
  };
  template <typename T>
  using Memo = std::map<std::string, Remembered<T>>;
  // memo's value for `path` while the file is what it was; else compute()
  // (not under the lock: files are probed and hashed side by side), kept
  // only when it succeeded on a file that did not change meanwhile, the
  // least recently used going beyond capacity_. `counted`: a probe (hits,
  // misses).
  template <typename T, typename Compute>
  StatusOr<T> Recall(Memo<T>* memo, const std::string& path, bool counted, Compute compute);
  // False when `path` cannot be stat()ed (ProbeSource then says why).
  static bool IdentityOf(const std::string& path, Identity* out);

  const size_t capacity_;
  mutable std::mutex mu_;
  Memo<pb::SourceFacts> probes_;                 // GUARDED_BY(mu_)
  Memo<std::string> hashes_;                     // GUARDED_BY(mu_)
  std::map<std::string, std::string> versions_;  // GUARDED_BY(mu_)
  uint64_t uses_ = 0;                            // GUARDED_BY(mu_)
  uint64_t hits_ = 0;                            // GUARDED_BY(mu_)
  uint64_t misses_ = 0;                          // GUARDED_BY(mu_)
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PROBE_CACHE_H_
