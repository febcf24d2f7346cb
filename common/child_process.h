// Long-running child processes (daemons started by `reelfarm run` and by the
// integration tests): argv only, stdout+stderr appended to a log file, stdin
// from /dev/null, their own process group, and PR_SET_PDEATHSIG=SIGKILL so
// none outlives the process that started it.
#ifndef REELFARM_COMMON_CHILD_PROCESS_H_
#define REELFARM_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace reelfarm {

// Starts argv[0] (PATH lookup when it has no '/'). An exec failure comes back
// as Unavailable naming `name` and the errno text. PR_SET_PDEATHSIG fires when
// the *thread* that forked dies: call from a thread that lives as long as the
// child should.
StatusOr<pid_t> SpawnLogged(const std::string& name, const std::vector<std::string>& argv,
                            const std::string& log_path);

// "exit code 1", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// strerror, thread-safe.
std::string ErrnoText(int err);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_CHILD_PROCESS_H_
