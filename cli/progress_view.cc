#include "cli/progress_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli/render.h"

namespace reelfarm::cli {

namespace {

const nlohmann::json& Items(const nlohmann::json& delivery) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  if (delivery.is_object()) {
    auto it = delivery.find("items");
    if (it != delivery.end() && it->is_array()) return *it;
  }
  return kEmpty;
}

size_t NameWidth(const nlohmann::json& items) {
  size_t width = 0;
  for (const auto& item : items) width = std::max(width, JsonString(item, "name").size());
  return width;
}

std::string PadRight(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string FormatSpeed(double fps, double speed) {
  std::string out;
  char buf[48];
  if (fps > 0) {
    std::snprintf(buf, sizeof buf, "%.0f fps", fps);
    out += buf;
  }
  if (speed > 0) {
    std::snprintf(buf, sizeof buf, "%.2gx", speed);
    if (!out.empty()) out += ' ';
    out += buf;
  }
  return out;
}

std::string Headline(const nlohmann::json& d) {
  std::ostringstream out;
  out << JsonString(d, "id") << ": " << JsonString(d, "state") << ", " << JsonInt(d, "delivered")
      << "/" << JsonInt(d, "deliverables") << " delivered";
  int64_t failed = JsonInt(d, "failed");
  if (failed > 0) out << ", " << failed << " failed";
  out << ", " << FormatPercent(JsonNumber(d, "progress"));
  const std::string eta = FormatEta(d);
  if (!eta.empty() && !IsTerminalDeliveryState(JsonString(d, "state"))) out << ", ETA " << eta;
  return out.str();
}

// One plain-mode line for an item that just changed.
std::string PlainLine(const nlohmann::json& item) {
  std::string name = JsonString(item, "name");
  std::string state = JsonString(item, "state");
  int64_t attempts = JsonInt(item, "attempts");
  std::string line = name + ": " + state;
  if (state == "running") {
    std::string worker = JsonString(item, "worker");
    if (!worker.empty()) line += " on " + worker;
    if (attempts > 1) line += " (attempt " + std::to_string(attempts) + ")";
  } else if (state == "delivered") {
    std::string path = JsonString(item, "path");
    if (!path.empty()) line += " " + path;
    line += " (" + FormatBytes(JsonInt(item, "bytes"));
    std::string sha = JsonString(item, "sha256");
    if (!sha.empty()) line += ", sha256 " + sha.substr(0, 12);
    line += ")";
  } else if (state == "failed" || state == "cancelled") {
    std::string error = JsonString(item, "error");
    if (!error.empty() && error != state) line += ": " + error;
  }
  return line + "\n";
}

}  // namespace

bool IsTerminalDeliveryState(const std::string& state) {
  return state == "delivered" || state == "failed" || state == "cancelled";
}

int ExitCodeForDelivery(const nlohmann::json& delivery) {
  if (JsonString(delivery, "state") != "delivered") return 3;
  for (const auto& item : Items(delivery)) {
    if (JsonString(item, "state") != "delivered") return 3;
  }
  return 0;
}

std::string ProgressBar(double fraction, int width) {
  if (!std::isfinite(fraction)) fraction = 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  int filled = static_cast<int>(std::floor(fraction * width + 1e-9));
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
}

std::string RenderItemLine(const nlohmann::json& item, size_t name_width) {
  std::string state = JsonString(item, "state");
  double progress = state == "delivered" ? 1.0 : JsonNumber(item, "progress");
  std::string pct = FormatPercent(progress);
  std::string line =
      PadRight(JsonString(item, "name"), name_width) + "  " + ProgressBar(progress, 24) + " " +
      std::string(4 - std::min<size_t>(4, pct.size()), ' ') + pct + "  " + PadRight(state, 9);
  std::string detail;
  if (state == "running") {
    detail = JsonString(item, "worker");
    std::string speed = FormatSpeed(JsonNumber(item, "fps"), JsonNumber(item, "speed"));
    if (!speed.empty()) detail += (detail.empty() ? "" : "  ") + speed;
    int64_t attempts = JsonInt(item, "attempts");
    if (attempts > 1)
      detail += (detail.empty() ? "" : "  ") + ("attempt " + std::to_string(attempts));
  } else if (state == "delivered") {
    detail = FormatBytes(JsonInt(item, "bytes"));
  } else if (state == "failed" || state == "cancelled") {
    detail = JsonString(item, "error");
  }
  const std::string eta = FormatEta(item);
  if (!eta.empty() && (state == "running" || state == "queued" || state == "waiting")) {
    detail += (detail.empty() ? "ETA " : "  ETA ") + eta;
  }
  if (!detail.empty()) line += "  " + detail;
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string FitToColumns(const std::string& line, size_t columns) {
  if (columns == 0) return line;
  auto is_continuation = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  size_t cells = 0;
  for (unsigned char c : line) cells += is_continuation(c) ? 0 : 1;
  if (cells <= columns) return line;
  if (columns == 1) return "\u2026";
  // Keep columns-1 cells, then the ellipsis.
  size_t kept = 0;
  size_t i = 0;
  for (; i < line.size(); ++i) {
    if (!is_continuation(static_cast<unsigned char>(line[i]))) {
      if (kept == columns - 1) break;
      ++kept;
    }
  }
  return line.substr(0, i) + "\u2026";
}

std::string ProgressView::Update(const nlohmann::json& delivery) {
  return terminal_ ? UpdateTerminal(delivery) : UpdatePlain(delivery);
}

std::string ProgressView::UpdateTerminal(const nlohmann::json& delivery) {
  std::string out;
  if (lines_drawn_ > 0) out += "\x1b[" + std::to_string(lines_drawn_) + "A";
  const nlohmann::json& items = Items(delivery);
  size_t name_width = NameWidth(items);
  int lines = 0;
  auto emit = [&](const std::string& line) {
    out += "\r\x1b[2K" + FitToColumns(line, columns_) + "\n";
    ++lines;
  };
  emit(Headline(delivery));
  for (const auto& item : items) emit("  " + RenderItemLine(item, name_width));
  // Fewer lines than last time: clear the rest and come back up.
  for (int extra = lines; extra < lines_drawn_; ++extra) out += "\r\x1b[2K\n";
  if (lines_drawn_ > lines) out += "\x1b[" + std::to_string(lines_drawn_ - lines) + "A";
  lines_drawn_ = lines;
  return out;
}

std::string ProgressView::UpdatePlain(const nlohmann::json& delivery) {
  std::string out;
  for (const auto& item : Items(delivery)) {
    std::string name = JsonString(item, "name");
    std::pair<std::string, int64_t> now{JsonString(item, "state"), JsonInt(item, "attempts")};
    auto it = last_.find(name);
    if (it != last_.end() && it->second == now) continue;
    last_[name] = now;
    out += PlainLine(item);
  }
  return out;
}

std::string RenderSummary(const nlohmann::json& d) {
  std::ostringstream out;
  out << "Delivery " << Headline(d) << "\n";
  TextTable table({"DELIVERABLE", "STATE", "PATH", "SIZE", "SHA256 / ERROR"});
  for (const auto& item : Items(d)) {
    std::string state = JsonString(item, "state");
    bool delivered = state == "delivered";
    std::string sha = JsonString(item, "sha256");
    table.AddRow({JsonString(item, "name"), state, JsonString(item, "path"),
                  delivered ? FormatBytes(JsonInt(item, "bytes")) : "-",
                  delivered ? sha.substr(0, 12) : JsonString(item, "error")});
  }
  if (table.rows() > 0) out << table.Render();
  std::string output_dir = JsonString(d, "output_dir");
  if (!output_dir.empty()) out << "Output folder: " << output_dir << "\n";
  std::string manifest = JsonString(d, "manifest");
  if (!manifest.empty()) out << "Manifest: " << manifest << "\n";
  return out.str();
}

}  // namespace reelfarm::cli
