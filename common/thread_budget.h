// Thread budgets: a worker with C cores and S slots gives each FFmpeg about
// C/S threads, so its slots never oversubscribe the machine (docs/scaling.md).
#ifndef REELFARM_COMMON_THREAD_BUDGET_H_
#define REELFARM_COMMON_THREAD_BUDGET_H_

#include <string>
#include <vector>

namespace reelfarm {

// Cores this process may run on: its CPU affinity, lowered by a cgroup CPU
// quota (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us) when one is
// set. At least 1.
int UsableCores();

// The default number of slots for a worker with `cores` cores: one slot per
// 4 cores (at least 1). At 1080p an x264/x265/ProRes encoder scales well to
// about 4 threads and less well beyond (frame threads add latency and memory,
// slice threads cost quality); more, narrower slots keep every core busy.
int DefaultSlots(int cores);

// Threads for each FFmpeg of a worker with `cores` cores and `slots` slots:
// cores / slots rounded to nearest, at least 1.
int ThreadsPerSlot(int cores, int slots);

// Applies a budget of `threads` to an FFmpeg argument vector, pure:
//  - `-filter_threads T -filter_complex_threads T` after argv[0];
//  - `-threads T` before every `-i` (decoder threads);
//  - `-threads T` right before every output path in `outputs` (encoder
//    threads; libx264, prores_ks and dnxhd take theirs from it);
//  - for an output encoded with libx265, `pools=T` in its -x265-params
//    (x265 sizes its own thread pool from the machine otherwise), and at
//    most 16 for its -threads (its frame threads: x265 refuses more).
// Options the argv already sets for threads are left as they are and the
// budget is not added a second time there. REQUIRES: threads >= 1.
std::vector<std::string> ApplyThreadBudget(const std::vector<std::string>& argv,
                                           const std::vector<std::string>& outputs, int threads);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_THREAD_BUDGET_H_
