#include "common/versions.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include "common/fs_util.h"

namespace fs = std::filesystem;

namespace reelfarm {
namespace {

// A manifest of a feature's package lists thousands of files: megabytes.
constexpr uintmax_t kMaxManifestBytes = 256 << 20;

// "v12.json" -> 12; 0 when not such a name.
int VersionOfName(const std::string& name) {
  if (name.size() < 7 || name[0] != 'v' || name.substr(name.size() - 5) != ".json") return 0;
  const std::string digits = name.substr(1, name.size() - 6);
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoi(digits);
}

StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  StatusOr<std::string> text = ReadSmallFile(path, kMaxManifestBytes);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) return Status::InvalidArgument(path + " is not a manifest (not JSON)");
  return j;
}

// A hard link of every file under `from` (a file or a folder) at `to`,
// copies where the filesystem cannot link.
Status LinkTree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (fs::is_directory(from, ec)) {
    fs::create_directories(to, ec);
    if (ec) return Status::IOError("cannot create " + to.string() + ": " + ec.message());
    for (const auto& item : fs::directory_iterator(from, ec)) {
      Status s = LinkTree(item.path(), to / item.path().filename());
      if (!s.ok()) return s;
    }
    return Status::OK();
  }
  fs::create_directories(to.parent_path(), ec);
  fs::remove(to, ec);
  if (::link(from.c_str(), to.c_str()) == 0) return Status::OK();
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("cannot keep " + from.string() + ": " + ec.message());
  return Status::OK();
}

std::string ItemKey(const nlohmann::json& item) {
  return item.contains("key") && item["key"].is_string() ? item["key"].get<std::string>() : "";
}

std::string InputOf(const nlohmann::json& item, const char* field) {
  if (!item.contains("inputs") || !item["inputs"].is_object()) return "";
  return item["inputs"].value(field, "");
}

}  // namespace

std::string ManifestFileName(int version) { return "v" + std::to_string(version) + ".json"; }

int HighestManifestVersion(const std::string& output_dir) {
  int highest = 0;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(fs::path(output_dir) / kManifestsFolder, ec)) {
    highest = std::max(highest, VersionOfName(item.path().filename().string()));
  }
  if (highest == 0) {
    auto latest = ReadJsonFile((fs::path(output_dir) / "manifest.json").string());
    if (latest.ok()) highest = std::max(1, latest->value("version", 1));
  }
  return highest;
}

StatusOr<nlohmann::json> ReadManifest(const std::string& output_dir, int version) {
  auto kept = ReadJsonFile((fs::path(output_dir) / kManifestsFolder / ManifestFileName(version)));
  if (kept.ok() || kept.status().code() != Status::Code::kNotFound) return kept;
  // A folder delivered before versions: its one manifest.
  auto latest = ReadJsonFile((fs::path(output_dir) / "manifest.json").string());
  if (latest.ok() && latest->value("version", 1) == version) return latest;
  return Status::NotFound("no version " + std::to_string(version) + " in " + output_dir);
}

std::vector<nlohmann::json> ReadHistory(const std::string& output_dir) {
  std::vector<nlohmann::json> out;
  for (int v = 1, highest = HighestManifestVersion(output_dir); v <= highest; ++v) {
    auto m = ReadManifest(output_dir, v);
    if (m.ok()) out.push_back(*std::move(m));
  }
  return out;
}

std::vector<DeliverableChange> DiffManifests(const nlohmann::json& from, const nlohmann::json& to) {
  std::map<std::string, const nlohmann::json*> before;
  if (from.contains("deliverables") && from["deliverables"].is_array()) {
    for (const auto& item : from["deliverables"]) {
      if (item.is_object()) before[item.value("name", "")] = &item;
    }
  }
  std::vector<DeliverableChange> out;
  std::set<std::string> seen;
  if (to.contains("deliverables") && to["deliverables"].is_array()) {
    for (const auto& item : to["deliverables"]) {
      if (!item.is_object()) continue;
      DeliverableChange c;
      c.name = item.value("name", "");
      seen.insert(c.name);
      auto old = before.find(c.name);
      const bool delivered = item.value("status", "") == "delivered";
      if (old == before.end()) {
        c.change = "added";
      } else if (!delivered) {
        c.change = "failed";
      } else if (item.value("reused", false)) {
        c.change = "reused";
      } else {
        const nlohmann::json& was = *old->second;
        const bool was_delivered = was.value("status", "") == "delivered";
        if (item.contains("not_reused")) {
          c.change = "re-rendered";
          c.reasons.push_back("its cache entry failed its check");
        } else if (!ItemKey(item).empty() && ItemKey(item) == ItemKey(was) && was_delivered) {
          c.change = "unchanged";
          c.reasons.push_back("made again: it was not in the cache");
        } else {
          c.change = "re-rendered";
          if (!was_delivered) c.reasons.push_back("it had failed");
          if (ItemKey(was).empty()) c.reasons.push_back("the older version has no key");
          const std::pair<const char*, const char*> parts[] = {
              {"source_sha256", "source changed"},
              {"subtitle_sha256", "subtitle changed"},
              {"settings_sha256", "settings changed"},
              {"encoders", "encoder changed"},
              {"ffmpeg_version", "encoder changed"}};
          if (!ItemKey(was).empty()) {
            for (const auto& [field, why] : parts) {
              if (InputOf(item, field) != InputOf(was, field) &&
                  std::find(c.reasons.begin(), c.reasons.end(), why) == c.reasons.end()) {
                c.reasons.push_back(why);
              }
            }
          }
        }
      }
      out.push_back(std::move(c));
    }
  }
  for (const auto& [name, item] : before) {
    if (!seen.count(name)) out.push_back({name, "removed", {}});
  }
  return out;
}

nlohmann::json KeyJson(const pb::OutputKey& key) {
  return {{"source_sha256", key.source_sha256()},
          {"subtitle_sha256", key.subtitle_sha256()},
          {"settings_sha256", key.settings_sha256()},
          {"encoders", key.encoders()},
          {"ffmpeg_version", key.ffmpeg_version()}};
}

namespace {

// Calls fn(relative path, the item's name, its key) for each delivered file
// of version `previous` that still lies in the folder; OK when there is no
// such version. Writes that version's manifest beside the kept files when
// `fn` kept anything.
Status ForEachKeptFile(
    const std::string& output_dir, int previous,
    const std::function<Status(const fs::path&, const std::string&, const std::string&)>& fn) {
  auto manifest = ReadManifest(output_dir, previous);
  if (!manifest.ok()) return Status::OK();  // nothing known of it
  if (!manifest->contains("deliverables") || !(*manifest)["deliverables"].is_array()) {
    return Status::OK();
  }
  std::error_code ec;
  for (const auto& item : (*manifest)["deliverables"]) {
    if (!item.is_object() || item.value("status", "") != "delivered") continue;
    const std::string rel = item.value("path", "");
    const fs::path relative(rel);
    if (rel.empty() || relative.is_absolute() ||
        std::any_of(relative.begin(), relative.end(),
                    [](const fs::path& p) { return p == ".."; })) {
      continue;
    }
    if (!fs::exists(fs::path(output_dir) / relative, ec)) continue;
    Status s = fn(relative, item.value("name", ""), ItemKey(item));
    if (!s.ok()) return s;
  }
  const fs::path into = fs::path(output_dir) / kVersionsFolder / ("v" + std::to_string(previous));
  if (fs::exists(into, ec)) {
    return WriteFileAtomically((into / "manifest.json").string(), manifest->dump(2) + "\n");
  }
  return Status::OK();
}

}  // namespace

Status KeepReplacedFiles(const std::string& output_dir, int previous,
                         const std::map<std::string, std::string>& keys, int keep) {
  if (previous < 1) return Status::OK();
  const fs::path versions = fs::path(output_dir) / kVersionsFolder;
  std::error_code ec;
  // Versions older than `keep` before the new one go.
  for (const auto& item : fs::directory_iterator(versions, ec)) {
    const std::string name = item.path().filename().string();
    const int v = name.size() > 1 && name[0] == 'v' ? std::atoi(name.c_str() + 1) : 0;
    if (v > 0 && v <= previous - keep) fs::remove_all(item.path(), ec);
  }
  if (keep == 0) return Status::OK();
  const fs::path into = versions / ("v" + std::to_string(previous));
  return ForEachKeptFile(
      output_dir, previous,
      [&](const fs::path& relative, const std::string& name, const std::string& key) {
        auto now = keys.find(name);
        // Published again as it is, or dropped (SetAsideDroppedFiles).
        if (now == keys.end() || now->second == key) return Status::OK();
        Status made = CreateDirsDurably((into / relative).parent_path().string());
        if (!made.ok()) return made;
        return LinkTree(fs::path(output_dir) / relative, into / relative);
      });
}

Status SetAsideDroppedFiles(const std::string& output_dir, int previous,
                            const std::map<std::string, std::string>& keys, int keep) {
  if (previous < 1 || keep == 0) return Status::OK();
  const fs::path into = fs::path(output_dir) / kVersionsFolder / ("v" + std::to_string(previous));
  return ForEachKeptFile(
      output_dir, previous,
      [&](const fs::path& relative, const std::string& name, const std::string&) {
        if (keys.count(name)) return Status::OK();
        Status made = CreateDirsDurably((into / relative).parent_path().string());
        if (!made.ok()) return made;
        std::error_code ec;
        fs::remove_all(into / relative, ec);
        const fs::path from = fs::path(output_dir) / relative;
        if (::rename(from.c_str(), (into / relative).c_str()) != 0) {
          return Status::IOError("cannot move " + from.string() + " to " +
                                 (into / relative).string() + ": " + std::strerror(errno));
        }
        return Status::OK();
      });
}

}  // namespace reelfarm
