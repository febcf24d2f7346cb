// Text rendering for the CLI: tables, plans, spec errors. Pure functions of
// their arguments (no I/O), so they are unit tested.
//
// The JSON arguments are the coordinator API's bodies (docs/api.md); a field
// that is missing or of the wrong type renders as empty / zero instead of
// failing, so a newer or older coordinator still shows something.
#ifndef REELFARM_CLI_RENDER_H_
#define REELFARM_CLI_RENDER_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/spec.h"
#include "common/versions.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm::cli {

// Quotes `arg` for a POSIX shell when it needs it ('...' with '\'' for
// quotes). For display only: nothing in reelfarm runs a shell.
std::string ShellQuote(const std::string& arg);
// ShellQuote of each, joined by spaces.
std::string ShellJoin(const std::vector<std::string>& argv);

// 1536 -> "1.5 KiB"; below 1 KiB: "512 B".
std::string FormatBytes(int64_t bytes);
// 0.434 -> "43%"; clamped to 0..100.
std::string FormatPercent(double fraction);
// The "eta_s" of an API object (docs/api.md) as "45s", "3m05s" or "2h04m";
// "" when it has none (finished, or nothing measured tells yet).
std::string FormatEta(const nlohmann::json& object);

// Columns left-aligned and separated by two spaces; the first row is the
// header. Rows shorter than the header are padded with empty cells.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  size_t rows() const { return rows_.size() - 1; }  // without the header
  std::string Render() const;                       // each line ends in '\n'; no trailing spaces

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Safe accessors for API bodies.
std::string JsonString(const nlohmann::json& j, const char* key);
double JsonNumber(const nlohmann::json& j, const char* key);
int64_t JsonInt(const nlohmann::json& j, const char* key);

// One "FILE:LINE: field: message" line per error.
std::string RenderSpecErrors(const std::vector<SpecError>& errors);
// The same lines from a 422 body ({"errors": [{"text": ...} | {file, line, field,
// message}]}); falls back to the body's "error" sentence.
std::string RenderApiSpecErrors(const nlohmann::json& body);

// The readable plan: source facts, each job (id, kind, outputs, needs,
// dependencies, shell-quoted argv) and the planned failures.
std::string RenderPlan(const pb::Plan& plan);
// The plan as JSON (proto field names, indented).
std::string RenderPlanJson(const pb::Plan& plan);

// GET /api/v1/deliveries -> a table, newest first as given.
std::string RenderDeliveryList(const nlohmann::json& body);
// GET /api/v1/deliveries/{id} -> a header and a table of items.
std::string RenderDeliveryDetail(const nlohmann::json& delivery);
// GET /api/v1/workers -> a table.
std::string RenderWorkers(const nlohmann::json& body);
// `reelfarm history`: one block per version (manifests, oldest first):
// delivery, state, when, how many encoded and reused, and what changed
// against the version before.
std::string RenderHistory(const std::string& name, const std::vector<nlohmann::json>& manifests);
// `reelfarm diff`: each deliverable's change from version `from` to `to`.
std::string RenderDiff(int from, int to, const std::vector<DeliverableChange>& changes);

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_RENDER_H_
