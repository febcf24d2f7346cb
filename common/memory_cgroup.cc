#include "common/memory_cgroup.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace reelfarm {
namespace {

namespace fs = std::filesystem;

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

Status WriteValue(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  if (!out) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  out << value;
  out.flush();
  if (!out) return Status::IOError("cannot write " + value + " to " + path);
  return Status::OK();
}

// The number after `key` in a "key value" per line file (memory.events,
// memory.oom_control); 0 when absent.
int64_t KeyedValue(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  int64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

// This process's cgroup path for a v1 controller ("memory") or for v2 ("").
std::string OwnCgroupPath(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controller.empty()
            ? controllers.empty() && line.substr(0, a) == "0"
            : ("," + controllers + ",").find("," + controller + ",") != std::string::npos) {
      return path;
    }
  }
  return "";
}

// 2 for a v2 cgroup with the memory controller available, 1 for a v1 memory
// cgroup, 0 for neither.
int VersionOf(const std::string& dir) {
  std::string controllers;
  if (ReadFile(dir + "/cgroup.controllers", &controllers)) {
    return controllers.find("memory") != std::string::npos ? 2 : 0;
  }
  return fs::exists(dir + "/memory.limit_in_bytes") ? 1 : 0;
}

// Whether a v2 cgroup has processes of its own.
bool HasProcesses(const std::string& dir) {
  std::string procs;
  return ReadFile(dir + "/cgroup.procs", &procs) &&
         procs.find_first_of("0123456789") != std::string::npos;
}

}  // namespace

MemoryCgroup::~MemoryCgroup() {
  // Its processes have been reaped; a cgroup without any is removed with
  // rmdir (the kernel may need a moment to let go of the last one).
  for (int i = 0; i < 20 && ::rmdir(dir_.c_str()) != 0 && errno == EBUSY; ++i) {
    ::usleep(5000);
  }
}

uint64_t MemoryCgroup::PeakBytes() const {
  std::string text;
  if (!ReadFile(dir_ + (version_ == 2 ? "/memory.peak" : "/memory.max_usage_in_bytes"), &text)) {
    return 0;
  }
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

int MemoryCgroup::OomKills() const {
  return static_cast<int>(version_ == 2 ? KeyedValue(dir_ + "/memory.events", "oom_kill")
                                        : KeyedValue(dir_ + "/memory.oom_control", "oom_kill"));
}

StatusOr<std::unique_ptr<MemoryCgroupParent>> MemoryCgroupParent::Open(const std::string& dir) {
  std::string parent = dir;
  int version = 0;
  if (!parent.empty()) {
    version = VersionOf(parent);
  } else {
    // Prefer v2 where it has the memory controller, else v1's.
    for (const std::string root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      std::string own = OwnCgroupPath("");
      if (own.empty()) break;
      std::string candidate = root + (own == "/" ? "" : own);
      if (fs::exists(candidate + "/cgroup.controllers") && VersionOf(candidate) == 2) {
        parent = candidate;
        version = 2;
        break;
      }
    }
    if (version == 0) {
      std::string own = OwnCgroupPath("memory");
      for (const std::string root : {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory,cpu"}) {
        std::string candidate = root + (own == "/" ? "" : own);
        if (!own.empty() && VersionOf(candidate) == 1) {
          parent = candidate;
          version = 1;
          break;
        }
      }
    }
  }
  if (parent.empty() || version == 0) {
    return Status::Unavailable("no memory cgroup controller" +
                               (parent.empty() ? std::string() : " in " + parent));
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return Status::Unavailable("cannot create cgroups in " + parent + ": " + std::strerror(errno));
  }
  if (version == 2) {
    std::string subtree;
    ReadFile(parent + "/cgroup.subtree_control", &subtree);
    if (subtree.find("memory") == std::string::npos) {
      // v2: no processes beside controlled children. Step into a leaf first
      // when the parent is where this process lives.
      if (HasProcesses(parent)) {
        std::string self = parent + "/reelfarm-self";
        std::error_code ec;
        fs::create_directory(self, ec);
        Status moved = WriteValue(self + "/cgroup.procs", std::to_string(::getpid()));
        if (!moved.ok())
          return Status::Unavailable("cannot leave " + parent + ": " + moved.message());
      }
      Status on = WriteValue(parent + "/cgroup.subtree_control", "+memory");
      if (!on.ok()) return Status::Unavailable(on.message());
    }
  }
  return std::unique_ptr<MemoryCgroupParent>(new MemoryCgroupParent(parent, version));
}

StatusOr<std::unique_ptr<MemoryCgroup>> MemoryCgroupParent::Create(const std::string& name,
                                                                   uint64_t limit_bytes) const {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return Status::InvalidArgument("bad cgroup name " + name);
  }
  std::string dir = dir_ + "/" + name;
  std::error_code ec;
  if (fs::exists(dir, ec)) ::rmdir(dir.c_str());  // a leftover of a crashed run
  if (!fs::create_directory(dir, ec)) {
    return Status::IOError("cannot create cgroup " + dir + ": " + ec.message());
  }
  auto cg = std::make_unique<MemoryCgroup>(dir, version_);
  const std::string limit = std::to_string(limit_bytes);
  Status s;
  if (version_ == 2) {
    s = WriteValue(dir + "/memory.max", limit);
    if (s.ok() && fs::exists(dir + "/memory.swap.max"))
      s = WriteValue(dir + "/memory.swap.max", "0");
  } else {
    s = WriteValue(dir + "/memory.limit_in_bytes", limit);
    if (s.ok() && fs::exists(dir + "/memory.memsw.limit_in_bytes")) {
      s = WriteValue(dir + "/memory.memsw.limit_in_bytes", limit);
    }
  }
  if (!s.ok()) return s;
  return cg;
}

}  // namespace reelfarm
