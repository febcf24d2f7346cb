// What `watch` shows while a delivery runs, and the summary at its end.
// Pure: each function turns the API's delivery JSON (GET
// /api/v1/deliveries/{id}, docs/api.md) into text; the caller writes it.
#ifndef REELFARM_CLI_PROGRESS_VIEW_H_
#define REELFARM_CLI_PROGRESS_VIEW_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace reelfarm::cli {

// delivered, failed or cancelled: nothing will change any more.
bool IsTerminalDeliveryState(const std::string& state);

// The exit code for a finished delivery: 0 when its state is "delivered"
// and no item failed, 3 otherwise (failed, cancelled).
int ExitCodeForDelivery(const nlohmann::json& delivery);

// "[######------]" with `width` cells between the brackets.
std::string ProgressBar(double fraction, int width);

// One line for an item: name padded to `name_width`, bar, percent, state and
// what fits the state (worker and speed, size, or the error).
std::string RenderItemLine(const nlohmann::json& item, size_t name_width);

// Cuts `line` to at most `columns` display cells (bytes of ASCII; never in
// the middle of a UTF-8 sequence), ending in "…" when cut. 0 = no limit.
std::string FitToColumns(const std::string& line, size_t columns);

// Turns successive polls of one delivery into output.
//  - terminal mode: a header line and one bar line per deliverable, redrawn
//    in place: each update after the first moves the cursor up over the
//    lines it drew before (ANSI "ESC[nA") and rewrites them ("ESC[2K").
//  - plain mode: one line each time an item's state or attempt changes (the
//    first poll prints every item once); nothing when nothing changed.
class ProgressView {
 public:
  // `columns` limits terminal lines so they never wrap (0 = no limit).
  explicit ProgressView(bool terminal, size_t columns = 0)
      : terminal_(terminal), columns_(columns) {}

  // The text to write for this poll (may be empty).
  std::string Update(const nlohmann::json& delivery);

 private:
  std::string UpdateTerminal(const nlohmann::json& delivery);
  std::string UpdatePlain(const nlohmann::json& delivery);

  bool terminal_;
  size_t columns_;
  int lines_drawn_ = 0;  // terminal mode: lines to move up over next time
  // plain mode: item name -> (state, attempts) last printed
  std::map<std::string, std::pair<std::string, int64_t>> last_;
};

// The end-of-delivery summary: a headline, then per deliverable its state,
// path, size and the first 12 hex digits of its SHA-256, or its error; then
// the output folder and the manifest path.
std::string RenderSummary(const nlohmann::json& delivery);

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_PROGRESS_VIEW_H_
