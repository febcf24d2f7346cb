#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "cli/embedded_farm.h"
#include "cli/progress_view.h"
#include "cli/render.h"
#include "cli/watch.h"
#include "common/curve_auth.h"
#include "common/process_runner.h"
#include "common/spec.h"
#include "planning/planner.h"
#include "planning/submission.h"

namespace reelfarm::cli {

namespace fs = std::filesystem;

namespace {

// Seconds `submit` waits for its answer: the coordinator probes and plans
// the source first.
constexpr int kSubmitTimeoutS = 120;

std::string PrettyJson(const ApiResponse& response) {
  if (response.json.is_null()) return response.body + "\n";
  return response.json.dump(2) + "\n";
}

// Non-2xx answers other than the ones a command handles itself.
int ReportHttpError(const ApiResponse& response, const std::string& what, const CliContext& ctx) {
  *ctx.err << "error: " << what << ": " << response.ErrorMessage() << "\n";
  return response.status == 503 ? kExitUnavailable : kExitUsage;
}

int ReportUnreachable(const Status& status, const CliContext& ctx) {
  *ctx.err << "error: " << status.message()
           << "\n(is reelfarm-coordinator running? set --coordinator URL or "
              "REELFARM_COORDINATOR)\n";
  return kExitUnavailable;
}

bool ReadFile(const std::string& path, std::string* text, std::string* error) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = "is a folder, not a spec file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot be read: " + std::string(std::strerror(errno));
    return false;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  return true;
}

}  // namespace

int ValidateAndPlanLocally(const std::string& spec_path, const PlannerOptions& planner,
                           const std::string& ffprobe, const CliContext& ctx, pb::Plan* plan,
                           bool reuse_outputs) {
  PosixProcessRunner runner;
  SubmissionOptions options;
  options.ffprobe = ffprobe;
  options.planner = planner;
  options.reuse_outputs = reuse_outputs;
  Submission submission = SubmissionPipeline(options, &runner, nullptr).RunFile(spec_path);
  const Status::Code probe = submission.probe_status.code();
  if (!submission.probe_status.ok() && probe != Status::Code::kInvalidArgument &&
      probe != Status::Code::kNotFound && probe != Status::Code::kFailedPrecondition) {
    *ctx.err << "error: cannot probe the source with " << ffprobe << ": "
             << submission.probe_status.message() << "\n";
    return kExitUnavailable;
  }
  if (!submission.ok()) {
    *ctx.err << RenderSpecErrors(submission.errors);
    return kExitInvalidSpec;
  }
  *plan = std::move(submission.plan);
  return kExitOk;
}

int PlanCommand(const std::string& spec_path, const PlanCommandOptions& options,
                const CliContext& ctx) {
  pb::Plan plan;
  int rc = ValidateAndPlanLocally(spec_path, options.planner, options.ffprobe, ctx, &plan,
                                  /*reuse_outputs=*/true);
  if (rc != kExitOk) return rc;
  *ctx.out << (options.json ? RenderPlanJson(plan) : RenderPlan(plan));
  return kExitOk;
}

int SubmitCommand(ApiClient& client, const std::string& spec_path, const CliContext& ctx,
                  std::string* id, const std::vector<WebhookArg>& webhooks) {
  std::string text;
  std::string error;
  if (!ReadFile(spec_path, &text, &error)) {
    SpecError e;
    e.file = spec_path;
    e.message = "the spec file " + error;
    *ctx.err << e.ToString() << "\n";
    return kExitInvalidSpec;
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(spec_path, ec);
  std::string base_dir = (ec ? fs::path(spec_path) : absolute).lexically_normal().parent_path();
  client.set_read_timeout_s(kSubmitTimeoutS);
  StatusOr<ApiResponse> response =
      client.Post("/api/v1/deliveries", SubmitRequestBody(text, spec_path, base_dir, webhooks));
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status == 422) {
    *ctx.err << RenderApiSpecErrors(response->json);
    return kExitInvalidSpec;
  }
  if (response->status != 201 && response->status != 200) {
    return ReportHttpError(*response, "the coordinator refused the spec", ctx);
  }
  std::string delivery_id = JsonString(response->json, "id");
  if (delivery_id.empty()) {
    *ctx.err << "error: the coordinator's answer has no delivery id: " << response->body << "\n";
    return kExitUsage;
  }
  *ctx.out << "Submitted " << JsonString(response->json, "name") << ": "
           << JsonInt(response->json, "jobs")
           << (JsonInt(response->json, "jobs") == 1 ? " job" : " jobs");
  int64_t failed_at_plan = JsonInt(response->json, "failed_at_plan");
  if (failed_at_plan > 0) {
    *ctx.out << ", " << failed_at_plan << (failed_at_plan == 1 ? " deliverable" : " deliverables")
             << " failed at plan";
  }
  *ctx.out << ", output in " << JsonString(response->json, "output_dir") << "\n";
  *ctx.out << delivery_id << "\n";
  ctx.out->flush();
  if (id != nullptr) *id = delivery_id;
  return kExitOk;
}

int StatusCommand(ApiClient& client, const std::string& id, bool json, const CliContext& ctx) {
  StatusOr<ApiResponse> response =
      client.Get(id.empty() ? std::string("/api/v1/deliveries") : DeliveryPath(id));
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status != 200) {
    return ReportHttpError(*response, id.empty() ? "cannot list deliveries" : "delivery " + id,
                           ctx);
  }
  if (json) {
    *ctx.out << PrettyJson(*response);
  } else {
    *ctx.out << (id.empty() ? RenderDeliveryList(response->json)
                            : RenderDeliveryDetail(response->json));
  }
  return kExitOk;
}

namespace {

WatchOptions MakeWatchOptions(const CliContext& ctx) {
  WatchOptions options;
  options.terminal = ctx.terminal;
  options.columns = ctx.columns;
  options.interrupted = ctx.interrupted;
  return options;
}

}  // namespace

int WatchCommand(ApiClient& client, const std::string& id, const CliContext& ctx) {
  client.set_read_timeout_s(10);
  std::string path = DeliveryPath(id);
  WatchResult result =
      WatchDelivery([&] { return client.Get(path); }, MakeWatchOptions(ctx), *ctx.out, *ctx.err);
  return result.exit_code;
}

namespace {

// POSTs /api/v1/deliveries/ID/ACTION, narrowed to one deliverable when
// given, and prints `done` with the delivery's state after it.
int PostDeliveryAction(ApiClient& client, const std::string& id, const std::string& deliverable,
                       const std::string& action, const std::string& done, const CliContext& ctx) {
  nlohmann::json body = nlohmann::json::object();
  if (!deliverable.empty()) body["deliverable"] = deliverable;
  StatusOr<ApiResponse> response = client.Post(DeliveryPath(id) + "/" + action, body);
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  const std::string what = deliverable.empty() ? id : deliverable + " of " + id;
  if (response->status != 200)
    return ReportHttpError(*response, "cannot " + action + " " + what, ctx);
  *ctx.out << done << ": now " << JsonString(response->json, "state") << ", "
           << JsonInt(response->json, "delivered") << "/" << JsonInt(response->json, "deliverables")
           << " delivered\n";
  return kExitOk;
}

}  // namespace

int CancelCommand(ApiClient& client, const std::string& id, const std::string& deliverable,
                  const CliContext& ctx) {
  return PostDeliveryAction(client, id, deliverable, "cancel",
                            "Cancelled " + (deliverable.empty() ? id : deliverable + " of " + id),
                            ctx);
}

int RetryCommand(ApiClient& client, const std::string& id, const std::string& deliverable,
                 const CliContext& ctx) {
  return PostDeliveryAction(
      client, id, deliverable, "retry",
      "Retrying " + (deliverable.empty() ? "what failed in " + id : deliverable + " of " + id),
      ctx);
}

int WorkersCommand(ApiClient& client, bool json, const CliContext& ctx) {
  StatusOr<ApiResponse> response = client.Get("/api/v1/workers");
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status != 200) return ReportHttpError(*response, "cannot list workers", ctx);
  *ctx.out << (json ? PrettyJson(*response) : RenderWorkers(response->json));
  return kExitOk;
}

int PriorityCommand(ApiClient& client, const std::string& id, int priority, const CliContext& ctx) {
  StatusOr<ApiResponse> response =
      client.Post(DeliveryPath(id) + "/priority", nlohmann::json{{"priority", priority}});
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status != 200) {
    return ReportHttpError(*response, "cannot change the priority of " + id, ctx);
  }
  *ctx.out << id << " now has priority " << priority << ": its queued jobs run in that order\n";
  return kExitOk;
}

namespace {

// The manifests of `target`'s versions: read from the folder when `target`
// is one, else asked of the coordinator for the delivery name.
int LoadVersions(ApiClient* client, const std::string& target, const CliContext& ctx,
                 std::string* name, std::vector<nlohmann::json>* manifests) {
  std::error_code ec;
  if (fs::is_directory(target, ec)) {
    *manifests = ReadHistory(target);
    *name = manifests->empty() ? target : JsonString(manifests->back(), "name");
    return kExitOk;
  }
  if (client == nullptr) {
    *ctx.err << "error: " << target << " is no folder, and no coordinator was given\n";
    return kExitUsage;
  }
  StatusOr<ApiResponse> response = client->Get("/api/v1/history/" + target);
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status != 200) {
    return ReportHttpError(*response, "no history of " + target, ctx);
  }
  *name = target;
  manifests->clear();
  if (response->json.contains("versions") && response->json["versions"].is_array()) {
    for (const auto& m : response->json["versions"]) manifests->push_back(m);
  }
  return kExitOk;
}

// "v3" or "3" -> 3; 0 when neither.
int ParseVersion(const std::string& text) {
  const std::string digits =
      !text.empty() && (text[0] == 'v' || text[0] == 'V') ? text.substr(1) : text;
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoi(digits);
}

}  // namespace

int HistoryCommand(ApiClient* client, const std::string& target, bool json, const CliContext& ctx) {
  std::string name;
  std::vector<nlohmann::json> manifests;
  if (int rc = LoadVersions(client, target, ctx, &name, &manifests); rc != kExitOk) return rc;
  if (json) {
    *ctx.out << nlohmann::json{{"name", name}, {"versions", manifests}}.dump(2) << "\n";
  } else {
    *ctx.out << RenderHistory(name, manifests);
  }
  return kExitOk;
}

int DiffCommand(ApiClient* client, const std::string& target, const std::string& from_text,
                const std::string& to_text, bool json, const CliContext& ctx) {
  const int from = ParseVersion(from_text), to = ParseVersion(to_text);
  if (from < 1 || to < 1) {
    *ctx.err << "error: versions are written v1, v2... (or 1, 2...)\n";
    return kExitUsage;
  }
  std::string name;
  std::vector<nlohmann::json> manifests;
  if (int rc = LoadVersions(client, target, ctx, &name, &manifests); rc != kExitOk) return rc;
  const nlohmann::json *a = nullptr, *b = nullptr;
  for (const auto& m : manifests) {
    const int v = std::max<int>(1, static_cast<int>(JsonInt(m, "version")));
    if (v == from) a = &m;
    if (v == to) b = &m;
  }
  if (a == nullptr || b == nullptr) {
    *ctx.err << "error: " << name << " has no version " << (a == nullptr ? from : to) << "\n";
    return kExitUsage;
  }
  std::vector<DeliverableChange> changes = DiffManifests(*a, *b);
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : changes) {
      list.push_back({{"name", c.name}, {"change", c.change}, {"reasons", c.reasons}});
    }
    *ctx.out << nlohmann::json{{"name", name}, {"from", from}, {"to", to}, {"changes", list}}.dump(
                    2)
             << "\n";
  } else {
    *ctx.out << RenderDiff(from, to, changes);
  }
  return kExitOk;
}

int DrainCommand(ApiClient& client, const std::string& name, const CliContext& ctx) {
  StatusOr<ApiResponse> response =
      client.Post("/api/v1/workers/" + name + "/drain", nlohmann::json::object());
  if (!response.ok()) return ReportUnreachable(response.status(), ctx);
  if (response->status != 200) return ReportHttpError(*response, "cannot drain " + name, ctx);
  *ctx.out << "Draining " << name
           << ": it takes no new work, finishes what it runs (up to its --drain-timeout), then "
              "exits\n";
  return kExitOk;
}

int RunCommand(const std::string& spec_path, const RunCommandOptions& options,
               const CliContext& ctx) {
  if (options.workers < 1 || options.slots < 0 || options.cores < 0) {
    *ctx.err << "error: --workers must be at least 1, --slots and --cores 0 (auto) or more\n";
    return kExitUsage;
  }
  pb::Plan plan;
  PlannerOptions planner;
  // Checked here, keyed and looked up in the cache by the farm's coordinator.
  int rc = ValidateAndPlanLocally(spec_path, planner, options.ffprobe, ctx, &plan,
                                  /*reuse_outputs=*/false);
  if (rc != kExitOk) return rc;

  EmbeddedFarmOptions farm_options;
  farm_options.workers = options.workers;
  farm_options.cores = options.cores;
  farm_options.slots = options.slots;
  farm_options.keep_state = options.keep_state;
  farm_options.coordinator_args = options.coordinator_args;
  farm_options.bin_dir = ctx.bin_dir;
  farm_options.interrupted = ctx.interrupted;
  EmbeddedFarm farm(farm_options);
  *ctx.err << "Starting a local farm: redis-server, a coordinator and " << options.workers
           << " worker" << (options.workers == 1 ? "" : "s");
  if (options.slots > 0) {
    *ctx.err << " x " << options.slots << " slot" << (options.slots == 1 ? "" : "s");
  }
  *ctx.err << "\n";
  std::optional<ApiClient> client;
  auto finish = [&](int code) {
    // The coordinator's API waits for open connections when it stops.
    if (client) client->Disconnect();
    farm.Stop();
    if (options.keep_state && !farm.state_dir().empty()) {
      *ctx.err << "State and logs kept in " << farm.state_dir() << "\n";
    } else if (code == kExitUnavailable) {
      *ctx.err << "(the farm's logs are removed; run again with --keep-state to keep them)\n";
    }
    return code;
  };
  Status started = farm.Start();
  if (!started.ok()) {
    if (started.code() == Status::Code::kCancelled) {
      *ctx.err << "Interrupted.\n";
      return finish(kExitInterrupted);
    }
    *ctx.err << "error: the local farm could not start: " << started.message() << "\n";
    return finish(kExitUnavailable);
  }
  StatusOr<CoordinatorUrl> url = ParseCoordinatorUrl(farm.http_url());
  if (!url.ok()) {
    *ctx.err << "error: " << url.status().message() << "\n";
    return finish(kExitUnavailable);
  }
  client.emplace(*url);
  // The coordinator plans for the workers it knows: let them all announce
  // themselves first (the encoder probe takes a moment).
  Status announced = farm.WaitForWorkers();
  if (!announced.ok()) {
    *ctx.err << "error: " << announced.message() << "\n";
    return finish(announced.code() == Status::Code::kCancelled ? kExitInterrupted
                                                               : kExitUnavailable);
  }
  std::string id;
  rc = SubmitCommand(*client, spec_path, ctx, &id);
  if (rc != kExitOk) {
    Status farm_status = farm.CheckChildren();
    if (!farm_status.ok()) *ctx.err << "error: " << farm_status.message() << "\n";
    return finish(rc);
  }
  client->set_read_timeout_s(10);
  std::string path = DeliveryPath(id);
  WatchOptions watch_options = MakeWatchOptions(ctx);
  watch_options.check_farm = [&farm] { return farm.CheckChildren(); };
  // A private farm on this machine: polling it is cheap, and every poll
  // interval is time added to the end of the run.
  watch_options.poll_interval_s = 0.1;
  watch_options.max_unreachable_polls = 100;
  WatchResult result =
      WatchDelivery([&] { return client->Get(path); }, watch_options, *ctx.out, *ctx.err);
  if ((result.exit_code == kExitOk || result.exit_code == kExitFailed) &&
      JsonString(result.delivery, "manifest").empty()) {
    // The summary names the output folder; name the manifest too.
    std::string output_dir = JsonString(result.delivery, "output_dir");
    if (!output_dir.empty()) {
      *ctx.out << "Manifest: " << (fs::path(output_dir) / "manifest.json").string() << "\n";
    }
  }
  ctx.out->flush();
  return finish(result.exit_code);
}

int RunCli(int argc, const char* const* argv, const CliContext& ctx) {
  CLI::App app{"reelfarm: turn delivery specs into verified deliverables on a render farm",
               "reelfarm"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command
  std::string coordinator = kDefaultCoordinatorUrl;
  app.add_option("--coordinator", coordinator, "coordinator HTTP URL")
      ->envname("REELFARM_COORDINATOR")
      ->capture_default_str();

  std::string spec_path;
  std::string id;
  bool json = false;

  PlanCommandOptions plan_options;
  CLI::App* plan = app.add_subcommand("plan", "validate a spec, probe its source, print the plan");
  plan->add_option("spec", spec_path, "delivery spec (YAML or JSON)")->required();
  plan->add_flag("--json", plan_options.json, "print the plan as JSON");
  plan->add_option("--ffmpeg", plan_options.planner.ffmpeg, "ffmpeg program in the jobs' argv")
      ->capture_default_str();
  plan->add_flag("--gpu-farm", plan_options.planner.gpu_farm,
                 "plan as a coordinator with --gpu-farm does (docs/gpu.md)");
  plan->add_option("--piece-cost", plan_options.planner.piece_cost,
                   "cost of one piece of work: costlier pictures are cut into time chunks of "
                   "about this cost, cheaper ones grouped up to it (0: one job per deliverable)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  plan->add_option("--min-chunk-s", plan_options.planner.min_chunk_s,
                   "no time chunk shorter than this many seconds of source")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  plan->add_flag("--fan-out,!--no-fan-out", plan_options.planner.fan_out,
                 "group cheap deliverables that share a decode")
      ->capture_default_str();
  plan->add_flag("--chunks,!--no-chunks", plan_options.planner.chunking,
                 "cut costly deliverables into time chunks")
      ->capture_default_str();
  plan->add_option("--ffprobe", plan_options.ffprobe, "ffprobe program for the source")
      ->capture_default_str();

  CLI::App* submit = app.add_subcommand("submit", "submit a spec; prints the delivery id last");
  submit->add_option("spec", spec_path, "delivery spec (YAML or JSON)")->required();
  std::vector<std::string> webhook_urls;
  std::string webhook_secret_file;
  submit->add_option("--webhook", webhook_urls,
                     "also POST this delivery's events to URL, signed (repeatable; "
                     "docs/webhooks.md)");
  submit->add_option("--webhook-secret-file", webhook_secret_file,
                     "file holding the --webhook secret, whsec_<base64> (read by the coordinator)");

  CLI::App* status = app.add_subcommand("status", "list deliveries, or show one");
  status->add_option("id", id, "delivery id");
  status->add_flag("--json", json, "print the API's JSON");

  CLI::App* watch = app.add_subcommand("watch", "follow a delivery until it ends");
  watch->add_option("id", id, "delivery id")->required();

  std::string deliverable;
  CLI::App* cancel = app.add_subcommand(
      "cancel", "cancel a delivery's queued and running jobs, or one deliverable's");
  cancel->add_option("id", id, "delivery id")->required();
  cancel->add_option("deliverable", deliverable, "only this deliverable");
  CLI::App* retry = app.add_subcommand(
      "retry", "run again what failed or was cancelled in a delivery, or one deliverable");
  retry->add_option("id", id, "delivery id")->required();
  retry->add_option("deliverable", deliverable, "only this deliverable");

  int new_priority = 50;
  CLI::App* priority =
      app.add_subcommand("priority", "give a queued or running delivery a new priority");
  priority->add_option("id", id, "delivery id")->required();
  priority->add_option("priority", new_priority, "0 to 100, higher runs first")
      ->required()
      ->check(CLI::Range(0, 100));

  CLI::App* workers = app.add_subcommand("workers", "list the farm's workers");
  workers->add_flag("--json", json, "print the API's JSON");
  std::string drain_name;
  CLI::App* drain = workers->add_subcommand(
      "drain", "drain a worker: no new work, it finishes what it runs, then exits");
  drain->add_option("name", drain_name, "worker name")->required();

  std::string history_target, diff_from, diff_to;
  CLI::App* history = app.add_subcommand(
      "history", "list a delivery's versions: what each encoded, reused and changed");
  history->add_option("target", history_target, "delivery name, or its output folder")->required();
  history->add_flag("--json", json, "print the versions' manifests as JSON");
  CLI::App* diff =
      app.add_subcommand("diff", "what changed between two versions of a delivery, and why");
  diff->add_option("target", history_target, "delivery name, or its output folder")->required();
  diff->add_option("from", diff_from, "older version (v1)")->required();
  diff->add_option("to", diff_to, "newer version (v2)")->required();
  diff->add_flag("--json", json, "print the changes as JSON");

  std::string key_prefix;
  CLI::App* keys =
      app.add_subcommand("keys", "make a CURVE key pair: PREFIX.key (secret, 0600) and PREFIX.pub");
  keys->add_option("prefix", key_prefix, "path prefix of the two files")->required();

  std::string token;
  app.add_option("--token", token, "bearer token for the coordinator's API")
      ->envname("REELFARM_API_TOKEN");

  RunCommandOptions run_options;
  CLI::App* run = app.add_subcommand(
      "run", "run a spec on a private local farm (redis, coordinator, workers) and wait");
  run->add_option("spec", spec_path, "delivery spec (YAML or JSON)")->required();
  run->add_option("--workers", run_options.workers, "local workers")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  run->add_option("--cores", run_options.cores,
                  "cores the local workers share, divided evenly (0: this machine's)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  run->add_option("--slots", run_options.slots,
                  "job slots per worker (0: one per 4 of its cores, at least 1)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  run->add_flag("--keep-state", run_options.keep_state,
                "keep the state folder (Redis data, logs) afterwards");
  double run_min_chunk_s = 0, run_piece_cost = -1;
  bool run_fan_out = true, run_chunks = true, run_gpu_farm = false;
  run->add_flag("--gpu-farm", run_gpu_farm,
                "plan deliverables a GPU encoder can make one job each (docs/gpu.md)");
  run->add_option("--piece-cost", run_piece_cost,
                  "cost of one piece of work (default 4, about 2 s of 1080p x264; 0: one job per "
                  "deliverable)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--min-chunk-s", run_min_chunk_s,
                  "no time chunk shorter than this many seconds of source (default 2)")
      ->check(CLI::PositiveNumber);
  run->add_flag("--fan-out,!--no-fan-out", run_fan_out,
                "group cheap deliverables that share a decode")
      ->capture_default_str();
  run->add_flag("--chunks,!--no-chunks", run_chunks, "cut costly deliverables into time chunks")
      ->capture_default_str();
  std::vector<std::string> run_webhooks, run_webhook_allow;
  std::string run_webhook_secret_file;
  run->add_option("--webhook", run_webhooks,
                  "POST the delivery's events to URL, signed (repeatable; docs/webhooks.md)");
  run->add_option("--webhook-secret-file", run_webhook_secret_file,
                  "file holding the --webhook secret, whsec_<base64>");
  run->add_option("--webhook-allow", run_webhook_allow,
                  "CIDR, address or host that may receive webhooks although not public");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, *ctx.out, *ctx.err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (plan->parsed()) return PlanCommand(spec_path, plan_options, ctx);
  if (keys->parsed()) {
    auto pair = GenerateCurveKeyPair();
    Status written = pair.ok() ? WriteCurveKeyFiles(*pair, key_prefix) : pair.status();
    if (!written.ok()) {
      *ctx.err << "error: " << written.message() << "\n";
      return kExitUsage;
    }
    *ctx.out << "secret key: " << key_prefix << ".key\npublic key: " << key_prefix << ".pub\n"
             << pair->public_key << "\n";
    return kExitOk;
  }
  if (run->parsed()) {
    if (run_min_chunk_s > 0) {
      run_options.coordinator_args.push_back("--min-chunk-s");
      run_options.coordinator_args.push_back(std::to_string(run_min_chunk_s));
    }
    if (run_piece_cost >= 0) {
      run_options.coordinator_args.push_back("--piece-cost");
      run_options.coordinator_args.push_back(std::to_string(run_piece_cost));
    }
    if (!run_fan_out) run_options.coordinator_args.push_back("--no-fan-out");
    if (!run_chunks) run_options.coordinator_args.push_back("--no-chunks");
    if (run_gpu_farm) run_options.coordinator_args.push_back("--gpu-farm");
    // The private farm's coordinator sends them (farm-wide: its one delivery).
    if (!run_webhooks.empty() && run_webhook_secret_file.empty()) {
      *ctx.err << "error: --webhook needs --webhook-secret-file\n";
      return kExitUsage;
    }
    for (const auto& url : run_webhooks) {
      run_options.coordinator_args.push_back("--webhook");
      run_options.coordinator_args.push_back(url);
    }
    if (!run_webhook_secret_file.empty()) {
      run_options.coordinator_args.push_back("--webhook-secret-file");
      run_options.coordinator_args.push_back(fs::absolute(run_webhook_secret_file).string());
    }
    for (const auto& allow : run_webhook_allow) {
      run_options.coordinator_args.push_back("--webhook-allow");
      run_options.coordinator_args.push_back(allow);
    }
    return RunCommand(spec_path, run_options, ctx);
  }

  // A folder's history needs no farm.
  std::error_code ec;
  const bool local_history =
      (history->parsed() || diff->parsed()) && fs::is_directory(history_target, ec);
  if (local_history && history->parsed()) return HistoryCommand(nullptr, history_target, json, ctx);
  if (local_history) return DiffCommand(nullptr, history_target, diff_from, diff_to, json, ctx);

  StatusOr<CoordinatorUrl> url = ParseCoordinatorUrl(coordinator);
  if (!url.ok()) {
    *ctx.err << "error: " << url.status().message() << "\n";
    return kExitUsage;
  }
  ApiClient client(*url);
  if (!token.empty()) client.set_bearer_token(token);
  if (submit->parsed()) {
    if (!webhook_urls.empty() && webhook_secret_file.empty()) {
      *ctx.err << "error: --webhook needs --webhook-secret-file\n";
      return kExitUsage;
    }
    std::vector<WebhookArg> hooks;
    for (const auto& url : webhook_urls) {
      hooks.push_back({url, fs::absolute(webhook_secret_file).lexically_normal().string()});
    }
    return SubmitCommand(client, spec_path, ctx, nullptr, hooks);
  }
  if (status->parsed()) return StatusCommand(client, id, json, ctx);
  if (watch->parsed()) return WatchCommand(client, id, ctx);
  if (cancel->parsed()) return CancelCommand(client, id, deliverable, ctx);
  if (retry->parsed()) return RetryCommand(client, id, deliverable, ctx);
  if (drain->parsed()) return DrainCommand(client, drain_name, ctx);
  if (priority->parsed()) return PriorityCommand(client, id, new_priority, ctx);
  if (workers->parsed()) return WorkersCommand(client, json, ctx);
  if (history->parsed()) return HistoryCommand(&client, history_target, json, ctx);
  if (diff->parsed()) return DiffCommand(&client, history_target, diff_from, diff_to, json, ctx);
  return kExitUsage;
}

}  // namespace reelfarm::cli
