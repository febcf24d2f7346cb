// Durable file operations: what survives a crash is either the old state or
// the complete new one, never a torn file at a final name.
#ifndef REELFARM_COMMON_FS_UTIL_H_
#define REELFARM_COMMON_FS_UTIL_H_

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

// Whether `path`, with every symlink in its existing part resolved, lies in
// (or is) one of `roots` (also resolved). An empty `roots` allows anything.
bool PathInsideRoots(const std::string& path, const std::vector<std::string>& roots);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_FS_UTIL_H_
