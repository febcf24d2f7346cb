#include "common/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace reelfarm {
namespace {

Status ErrnoStatus(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

Status FsyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open " + path, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("fsync " + path, err);
  return Status::OK();
}

}  // namespace

Status FsyncFile(const std::string& path) { return FsyncPath(path, O_RDONLY); }

Status FsyncDir(const std::string& dir) {
  return FsyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

Status RenameDurably(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus("cannot rename " + from + " to " + to, errno);
  }
  return FsyncDir(std::filesystem::path(to).parent_path().string());
}

Status RemoveIfExists(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus("cannot remove " + path, errno);
  }
  return Status::OK();
}

Status CreateDirsDurably(const std::string& dir) {
  if (dir.empty()) return Status::OK();
  std::filesystem::path target = std::filesystem::path(dir).lexically_normal();
  std::filesystem::path prefix;
  for (const auto& part : target) {
    prefix /= part;
    if (part.empty() || part == "/" || part == "." || part == "..") continue;
    struct stat st;
    if (::stat(prefix.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::IOError("cannot create " + dir + ": " + prefix.string() +
                               " is not a folder");
      continue;
    }
    if (::mkdir(prefix.c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;  // created concurrently
      return ErrnoStatus("cannot create " + prefix.string(), errno);
    }
    std::string parent = prefix.parent_path().string();
    Status s = FsyncDir(parent.empty() ? "." : parent);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path p(path);
  std::string tmp =
      (p.parent_path() / ("." + p.filename().string() + "." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1)) + ".tmp"))
          .string();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create " + tmp, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoStatus("cannot write " + tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return ErrnoStatus("fsync " + tmp, err);
  }
  close(fd);
  Status s = RenameDurably(tmp, path);
  if (!s.ok()) unlink(tmp.c_str());
  return s;
}

bool PathInsideRoots(const std::string& path, const std::vector<std::string>& roots) {
  if (roots.empty()) return true;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  if (ec) return false;
  for (const auto& root : roots) {
    std::filesystem::path r = std::filesystem::weakly_canonical(std::filesystem::absolute(root), ec);
    if (ec) continue;
    auto [ri, pi] = std::mismatch(r.begin(), r.end(), p.begin(), p.end());
    // A trailing separator leaves an empty last element in r.
    if (ri == r.end() || (std::next(ri) == r.end() && ri->empty())) return true;
  }
  return false;
}

}  // namespace reelfarm
