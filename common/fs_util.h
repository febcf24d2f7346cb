// Durable file operations: what survives a crash is either the old state or
// the complete new one, never a torn file at a final name.
#ifndef REELFARM_COMMON_FS_UTIL_H_
#define REELFARM_COMMON_FS_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm {

// fsync(2) of a file's data and metadata.
Status FsyncFile(const std::string& path);

// fsync(2) of a folder, making renames and creations in it durable.
Status FsyncDir(const std::string& dir);

// rename(2) `from` to `to` (same filesystem), then fsync of `to`'s folder.
// REQUIRES: `from` already fsynced.
Status RenameDurably(const std::string& from, const std::string& to);

// The whole of a small regular file (a playlist, a manifest, a cache entry's
// meta.json), read without following a symlink at `path`: NotFound when it
// is missing, InvalidArgument when it is not a regular file or larger than
// `max_bytes`, IOError when it cannot be read.
StatusOr<std::string> ReadSmallFile(const std::string& path, uintmax_t max_bytes);

// Removes `path` if it exists; a missing file is OK.
Status RemoveIfExists(const std::string& path);

// mkdir -p that also fsyncs the parent of every folder it creates, so a
// published file's folder survives a crash too. Folders created concurrently
// by someone else are fine.
Status CreateDirsDurably(const std::string& dir);

// Writes `content` to a hidden temporary file beside `path` (unique per call,
// so concurrent writers never share one), fsyncs it,
// renames it over `path` and fsyncs the folder.
Status WriteFileAtomically(const std::string& path, const std::string& content);

// A folder opened once and then used only through its descriptor: files are
// written and removed relative to it (openat/renameat/unlinkat, O_NOFOLLOW),
// so replacing its path, or a folder above it, with a symlink afterwards
// changes nothing that is written. Movable, not copyable.
class OpenedDir {
 public:
  // Opens `dir` (symlinks on the way are followed, as a user's path may hold
  // them) and checks that the folder actually opened lies inside `roots`
  // (none: anywhere). InvalidArgument when it does not, IOError when it
  // cannot be opened.
  static StatusOr<OpenedDir> Open(const std::string& dir, const std::vector<std::string>& roots);
  OpenedDir(OpenedDir&& other) noexcept;
  OpenedDir& operator=(OpenedDir&& other) noexcept;
  ~OpenedDir();

  // The folder's real path when it was opened (for messages).
  const std::string& real_path() const { return real_path_; }
  // Writes `content` to a hidden temporary file in the folder, fsyncs it,
  // renames it over `name` (a plain name, no '/') and fsyncs the folder. A
  // symlink at `name` is replaced, never followed.
  Status WriteFileAtomically(const std::string& name, const std::string& content) const;
  // Removes the file or folder tree `name` (a plain name) inside the folder,
  // following no symlink; missing is OK.
  Status RemoveTree(const std::string& name) const;

 private:
  OpenedDir(int fd, std::string real_path) : fd_(fd), real_path_(std::move(real_path)) {}
  int fd_ = -1;
  std::string real_path_;
};

// Folders of `dir` that do not exist yet, deepest first (what
// CreateDirsDurably would create), so a caller can take them back.
std::vector<std::string> MissingDirs(const std::string& dir);

// Removes each of `dirs` (deepest first) if it is empty; others stay.
void RemoveEmptyDirs(const std::vector<std::string>& dirs);

// Whether `path`, with every symlink in its existing part resolved, lies in
// (or is) one of `roots` (also resolved). An empty `roots` allows anything.
bool PathInsideRoots(const std::string& path, const std::vector<std::string>& roots);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_FS_UTIL_H_
