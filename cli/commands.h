// The `reelfarm` command line: plan, submit, status, watch, cancel,
// priority, workers, history, diff and run (the embedded farm). main() only builds a CliContext and
// calls RunCli; each command is also callable on its own for tests.
//
// Exit codes of `reelfarm`:
//   0    success; for `run` and `watch`: every deliverable was delivered
//   1    wrong command line, or the coordinator refused the request
//        (unknown delivery id, unexpected answer)
//   2    invalid spec: every problem is printed as `FILE:LINE: field: message`
//        on stderr; nothing was started and nothing written
//   3    `run`/`watch`: one or more deliverables failed or were cancelled
//        (the others are delivered)
//   4    the farm could not be reached (coordinator unreachable, Redis down
//        behind it) or, for `run`, could not be started or one of its
//        processes died; also: ffprobe could not be run
//   130  interrupted (Ctrl-C / SIGTERM); `run` stops everything it started
#ifndef REELFARM_CLI_COMMANDS_H_
#define REELFARM_CLI_COMMANDS_H_

#include <atomic>
#include <ostream>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "planning/planner.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitInvalidSpec = 2;
inline constexpr int kExitFailed = 3;
inline constexpr int kExitUnavailable = 4;
// Every deliverable finished, but the manifest could not be written.
inline constexpr int kExitManifestNotWritten = 5;
inline constexpr int kExitInterrupted = 130;

// Where a command writes and what it knows about its surroundings.
struct CliContext {
  std::ostream* out = nullptr;  // REQUIRES: set
  std::ostream* err = nullptr;  // REQUIRES: set
  bool terminal = false;        // `out` is a terminal: progress bars
  size_t columns = 0;           // its width, 0 when unknown
  // Set by the SIGINT/SIGTERM handler; may be null.
  const std::atomic<bool>* interrupted = nullptr;
  // Where `run` looks for reelfarm-coordinator and reelfarm-worker first
  // (the running binary's folder); empty: PATH only.
  std::string bin_dir;
};

// Parses argv with CLI11 and runs the command; returns the exit code.
int RunCli(int argc, const char* const* argv, const CliContext& ctx);

// What `plan` and `run` check before anything else: the submission pipeline
// the coordinator runs too (planning/submission.h), without allowed folders
// or a probe cache. Returns kExitOk with *plan set, kExitInvalidSpec after
// printing each spec error to ctx.err, or kExitUnavailable when ffprobe
// could not be run.
// With `reuse_outputs`, unchanged deliverables are planned as reuses of the
// delivery's own output cache (what a coordinator without --cache-dir does).
int ValidateAndPlanLocally(const std::string& spec_path, const PlannerOptions& planner,
                           const std::string& ffprobe, const CliContext& ctx, pb::Plan* plan,
                           bool reuse_outputs);

struct PlanCommandOptions {
  bool json = false;
  std::string ffprobe = "ffprobe";
  // The coordinator's defaults: the same spec gives the same plan there.
  PlannerOptions planner;
};
int PlanCommand(const std::string& spec_path, const PlanCommandOptions& options,
                const CliContext& ctx);

// POSTs the spec (with `webhooks` from the command line, besides its own);
// on success writes the delivery id as the last line of ctx.out and stores
// it in *id (may be null).
int SubmitCommand(ApiClient& client, const std::string& spec_path, const CliContext& ctx,
                  std::string* id, const std::vector<WebhookArg>& webhooks = {});

int StatusCommand(ApiClient& client, const std::string& id, bool json, const CliContext& ctx);
int WatchCommand(ApiClient& client, const std::string& id, const CliContext& ctx);
// `deliverable` "": the whole delivery.
int CancelCommand(ApiClient& client, const std::string& id, const std::string& deliverable,
                  const CliContext& ctx);
int RetryCommand(ApiClient& client, const std::string& id, const std::string& deliverable,
                 const CliContext& ctx);
int WorkersCommand(ApiClient& client, bool json, const CliContext& ctx);
// `target` is an output folder (read directly; `client` may be null) or a
// delivery name (its versions asked of the coordinator).
int HistoryCommand(ApiClient* client, const std::string& target, bool json, const CliContext& ctx);
// `from`, `to`: "v1" or "1".
int DiffCommand(ApiClient* client, const std::string& target, const std::string& from,
                const std::string& to, bool json, const CliContext& ctx);
// `reelfarm priority ID N`: POST /api/v1/deliveries/ID/priority.
int PriorityCommand(ApiClient& client, const std::string& id, int priority, const CliContext& ctx);
// `reelfarm workers drain NAME`: POST /api/v1/workers/NAME/drain.
int DrainCommand(ApiClient& client, const std::string& name, const CliContext& ctx);

struct RunCommandOptions {
  int workers = 2;
  int cores = 0;  // shared by the workers; 0 = this machine's (UsableCores)
  int slots = 0;  // per worker; 0 = one per 4 of its cores
  bool keep_state = false;
  std::string ffprobe = "ffprobe";  // for the local validation
  // Extra reelfarm-coordinator arguments (--no-fan-out, --min-chunk-s ...).
  std::vector<std::string> coordinator_args;
};
// Validates like `plan`, starts an EmbeddedFarm, submits, watches, prints the
// summary, stops the farm. Returns the watch's exit code (or 2/4/130).
int RunCommand(const std::string& spec_path, const RunCommandOptions& options,
               const CliContext& ctx);

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_COMMANDS_H_
