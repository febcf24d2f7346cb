// Running the real `reelfarm` binary from a test.
#ifndef REELFARM_TESTS_SUPPORT_CLI_RUN_H_
#define REELFARM_TESTS_SUPPORT_CLI_RUN_H_

#include <string>
#include <vector>

namespace reelfarm::testing {

struct CliRun {
  int rc = -1;      // exit code; 124 on timeout, 128+N when killed by signal N
  std::string out;  // all of stdout
  std::string err;  // the last 64 KiB of stderr
};

// Runs build/bin/reelfarm with `args` (no shell), at most 180 s.
CliRun RunCli(const std::vector<std::string>& args);

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_CLI_RUN_H_
