// Memory cgroups per process: a limit on the memory an FFmpeg has in use,
// where RLIMIT_AS only limits the address space it reserves (thread stacks,
// malloc arenas), which grows with the thread count and says little about
// what it really uses (docs/scaling.md).
//
// Works with cgroup v2 (memory.max, memory.peak, memory.events) and with the
// v1 memory controller (memory.limit_in_bytes, memory.max_usage_in_bytes,
// memory.oom_control). The parent is a cgroup this process may create
// children in: its own (systemd Delegate=yes, a container that owns its
// cgroup) or one named by the operator.
#ifndef REELFARM_COMMON_MEMORY_CGROUP_H_
#define REELFARM_COMMON_MEMORY_CGROUP_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace reelfarm {

// One child cgroup; removed when destroyed (after its processes ended).
class MemoryCgroup {
 public:
  MemoryCgroup(std::string dir, int version) : dir_(std::move(dir)), version_(version) {}
  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  const std::string& dir() const { return dir_; }
  // The file a process writes its pid to in order to join (ProcessOptions).
  std::string procs_file() const { return dir_ + "/cgroup.procs"; }
  // Peak memory in use so far, bytes; 0 when the kernel does not say.
  uint64_t PeakBytes() const;
  // How many processes the kernel's OOM killer ended in it.
  int OomKills() const;

 private:
  std::string dir_;
  int version_;
};

class MemoryCgroupParent {
 public:
  // `dir`: a cgroup folder to create children in; "" = this process's own
  // memory cgroup. Unavailable (with the reason) when there is no memory
  // controller there or it is not writable. With cgroup v2 and this
  // process's own cgroup, the process first moves into a leaf child of it
  // ("reelfarm-self"), as v2 allows no processes beside controlled children.
  static StatusOr<std::unique_ptr<MemoryCgroupParent>> Open(const std::string& dir);

  // A child cgroup `name` whose processes may use at most `limit_bytes`
  // (swap included where the kernel accounts it).
  StatusOr<std::unique_ptr<MemoryCgroup>> Create(const std::string& name,
                                                 uint64_t limit_bytes) const;

  const std::string& dir() const { return dir_; }
  int version() const { return version_; }

 private:
  MemoryCgroupParent(std::string dir, int version) : dir_(std::move(dir)), version_(version) {}
  std::string dir_;
  int version_;
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_MEMORY_CGROUP_H_
