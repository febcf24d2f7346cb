#include "common/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

StatusOr<std::string> ReadSmallFile(const std::string& path, uintmax_t max_bytes) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status::NotFound(path + " is missing: " + std::strerror(err));
    }
    return Status::IOError("cannot read " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  if (static_cast<uintmax_t>(st.st_size) > max_bytes) {
    return Status::InvalidArgument(path + " is too large (" + std::to_string(st.st_size) +
                                   " bytes, at most " + std::to_string(max_bytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read " + path);
  return text.str();
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

StatusOr<OpenedDir> OpenedDir::Open(const std::string& dir, const std::vector<std::string>& roots) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open " + dir, errno);
  // What was opened, whatever the path names by now.
  std::error_code ec;
  std::string real =
      std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
  if (ec || real.empty() || real[0] != '/') {
    close(fd);
    return Status::IOError("cannot tell where " + dir + " is" +
                           (ec ? ": " + ec.message() : std::string()));
  }
  if (!PathInsideRoots(real, roots)) {
    close(fd);
    return Status::InvalidArgument(dir + " is now " + real + ", outside every allowed root");
  }
  return OpenedDir(fd, std::move(real));
}

OpenedDir::OpenedDir(OpenedDir&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), real_path_(std::move(other.real_path_)) {}

OpenedDir& OpenedDir::operator=(OpenedDir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    real_path_ = std::move(other.real_path_);
  }
  return *this;
}

OpenedDir::~OpenedDir() {
  if (fd_ >= 0) close(fd_);
}

Status OpenedDir::WriteFileAtomically(const std::string& name, const std::string& content) const {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::InvalidArgument("not a plain file name: " + name);
  }
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = "." + name + "." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1)) + ".tmp";
  const std::string where = real_path_ + "/";
  int fd = openat(fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create " + where + tmp, errno);
  size_t done = 0;
  int err = 0;
  while (done < content.size() && err == 0) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno != EINTR) err = errno;
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (err == 0 && fsync(fd) != 0) err = errno;
  close(fd);
  if (err == 0 && renameat(fd_, tmp.c_str(), fd_, name.c_str()) != 0) err = errno;
  if (err != 0) {
    unlinkat(fd_, tmp.c_str(), 0);
    return ErrnoStatus("cannot write " + where + name, err);
  }
  if (fsync(fd_) != 0) return ErrnoStatus("fsync " + real_path_, errno);
  return Status::OK();
}

namespace {

// Removes `name` in the folder `dirfd`, depth first, following no symlink.
Status RemoveTreeAt(int dirfd, const std::string& name, const std::string& shown, int depth) {
  if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return Status::OK();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus("cannot remove " + shown, errno);
  if (depth > 64) return Status::IOError("cannot remove " + shown + ": too deep");
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open " + shown, errno);
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    close(fd);
    return ErrnoStatus("cannot list " + shown, err);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  Status s;
  for (const auto& n : names) {
    s = RemoveTreeAt(fd, n, shown + "/" + n, depth + 1);
    if (!s.ok()) break;
  }
  closedir(d);  // closes fd
  if (!s.ok()) return s;
  if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus("cannot remove " + shown, errno);
  }
  return Status::OK();
}

}  // namespace

Status OpenedDir::RemoveTree(const std::string& name) const {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::InvalidArgument("not a plain file name: " + name);
  }
  return RemoveTreeAt(fd_, name, real_path_ + "/" + name, 0);
}

std::vector<std::string> MissingDirs(const std::string& dir) {
  std::vector<std::string> missing;
  std::error_code ec;
  for (std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
       !p.empty() && p != p.root_path() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
    if (p.filename().empty()) continue;  // a trailing '/'
    missing.push_back(p.string());
  }
  return missing;
}

void RemoveEmptyDirs(const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    if (rmdir(d.c_str()) != 0) return;  // not empty (or gone): the ones above stay too
  }
}

bool PathInsideRoots(const std::string& path, const std::vector<std::string>& roots) {
  if (roots.empty()) return true;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  if (ec) return false;
  for (const auto& root : roots) {
    std::filesystem::path r =
        std::filesystem::weakly_canonical(std::filesystem::absolute(root), ec);
    if (ec) continue;
    auto [ri, pi] = std::mismatch(r.begin(), r.end(), p.begin(), p.end());
    // A trailing separator leaves an empty last element in r.
    if (ri == r.end() || (std::next(ri) == r.end() && ri->empty())) return true;
  }
  return false;
}

}  // namespace reelfarm
