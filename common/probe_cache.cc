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

StatusOr<pb::SourceFacts> ProbeCache::Probe(ProcessRunner& runner, const std::string& ffprobe,
                                            const std::string& path, double timeout_s,
                                            const std::string& ffmpeg) {
  Identity before;
  bool known = IdentityOf(path, &before);
  if (known) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(path);
    if (it != entries_.end() && it->second.identity == before) {
      it->second.last_use = ++uses_;
      ++hits_;
      return it->second.facts;
    }
  }
  // Not under the lock: probes of different files run side by side.
  StatusOr<pb::SourceFacts> facts = ProbeSource(runner, ffprobe, path, timeout_s, ffmpeg);
  Identity after;
  std::lock_guard<std::mutex> lock(mu_);
  ++misses_;
  if (!facts.ok() || !known || !IdentityOf(path, &after) || !(after == before)) return facts;
  if (entries_.size() >= capacity_ && !entries_.count(path)) {
    auto oldest = std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    entries_.erase(oldest);
  }
  entries_[path] = Entry{before, *facts, ++uses_};
  return facts;
}

StatusOr<std::string> ProbeCache::Sha256(const std::string& path) {
  Identity before;
  const bool known = IdentityOf(path, &before);
  if (known) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hashes_.find(path);
    if (it != hashes_.end() && it->second.identity == before) {
      it->second.last_use = ++uses_;
      return it->second.sha256;
    }
  }
  StatusOr<std::string> sha = Sha256File(path);
  Identity after;
  std::lock_guard<std::mutex> lock(mu_);
  if (!sha.ok() || !known || !IdentityOf(path, &after) || !(after == before)) return sha;
  if (hashes_.size() >= capacity_ && !hashes_.count(path)) {
    auto oldest = std::min_element(
        hashes_.begin(), hashes_.end(),
        [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    hashes_.erase(oldest);
  }
  hashes_[path] = Hashed{before, *sha, ++uses_};
  return sha;
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
