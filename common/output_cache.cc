#include "common/output_cache.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs_util.h"
#include "common/secure.h"

namespace fs = std::filesystem;

namespace reelfarm {
namespace {

constexpr char kMeta[] = "meta.json";
constexpr char kData[] = "data";
// A meta.json is a few kilobytes; a package's lists some thousands of files.
constexpr uintmax_t kMaxMetaBytes = 16 << 20;

// A hard link of `from` at `to`, or a copy where the filesystem cannot link
// (another device, no links).
Status LinkOrCopy(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return Status::OK();
  const int err = errno;
  if (err == ENOENT) return Status::NotFound(from + " is missing");
  if (err != EXDEV && err != EPERM && err != EMLINK && err != ENOTSUP && err != EOPNOTSUPP) {
    return Status::IOError("cannot link " + from + " to " + to + ": " + std::strerror(err));
  }
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::none, ec);
  if (ec) return Status::IOError("cannot copy " + from + " to " + to + ": " + ec.message());
  return FsyncFile(to);
}

// `rel` names a file inside a data folder: relative, no "..".
bool SafeRelative(const std::string& rel) {
  if (rel.empty()) return true;
  const fs::path p(rel);
  if (p.is_absolute()) return false;
  for (const auto& part : p) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

std::string JoinRel(const std::string& base, const std::string& rel) {
  return rel.empty() ? base : (fs::path(base) / rel).string();
}

}  // namespace

int64_t CacheEntry::bytes() const {
  int64_t n = 0;
  for (const auto& f : files) n += f.bytes();
  return n;
}

std::string DefaultCacheRoot(const std::string& output_dir) {
  return (fs::path(output_dir) / kDeliveryCacheFolder).string();
}

std::string CacheEntryPath(const std::string& root, const std::string& key) {
  const std::string shard = key.size() >= 2 ? key.substr(0, 2) : "00";
  return (fs::path(root) / shard / key).string();
}

StatusOr<CacheEntry> ReadCacheEntry(const std::string& entry_path) {
  const std::string meta_path = (fs::path(entry_path) / kMeta).string();
  StatusOr<std::string> text = ReadSmallFile(meta_path, kMaxMetaBytes);
  if (text.status().code() == Status::Code::kNotFound) {
    return Status::NotFound("no cache entry at " + entry_path);
  }
  if (!text.ok()) return Status::DataLoss(text.status().message());
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  auto bad = [&](const std::string& why) {
    return Status::DataLoss("cache entry " + entry_path + " is unusable: " + why);
  };
  if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("files") ||
      !j["files"].is_array() || j["files"].empty()) {
    return bad("meta.json is not an entry's");
  }
  CacheEntry e;
  e.path = entry_path;
  e.key = j["key"].get<std::string>();
  if (e.key != fs::path(entry_path).filename().string()) return bad("it names another key");
  e.ffmpeg_version = j.value("ffmpeg_version", "");
  e.made_by = j.value("made_by", "");
  e.made_in_version = j.value("made_in_version", 0);
  e.created_ms = j.value("created_ms", int64_t{0});
  e.folder = j.value("folder", false);
  for (const auto& f : j["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("sha256") ||
        !f["sha256"].is_string() || !f.contains("bytes") || !f["bytes"].is_number_integer()) {
      return bad("a file of meta.json lacks path, bytes or sha256");
    }
    pb::PackageFile file;
    file.set_relative_path(f["path"].get<std::string>());
    file.set_sha256(f["sha256"].get<std::string>());
    file.set_bytes(f["bytes"].get<int64_t>());
    if (!SafeRelative(file.relative_path()) || (file.relative_path().empty() && e.folder)) {
      return bad("a file of meta.json has an unsafe path");
    }
    e.files.push_back(std::move(file));
  }
  if (!e.folder && e.files.size() != 1) return bad("a file entry must list one file");
  if (j.contains("original")) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(j["original"].dump(), &e.original, opts)
             .ok()) {
      return bad("its original result cannot be read");
    }
  }
  return e;
}

Status StoreCacheEntry(const pb::CacheStore& store, const std::string& published,
                       const pb::OutputResult& result, int64_t now_ms) {
  const std::string& entry = store.entry();
  if (entry.empty() || store.key().empty()) return Status::InvalidArgument("no cache entry named");
  std::error_code ec;
  if (fs::exists(fs::path(entry) / kMeta, ec)) return Status::OK();  // kept already
  const fs::path parent = fs::path(entry).parent_path();
  Status made = CreateDirsDurably(parent.string());
  if (!made.ok()) return made;
  const std::string temp =
      (parent / ("." + store.key() + ".tmp-" + HexBytes(SecureRandomBytes(6)))).string();
  auto give_up = [&](Status s) {
    fs::remove_all(temp, ec);
    return s;
  };
  fs::create_directory(temp, ec);
  if (ec) return Status::IOError("cannot create " + temp + ": " + ec.message());
  const std::string data = (fs::path(temp) / kData).string();
  nlohmann::json files = nlohmann::json::array();
  const bool folder = result.files_size() > 0;
  if (folder) {
    fs::create_directory(data, ec);
    for (const auto& f : result.files()) {
      if (!SafeRelative(f.relative_path()) || f.relative_path().empty()) {
        return give_up(Status::InvalidArgument("unsafe file " + f.relative_path()));
      }
      const fs::path to = fs::path(data) / f.relative_path();
      fs::create_directories(to.parent_path(), ec);
      Status linked = LinkOrCopy(JoinRel(published, f.relative_path()), to.string());
      if (!linked.ok()) return give_up(linked);
      files.push_back({{"path", f.relative_path()}, {"bytes", f.bytes()}, {"sha256", f.sha256()}});
    }
  } else {
    Status linked = LinkOrCopy(published, data);
    if (!linked.ok()) return give_up(linked);
    files.push_back({{"path", ""}, {"bytes", result.bytes()}, {"sha256", result.sha256()}});
  }
  pb::OutputResult original = result;
  original.clear_files();  // listed once, above
  std::string original_json;
  google::protobuf::util::JsonPrintOptions popts;
  popts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(original, &original_json, popts);
  nlohmann::json meta = {{"key", store.key()},
                         {"ffmpeg_version", store.ffmpeg_version()},
                         {"made_by", store.delivery()},
                         {"made_in_version", store.version()},
                         {"created_ms", now_ms},
                         {"folder", folder},
                         {"files", std::move(files)},
                         {"original", nlohmann::json::parse(original_json, nullptr, false)}};
  Status wrote = WriteFileAtomically((fs::path(temp) / kMeta).string(), meta.dump(1));
  if (!wrote.ok()) return give_up(wrote);
  if (::rename(temp.c_str(), entry.c_str()) != 0) {
    const int err = errno;
    // Another worker kept the same output first: theirs stands.
    if (err == EEXIST || err == ENOTEMPTY) return give_up(Status::OK());
    return give_up(
        Status::IOError("cannot rename " + temp + " to " + entry + ": " + std::strerror(err)));
  }
  return FsyncDir(parent.string());
}

Status MaterializeCacheEntry(const pb::Reuse& reuse, bool folder, const std::string& temp) {
  const std::string data = (fs::path(reuse.entry()) / kData).string();
  std::error_code ec;
  auto give_up = [&](Status s) {
    fs::remove_all(temp, ec);
    return s;
  };
  if (reuse.files_size() == 0) return Status::InvalidArgument("the reuse lists no files");
  if (folder) {
    fs::create_directory(temp, ec);
    if (ec) return Status::IOError("cannot create " + temp + ": " + ec.message());
  }
  for (const auto& f : reuse.files()) {
    if (!SafeRelative(f.relative_path()) || f.relative_path().empty() != !folder) {
      return give_up(Status::InvalidArgument("unsafe file " + f.relative_path()));
    }
    const std::string to = JoinRel(temp, f.relative_path());
    if (folder) fs::create_directories(fs::path(to).parent_path(), ec);
    Status linked = LinkOrCopy(JoinRel(data, f.relative_path()), to);
    if (linked.code() == Status::Code::kNotFound) {
      return give_up(
          Status::DataLoss("cache entry " + reuse.entry() + " lost " +
                           (f.relative_path().empty() ? "its file" : f.relative_path())));
    }
    if (!linked.ok()) return give_up(linked);
    // A symlink planted in the entry would publish a link (link(2) does not
    // follow it): only regular files are outputs.
    if (fs::symlink_status(to, ec).type() != fs::file_type::regular) {
      return give_up(Status::DataLoss("cache entry " + reuse.entry() + " holds something not a " +
                                      "regular file at " +
                                      (f.relative_path().empty() ? "data" : f.relative_path())));
    }
    StatusOr<std::string> sha = Sha256File(to);
    if (!sha.ok()) return give_up(sha.status());
    if (*sha != f.sha256()) {
      return give_up(Status::DataLoss("cache entry " + reuse.entry() + " is corrupt: " +
                                      (f.relative_path().empty() ? "its file" : f.relative_path()) +
                                      " has SHA-256 " + *sha + ", not " + f.sha256()));
    }
  }
  return Status::OK();
}

void TouchCacheEntry(const std::string& entry_path) {
  std::error_code ec;
  fs::last_write_time(fs::path(entry_path) / kMeta, fs::file_time_type::clock::now(), ec);
}

void DiscardCacheEntry(const std::string& entry_path) {
  const std::string aside = entry_path + ".bad-" + HexBytes(SecureRandomBytes(6));
  std::error_code ec;
  if (::rename(entry_path.c_str(), aside.c_str()) != 0) return;
  fs::remove_all(aside, ec);
}

EvictionResult EvictCache(const std::string& root, int64_t max_bytes) {
  EvictionResult out;
  struct Found {
    fs::file_time_type used;
    std::string path;
    int64_t bytes;
  };
  std::vector<Found> entries;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& shard : fs::directory_iterator(root, ec)) {
    if (!shard.is_directory(ec)) continue;
    for (const auto& item : fs::directory_iterator(shard.path(), ec)) {
      const std::string name = item.path().filename().string();
      if (name.rfind('.', 0) == 0 || name.find(".bad-") != std::string::npos) {
        // An interrupted store or discard: gone once surely abandoned.
        auto when = fs::last_write_time(item.path(), ec);
        if (!ec && now - when > std::chrono::hours(1)) fs::remove_all(item.path(), ec);
        continue;
      }
      StatusOr<CacheEntry> e = ReadCacheEntry(item.path().string());
      if (!e.ok()) {
        if (e.status().code() == Status::Code::kDataLoss) fs::remove_all(item.path(), ec);
        continue;
      }
      auto used = fs::last_write_time(item.path() / kMeta, ec);
      entries.push_back({used, item.path().string(), e->bytes()});
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const Found& a, const Found& b) { return a.used < b.used; });
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  size_t k = 0;
  for (; k < entries.size() && total > max_bytes; ++k) {
    DiscardCacheEntry(entries[k].path);
    total -= entries[k].bytes;
    out.bytes_freed += entries[k].bytes;
    ++out.evicted;
  }
  out.after.entries = static_cast<int>(entries.size() - k);
  out.after.bytes = total;
  return out;
}

}  // namespace reelfarm
