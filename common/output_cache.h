// The output cache (docs/versions.md): published outputs kept by their
// OutputKey, so that a later version of a delivery publishes them again
// instead of encoding them.
//
// Layout: <root>/<key[0:2]>/<key>/meta.json and <root>/<key[0:2]>/<key>/data,
// `data` being the output itself (a file, or a streaming package's folder).
// Files are hard links of what was published where the filesystem allows
// (no space used while the delivery keeps them), copies otherwise. An entry
// appears whole (built under a temporary name, then renamed) or not at all.
// Nothing in an entry is trusted: every file is checked against its SHA-256
// each time it is published from the cache.
#ifndef REELFARM_COMMON_OUTPUT_CACHE_H_
#define REELFARM_COMMON_OUTPUT_CACHE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

// A delivery's own cache when the farm has none: <output_dir>/.reelfarm-cache
// (hidden, like the parts folder): on the outputs' filesystem, so entries
// are hard links, and inside the delivery's folder, where everything a
// spec makes the farm write must lie.
inline constexpr char kDeliveryCacheFolder[] = ".reelfarm-cache";
std::string DefaultCacheRoot(const std::string& output_dir);

// The entry folder of `key` under `root`.
std::string CacheEntryPath(const std::string& root, const std::string& key);

// What meta.json says of an entry.
struct CacheEntry {
  std::string path;  // the entry folder
  std::string key;
  std::string ffmpeg_version;
  std::string made_by;  // the delivery name
  int made_in_version = 0;
  int64_t created_ms = 0;
  bool folder = false;  // data is a package's folder
  // Relative to data ("" for a single file), with bytes and SHA-256.
  std::vector<pb::PackageFile> files;
  pb::OutputResult original;  // as first published
  int64_t bytes() const;
};

// Reads the entry folder's meta.json. NotFound when there is no entry,
// DataLoss when meta.json cannot be read as one (or names another key).
StatusOr<CacheEntry> ReadCacheEntry(const std::string& entry_path);

// Keeps the output published at `published` (file or package folder) with
// its result (sha256, bytes, files) as the entry `store.entry`. An entry
// already there is left as it is (OK). `now_ms` is recorded as its birth.
Status StoreCacheEntry(const pb::CacheStore& store, const std::string& published,
                       const pb::OutputResult& result, int64_t now_ms);

// Makes `temp` (absent) a copy of the entry's data (hard links where it
// can) and checks every file against `reuse.files`: DataLoss naming the
// file when one is missing or its bytes changed (`temp` is then removed).
// `folder`: the output is a package's folder.
Status MaterializeCacheEntry(const pb::Reuse& reuse, bool folder, const std::string& temp);

// Marks the entry used now (meta.json's modification time: the eviction
// order). Missing: nothing.
void TouchCacheEntry(const std::string& entry_path);

// Takes a bad entry out of the cache (renamed aside, then removed).
void DiscardCacheEntry(const std::string& entry_path);

struct CacheUsage {
  int entries = 0;
  int64_t bytes = 0;  // of the entries' data (hard links counted in full)
};

struct EvictionResult {
  int evicted = 0;
  int64_t bytes_freed = 0;
  CacheUsage after;
};

// Removes the least recently used entries of the cache at `root` (by the
// time TouchCacheEntry or StoreCacheEntry last marked them) until it holds
// at most `max_bytes`; leftovers of interrupted stores older than an hour
// go too. A missing root is an empty cache.
EvictionResult EvictCache(const std::string& root, int64_t max_bytes);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_OUTPUT_CACHE_H_
