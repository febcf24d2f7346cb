#include "common/probe_cache.h"

#include <sys/stat.h>

#include <algorithm>

#include "common/secure.h"

namespace reelfarm {

ProbeCache::ProbeCache(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {}

bool ProbeCache::IdentityOf(const std::string& path, Identity* out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  out->device = st.st_dev;
  out->inode = st.st_ino;
  out->size = st.st_size;
  out->mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  out->ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  return true;
}

template <typename T, typename Compute>
StatusOr<T> ProbeCache::Recall(Memo<T>* memo, const std::string& path, bool counted,
                               Compute compute) {
  Identity before;
  const bool known = IdentityOf(path, &before);
  if (known) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = memo->find(path);
    if (it != memo->end() && it->second.identity == before) {
      it->second.last_use = ++uses_;
      if (counted) ++hits_;
      return it->second.value;
    }
  }
  StatusOr<T> value = compute();
  Identity after;
  std::lock_guard<std::mutex> lock(mu_);
  if (counted) ++misses_;
  if (!value.ok() || !known || !IdentityOf(path, &after) || !(after == before)) return value;
  if (memo->size() >= capacity_ && !memo->count(path)) {
    auto oldest = std::min_element(memo->begin(), memo->end(), [](const auto& a, const auto& b) {
      return a.second.last_use < b.second.last_use;
    });
    memo->erase(oldest);
  }
  (*memo)[path] = Remembered<T>{before, *value, ++uses_};
  return value;
}

StatusOr<pb::SourceFacts> ProbeCache::Probe(ProcessRunner& runner, const std::string& ffprobe,
                                            const std::string& path, double timeout_s,
                                            const std::string& ffmpeg) {
  return Recall(&probes_, path, /*counted=*/true,
                [&] { return ProbeSource(runner, ffprobe, path, timeout_s, ffmpeg); });
}

StatusOr<std::string> ProbeCache::Sha256(const std::string& path) {
  return Recall(&hashes_, path, /*counted=*/false, [&] { return Sha256File(path); });
}

StatusOr<std::string> ProbeCache::Version(ProcessRunner& runner, const std::string& program) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = versions_.find(program); it != versions_.end()) return it->second;
  }
  StatusOr<std::string> version = ProgramVersion(runner, program);
  if (!version.ok()) return version;
  std::lock_guard<std::mutex> lock(mu_);
  versions_[program] = *version;
  return version;
}

uint64_t ProbeCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

uint64_t ProbeCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace reelfarm
