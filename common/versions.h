// Versions of a delivery (docs/versions.md): every delivery into a folder is
// its next version; each version's manifest is kept in
// <output_dir>/manifests/v<N>.json (manifest.json is the latest's) and the
// files a new version replaces or drops are kept under
// <output_dir>/versions/v<N>/. History and differences are read from those
// manifests, so they need no farm.
#ifndef REELFARM_COMMON_VERSIONS_H_
#define REELFARM_COMMON_VERSIONS_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

inline constexpr char kManifestsFolder[] = "manifests";
inline constexpr char kVersionsFolder[] = "versions";

// "v3.json".
std::string ManifestFileName(int version);

// The highest version whose manifest the folder holds (manifests/v<N>.json,
// or a manifest.json written before versions, counted as its "version" or
// 1); 0 when none.
int HighestManifestVersion(const std::string& output_dir);

// Version `version`'s manifest. NotFound when the folder has none.
StatusOr<nlohmann::json> ReadManifest(const std::string& output_dir, int version);

// Every version's manifest in the folder, oldest first.
std::vector<nlohmann::json> ReadHistory(const std::string& output_dir);

// How one deliverable changed from one version to another.
struct DeliverableChange {
  std::string name;
  // added | removed | reused | re-rendered | failed | unchanged (delivered
  // again with the same key by encoding: it was not in the cache)
  std::string change;
  std::vector<std::string> reasons;  // for re-rendered: source, subtitle, settings, encoder
};

// Pure: what version `to` did with each deliverable of `from` and its own,
// in `to`'s order then the removed ones.
std::vector<DeliverableChange> DiffManifests(const nlohmann::json& from, const nlohmann::json& to);

// The manifest item's key fields (OutputKey) for DiffManifests; pure.
nlohmann::json KeyJson(const pb::OutputKey& key);

// Before version `previous` + 1 is accepted (nothing destructive): each
// file of `previous`'s manifest that the new version re-renders (its key in
// `keys`, by deliverable, differs) is hard-linked (a copy where links
// fail) into versions/v<previous>/, with that manifest beside them; the new
// file then replaces the old name atomically. Versions older than `keep`
// before the new one are removed from versions/. `keep` 0: nothing kept.
Status KeepReplacedFiles(const std::string& output_dir, int previous,
                         const std::map<std::string, std::string>& keys, int keep);

// Once version `previous` + 1 is accepted: each file of `previous` that the
// new version no longer has (no key in `keys`) is moved into
// versions/v<previous>/. `keep` 0: such files stay where they are.
Status SetAsideDroppedFiles(const std::string& output_dir, int previous,
                            const std::map<std::string, std::string>& keys, int keep);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_VERSIONS_H_
