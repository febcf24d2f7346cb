#include "common/thread_budget.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace reelfarm {
namespace {

// The cores a CPU quota of `quota` per `period` microseconds allows; 0 when
// there is no quota.
double QuotaCores(double quota, double period) {
  return quota > 0 && period > 0 ? quota / period : 0;
}

// cgroup v2 "cpu.max": "max 100000" or "200000 100000".
double CpuMaxCores(const std::string& path) {
  std::ifstream in(path);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  try {
    return QuotaCores(std::stod(quota), period);
  } catch (...) {
    return 0;
  }
}

// cgroup v1 cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us.
double CfsCores(const std::string& dir) {
  std::ifstream q(dir + "/cpu.cfs_quota_us"), p(dir + "/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if (!(q >> quota) || !(p >> period)) return 0;
  return QuotaCores(quota, period);
}

// The lowest CPU quota of this process's cgroups, in cores; 0 when none.
double CgroupQuotaCores() {
  std::vector<double> found;
  auto consider = [&](double cores) {
    if (cores > 0) found.push_back(cores);
  };
  consider(CpuMaxCores("/sys/fs/cgroup/cpu.max"));
  consider(CfsCores("/sys/fs/cgroup/cpu"));
  consider(CfsCores("/sys/fs/cgroup/cpu,cpuacct"));
  std::ifstream self("/proc/self/cgroup");
  std::string line;
  while (std::getline(self, line)) {
    // "ID:CONTROLLERS:PATH"
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (path == "/" || path.find("..") != std::string::npos) continue;
    if (controllers.empty()) {
      consider(CpuMaxCores("/sys/fs/cgroup" + path + "/cpu.max"));
      consider(CpuMaxCores("/sys/fs/cgroup/unified" + path + "/cpu.max"));
    }
    std::stringstream list(controllers);
    std::string c;
    while (std::getline(list, c, ',')) {
      if (c == "cpu") {
        consider(CfsCores("/sys/fs/cgroup/cpu" + path));
        consider(CfsCores("/sys/fs/cgroup/cpu,cpuacct" + path));
      }
    }
  }
  return found.empty() ? 0 : *std::min_element(found.begin(), found.end());
}

// Index of the element after `option` in segment [begin, end), or end.
size_t ValueOf(const std::vector<std::string>& argv, size_t begin, size_t end,
               const std::string& option) {
  for (size_t i = begin; i + 1 < end; ++i) {
    if (argv[i] == option) return i + 1;
  }
  return end;
}

}  // namespace

int UsableCores() {
  int cores = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = 1;
  double quota = CgroupQuotaCores();
  if (quota > 0) cores = std::min(cores, std::max(1, static_cast<int>(std::ceil(quota - 0.01))));
  return cores;
}

int DefaultSlots(int cores) { return std::max(1, cores / 4); }

int ThreadsPerSlot(int cores, int slots) {
  if (slots < 1) slots = 1;
  return std::max(1, static_cast<int>(std::lround(static_cast<double>(cores) / slots)));
}

std::vector<std::string> ApplyThreadBudget(const std::vector<std::string>& argv,
                                           const std::vector<std::string>& outputs, int threads) {
  if (argv.empty()) return argv;
  const std::string t = std::to_string(std::max(1, threads));
  auto has = [&](const std::string& option) {
    return std::find(argv.begin(), argv.end(), option) != argv.end();
  };
  std::vector<std::string> out = {argv[0]};
  if (!has("-filter_threads")) out.insert(out.end(), {"-filter_threads", t});
  if (!has("-filter_complex_threads")) out.insert(out.end(), {"-filter_complex_threads", t});
  // argv[segment, i) holds the options of the next input or output.
  size_t segment = 1;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "-i" && i + 1 < argv.size()) {
      if (ValueOf(argv, segment, i, "-threads") == i) out.insert(out.end(), {"-threads", t});
      out.insert(out.end(), {a, argv[i + 1]});
      segment = ++i + 1;
      continue;
    }
    if (std::find(outputs.begin(), outputs.end(), a) != outputs.end()) {
      const size_t codec = ValueOf(argv, segment, i, "-c:v");
      const bool x265 = codec != i && argv[codec] == "libx265";
      if (x265 && ValueOf(argv, segment, i, "-x265-params") == i) {
        out.insert(out.end(), {"-x265-params", "pools=" + t});
      }
      if (ValueOf(argv, segment, i, "-threads") == i) {
        // libx265 takes -threads as its frame threads and refuses more than
        // 16 (FFmpeg 5.1); its pool has the whole budget.
        out.insert(out.end(), {"-threads", x265 ? std::to_string(std::min(16, threads)) : t});
      }
      out.push_back(a);
      segment = i + 1;
      continue;
    }
    // An -x265-params value without a pool size gets the budget's.
    if (argv[i - 1] == "-x265-params" && a.find("pools=") == std::string::npos) {
      out.push_back(a + ":pools=" + t);
      continue;
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace reelfarm
