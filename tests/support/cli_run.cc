#include "tests/support/cli_run.h"

#include "common/process_runner.h"

namespace reelfarm::testing {

CliRun RunCli(const std::vector<std::string>& args) {
  PosixProcessRunner runner;
  ProcessOptions opts;
  opts.argv = {std::string(REELFARM_BIN_DIR) + "/reelfarm"};
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.timeout_s = 180;
  opts.stderr_tail_bytes = 64 << 10;
  CliRun r;
  auto ran = runner.Run(opts);
  if (!ran.ok()) {
    r.err = ran.status().ToString();
    return r;
  }
  r.rc = ran->timed_out ? 124 : (ran->term_signal != 0 ? 128 + ran->term_signal : ran->exit_code);
  r.out = ran->stdout_data;
  r.err = ran->stderr_tail;
  return r;
}

}  // namespace reelfarm::testing
