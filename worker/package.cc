#include "worker/package.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "common/fs_util.h"
#include "common/hls.h"
#include "common/probe.h"
#include "common/secure.h"
#include "worker/job_executor.h"

namespace reelfarm {
namespace {

namespace fs = std::filesystem;

// A playlist of ours is a few hundred kilobytes for a feature film.
constexpr uintmax_t kMaxPlaylistBytes = 8 << 20;
// Segments of the renditions of one package may differ by this much and
// still count as aligned (FFmpeg writes EXTINF to the microsecond).
constexpr double kAlignToleranceS = 0.0015;

// The size of the regular file `path` (no symlink), or why not: missing or
// not a file is the package's fault (InvalidArgument), anything else the
// storage's (IOError, worth another attempt).
StatusOr<int64_t> RegularFileSize(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status::InvalidArgument(path + " is missing: " + std::strerror(err));
    }
    return Status::IOError("cannot read " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  return static_cast<int64_t>(st.st_size);
}

// A playlist: missing or not a file is the package's fault (InvalidArgument),
// anything else the storage's (IOError).
StatusOr<std::string> ReadPlaylistFile(const std::string& path) {
  StatusOr<std::string> text = ReadSmallFile(path, kMaxPlaylistBytes);
  if (text.status().code() == Status::Code::kNotFound) {
    return Status::InvalidArgument(text.status().message());
  }
  return text;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f s", s);
  return buf;
}

// ffprobe's JSON of a playlist: what it holds, and its first stream's codec
// string.
struct Probed {
  pb::MediaInfo media;
  std::string codecs;
};

StatusOr<Probed> ProbePlaylist(ProcessRunner& runner, const std::string& ffprobe,
                               const std::string& path, bool want_codecs) {
  StatusOr<std::string> json = RunProbeArgv(runner, PackageProbeArgv(ffprobe, path), path);
  if (!json.ok()) return json.status();
  StatusOr<pb::MediaInfo> media = MediaInfoFromProbeJson(*json);
  if (!media.ok()) return Status::InvalidArgument(media.status().message());
  Probed p;
  p.media = *std::move(media);
  if (!want_codecs) return p;
  nlohmann::json doc = nlohmann::json::parse(*json, nullptr, false);
  if (doc.is_discarded() || !doc.contains("streams") || !doc["streams"].is_array() ||
      doc["streams"].empty() || !doc["streams"][0].is_object()) {
    return Status::InvalidArgument("ffprobe found no stream in " + path);
  }
  const nlohmann::json& s = doc["streams"][0];
  const std::string codec = s.value("codec_name", "");
  const std::string extradata = s.contains("extradata") && s["extradata"].is_string()
                                    ? s["extradata"].get<std::string>()
                                    : "";
  StatusOr<std::string> codecs = CodecString(codec, ParseHexDump(extradata));
  if (!codecs.ok()) return Status::InvalidArgument(path + ": " + codecs.status().message());
  p.codecs = *codecs;
  return p;
}

// Whether `relative` stays inside the package folder: relative, and no
// component empty, "." or "..".
bool InsidePackage(const std::string& relative) {
  const fs::path p(relative);
  if (relative.empty() || p.is_absolute()) return false;
  for (const auto& part : p) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

}  // namespace

StatusOr<FinishedPackage> FinishPackage(ProcessRunner& runner, const std::string& ffprobe,
                                        const std::string& folder, const pb::JobOutput& out) {
  const pb::StreamingPackage& plan = out.package();
  FinishedPackage done;
  std::vector<pb::RenditionResult> video;
  std::optional<pb::RenditionResult> audio;
  // The first picture rendition's playlist, which the others must align with.
  std::optional<MediaPlaylist> reference;
  std::string reference_name;
  // Every file a playlist names (and the playlists and master themselves):
  // anything else in the folder is refused, never published.
  std::set<std::string> named = {plan.master()};
  int audio_channels = 2;
  double fps = 0;
  if (!InsidePackage(plan.master())) {
    return Status::InvalidArgument("the package's master playlist " + plan.master() +
                                   " is not inside its folder");
  }
  for (const pb::Rendition& r : plan.renditions()) {
    if (!InsidePackage(r.playlist())) {
      return Status::InvalidArgument("rendition " + r.name() + "'s playlist " + r.playlist() +
                                     " is not inside the package's folder");
    }
    const std::string path = (fs::path(folder) / r.playlist()).string();
    const std::string dir = fs::path(path).parent_path().string();
    auto wrong = [&](const std::string& why) {
      return Status::InvalidArgument("rendition " + r.name() + ": " + why);
    };
    StatusOr<std::string> text = ReadPlaylistFile(path);
    if (!text.ok()) {
      return text.status().code() == Status::Code::kInvalidArgument ? wrong(text.status().message())
                                                                    : text.status();
    }
    StatusOr<MediaPlaylist> playlist = ReadMediaPlaylist(*text);
    if (!playlist.ok()) return wrong(playlist.status().message());
    if (!playlist->ended) return wrong("the playlist has no EXT-X-ENDLIST (it is incomplete)");
    if (playlist->map_uri.empty()) return wrong("the playlist has no init segment (EXT-X-MAP)");
    if (StatusOr<int64_t> init = RegularFileSize((fs::path(dir) / playlist->map_uri).string());
        !init.ok()) {
      return wrong(init.status().message());
    }
    std::vector<int64_t> bytes;
    for (const MediaSegment& seg : playlist->segments) {
      StatusOr<int64_t> size = RegularFileSize((fs::path(dir) / seg.uri).string());
      if (!size.ok()) return wrong(size.status().message());
      bytes.push_back(*size);
    }
    const MediaPlaylist& p = *playlist;
    const fs::path rendition_dir = fs::path(r.playlist()).parent_path();
    named.insert(r.playlist());
    named.insert((rendition_dir / p.map_uri).string());
    for (const MediaSegment& seg : p.segments) named.insert((rendition_dir / seg.uri).string());
    if (!r.audio()) {
      // One segment per GOP: every segment but the last is the planned length,
      // and each starts where it does in the other renditions.
      for (size_t k = 0; k + 1 < p.segments.size(); ++k) {
        if (std::fabs(p.segments[k].duration_s - plan.segment_s()) > kAlignToleranceS) {
          return wrong("segment " + std::to_string(k) + " lasts " +
                       Seconds(p.segments[k].duration_s) + ", not " + Seconds(plan.segment_s()) +
                       " (a key frame out of place)");
        }
      }
      if (!reference) {
        reference = p;
        reference_name = r.name();
      } else {
        bool aligned = p.segments.size() == reference->segments.size();
        for (size_t k = 0; aligned && k < p.segments.size(); ++k) {
          aligned = std::fabs(p.segments[k].duration_s - reference->segments[k].duration_s) <=
                    kAlignToleranceS;
        }
        if (!aligned) {
          return wrong("its segments are not aligned with rendition " + reference_name + "'s (" +
                       std::to_string(p.segments.size()) + " against " +
                       std::to_string(reference->segments.size()) + " segments)");
        }
      }
    }
    StatusOr<Probed> probed = ProbePlaylist(runner, ffprobe, path, true);
    if (!probed.ok()) {
      return probed.status().code() == Status::Code::kInvalidArgument
                 ? wrong(probed.status().message())
                 : probed.status();
    }
    if (std::string diff = CompareMedia(r.expect(), probed->media); !diff.empty()) {
      return wrong(diff);
    }
    const Bandwidth bw = MeasureBandwidth(p, bytes);
    pb::RenditionResult result;
    result.set_name(r.name());
    result.set_playlist(r.playlist());
    result.set_peak_bps(bw.peak_bps);
    result.set_average_bps(bw.average_bps);
    result.set_codecs(probed->codecs);
    result.set_width(probed->media.width());
    result.set_height(probed->media.height());
    result.set_segments(static_cast<int32_t>(p.segments.size()));
    if (r.audio()) {
      audio = result;
      audio_channels = probed->media.audio_channels();
    } else {
      video.push_back(result);
      if (probed->media.fps_den() > 0) {
        fps = double(probed->media.fps_num()) / probed->media.fps_den();
      }
    }
    done.renditions.push_back(std::move(result));
  }
  if (video.empty()) return Status::InvalidArgument("the package has no picture rendition");

  const std::string master = (fs::path(folder) / plan.master()).string();
  Status written = WriteFileAtomically(
      master, MasterPlaylist(video, audio ? &*audio : nullptr, fps, audio_channels));
  if (!written.ok()) return written;
  StatusOr<Probed> whole = ProbePlaylist(runner, ffprobe, master, false);
  if (!whole.ok()) return whole.status();
  if (!whole->media.has_video() || whole->media.has_audio() != audio.has_value()) {
    return Status::InvalidArgument("the master playlist does not read back as the package");
  }
  done.media = whole->media;

  // Every file durable and hashed; nothing but files and folders.
  std::error_code ec;
  std::vector<std::string> dirs = {folder};
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    const std::string relative = p.lexically_relative(folder).string();
    if (fs::is_directory(st)) {
      dirs.push_back(p.string());
      continue;
    }
    if (!fs::is_regular_file(st)) {
      return Status::InvalidArgument("the package holds " + relative +
                                     ", which is not a regular file");
    }
    if (named.count(relative) == 0) {
      return Status::InvalidArgument("the package holds " + relative + ", which no playlist names");
    }
    Status synced = FsyncFile(p.string());
    if (!synced.ok()) return synced;
    StatusOr<std::string> sha = Sha256File(p.string());
    if (!sha.ok()) return sha.status();
    pb::PackageFile f;
    f.set_relative_path(relative);
    f.set_bytes(static_cast<int64_t>(fs::file_size(p, ec)));
    f.set_sha256(*sha);
    done.bytes += f.bytes();
    done.files.push_back(std::move(f));
  }
  if (ec) return Status::IOError("cannot list " + folder + ": " + ec.message());
  for (const auto& d : dirs) {
    Status synced = FsyncDir(d);
    if (!synced.ok()) return synced;
  }
  std::sort(done.files.begin(), done.files.end(),
            [](const pb::PackageFile& a, const pb::PackageFile& b) {
              return a.relative_path() < b.relative_path();
            });
  done.sha256 = Sha256Hex(PackageListing(done.files));
  return done;
}

bool IsOurPackage(const std::string& dir) {
  static const std::regex kRenditionFile(R"(index\.m3u8|init(_[0-9]+)?\.mp4|seg_[0-9]+\.m4s)");
  std::error_code ec;
  bool has_master = false;
  for (fs::directory_iterator top(dir, ec), end; !ec && top != end; top.increment(ec)) {
    const std::string name = top->path().filename().string();
    const fs::file_status st = top->symlink_status(ec);
    if (ec) return false;
    if (fs::is_regular_file(st) && name == "master.m3u8") {
      has_master = true;
      continue;
    }
    if (!fs::is_directory(st)) return false;
    for (fs::directory_iterator in(top->path(), ec), e; !ec && in != e; in.increment(ec)) {
      const fs::file_status fst = in->symlink_status(ec);
      if (ec || !fs::is_regular_file(fst) ||
          !std::regex_match(in->path().filename().string(), kRenditionFile)) {
        return false;
      }
    }
    if (ec) return false;
  }
  return !ec && has_master;
}

Status PublishFolder(const std::string& from, const std::string& to) {
  std::error_code ec;
  const fs::file_type existing = fs::symlink_status(to, ec).type();
  if (existing == fs::file_type::not_found) {
    if (std::rename(from.c_str(), to.c_str()) != 0) {
      return Status::IOError("rename to " + to + ": " + std::strerror(errno));
    }
    return Status::OK();
  }
  // Only an earlier package of ours is replaced; anything else at that name
  // (a user's folder, a file) stays, and the job fails for good.
  if (existing != fs::file_type::directory || !IsOurPackage(to)) {
    return Status::InvalidArgument(to +
                                   " already exists and is not a package reelfarm made; move it "
                                   "away or choose another deliverable name");
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(from, ec);  // `from` now holds the earlier package
    return Status::OK();
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return Status::IOError("exchange with the earlier " + to + ": " + std::strerror(errno));
  }
  // No atomic exchange here (NFS, CIFS): the earlier package is moved aside
  // under a hidden name, the new one renamed in, the old one removed; for
  // that moment there is no package at the name.
  const fs::path aside =
      fs::path(to).parent_path() / ("." + fs::path(to).filename().string() + ".replaced");
  fs::remove_all(aside, ec);  // left by a crash in this very step
  if (std::rename(to.c_str(), aside.c_str()) != 0) {
    return Status::IOError("move the earlier " + to + " aside: " + std::strerror(errno));
  }
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    (void)std::rename(aside.c_str(), to.c_str());  // put the earlier one back
    return Status::IOError("rename to " + to + ": " + std::strerror(err));
  }
  fs::remove_all(aside, ec);
  return Status::OK();
}

}  // namespace reelfarm
