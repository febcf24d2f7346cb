// reelfarm: the command line (see cli/commands.h for commands and exit codes).
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "cli/commands.h"
#include "cli/embedded_farm.h"

namespace {

// Set by SIGINT/SIGTERM; commands poll it and stop what they started.
std::atomic<bool> interrupted{false};

extern "C" void OnInterrupt(int) { interrupted.store(true); }

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  reelfarm::cli::CliContext ctx;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;
  ctx.terminal = isatty(STDOUT_FILENO) == 1;
  winsize ws{};
  if (ctx.terminal && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) ctx.columns = ws.ws_col;
  ctx.interrupted = &interrupted;
  ctx.bin_dir = reelfarm::cli::SelfBinDir();
  return reelfarm::cli::RunCli(argc, argv, ctx);
}
