#include <gtest/gtest.h>

#include <algorithm>

#include "cli/progress_view.h"

namespace reelfarm::cli {
namespace {

using nlohmann::json;

json Item(const std::string& name, const std::string& state, double progress = 0,
          int attempts = 0) {
  return {{"name", name},
          {"preset", "web-h264"},
          {"state", state},
          {"progress", progress},
          {"attempts", attempts},
          {"worker", attempts ? "w1" : ""},
          {"path", name + ".mp4"},
          {"bytes", 2048},
          {"sha256", "0123456789abcdef0123"},
          {"error", ""}};
}

json Delivery(const std::string& state, std::vector<json> items) {
  return {{"id", "launch-1"}, {"name", "launch"}, {"state", state},  {"deliverables", items.size()},
          {"delivered", 0},   {"failed", 0},      {"progress", 0.5}, {"output_dir", "/out"},
          {"items", items}};
}

TEST(ProgressViewTest, TerminalStates) {
  EXPECT_TRUE(IsTerminalDeliveryState("delivered"));
  EXPECT_TRUE(IsTerminalDeliveryState("failed"));
  EXPECT_TRUE(IsTerminalDeliveryState("cancelled"));
  EXPECT_FALSE(IsTerminalDeliveryState("running"));
  EXPECT_FALSE(IsTerminalDeliveryState("queued"));
  EXPECT_FALSE(IsTerminalDeliveryState(""));
}

TEST(ProgressViewTest, ExitCodes) {
  EXPECT_EQ(ExitCodeForDelivery(Delivery("delivered", {Item("a", "delivered", 1)})), 0);
  EXPECT_EQ(ExitCodeForDelivery(Delivery("failed", {Item("a", "failed")})), 3);
  EXPECT_EQ(ExitCodeForDelivery(Delivery("cancelled", {Item("a", "cancelled")})), 3);
  // A "delivered" delivery with a failed item is not all delivered.
  EXPECT_EQ(ExitCodeForDelivery(Delivery("delivered", {Item("a", "failed")})), 3);
}

TEST(ProgressViewTest, Bar) {
  EXPECT_EQ(ProgressBar(0, 10), "[----------]");
  EXPECT_EQ(ProgressBar(0.5, 10), "[#####-----]");
  EXPECT_EQ(ProgressBar(0.99, 10), "[#########-]");
  EXPECT_EQ(ProgressBar(1, 10), "[##########]");
  EXPECT_EQ(ProgressBar(3, 4), "[####]");
  EXPECT_EQ(ProgressBar(-1, 4), "[----]");
}

TEST(ProgressViewTest, ItemLines) {
  json running = Item("web", "running", 0.5, 2);
  running["fps"] = 48.0;
  running["speed"] = 1.9;
  EXPECT_EQ(RenderItemLine(running, 6),
            "web     [############------------]  50%  running    w1  48 fps 1.9x  attempt 2");
  EXPECT_EQ(RenderItemLine(Item("master", "delivered", 0.2), 6),
            "master  [########################] 100%  delivered  2.0 KiB");
  json failed = Item("wav", "failed");
  failed["error"] = "the source has no audio";
  EXPECT_EQ(RenderItemLine(failed, 3),
            "wav  [------------------------]   0%  failed     the source has no audio");
  EXPECT_EQ(RenderItemLine(Item("x", "queued"), 1), "x  [------------------------]   0%  queued");
}

TEST(ProgressViewTest, TheEtaIsShownForUnfinishedWorkOnly) {
  json running = Item("web", "running", 0.5, 1);
  running["eta_s"] = 125;
  EXPECT_EQ(RenderItemLine(running, 3),
            "web  [############------------]  50%  running    w1  ETA 2m05s");
  json queued = Item("x", "queued");
  queued["eta_s"] = 7200;
  EXPECT_EQ(RenderItemLine(queued, 1), "x  [------------------------]   0%  queued     ETA 2h00m");
  json done = Item("m", "delivered", 1);
  done["eta_s"] = 3;  // stale: a delivered item shows its size, no ETA
  EXPECT_EQ(RenderItemLine(done, 1), "m  [########################] 100%  delivered  2.0 KiB");
  json d = Delivery("running", {running});
  d["eta_s"] = 59.2;
  ProgressView view(true);
  EXPECT_NE(view.Update(d).find("50%, ETA 1m00s"), std::string::npos);
  d["eta_s"] = nullptr;  // unknown: nothing shown
  ProgressView again(true);
  EXPECT_EQ(again.Update(d).find("50%, ETA"), std::string::npos);
}

TEST(ProgressViewTest, FitToColumnsCutsOnCharacterBoundaries) {
  EXPECT_EQ(FitToColumns("abcdef", 0), "abcdef");
  EXPECT_EQ(FitToColumns("abcdef", 6), "abcdef");
  EXPECT_EQ(FitToColumns("abcdef", 4), "abc\u2026");
  // "é" is two bytes, one cell: never split.
  EXPECT_EQ(FitToColumns("\u00e9\u00e9\u00e9\u00e9", 3), "\u00e9\u00e9\u2026");
  EXPECT_EQ(FitToColumns("\u00e9\u00e9\u00e9", 3), "\u00e9\u00e9\u00e9");
}

TEST(ProgressViewTest, PlainPrintsOnlyChanges) {
  ProgressView view(/*terminal=*/false);
  json d = Delivery("running", {Item("a", "queued"), Item("b", "running", 0.1, 1)});
  EXPECT_EQ(view.Update(d), "a: queued\nb: running on w1\n");
  // Only progress moved: nothing to print.
  d["items"][1]["progress"] = 0.7;
  EXPECT_EQ(view.Update(d), "");
  // A retry is a change even though the state stays "running".
  d["items"][1]["attempts"] = 2;
  d["items"][1]["worker"] = "w2";
  EXPECT_EQ(view.Update(d), "b: running on w2 (attempt 2)\n");
  d["items"][0] = Item("a", "delivered", 1);
  d["items"][1] = Item("b", "failed", 0, 2);
  d["items"][1]["error"] = "ffmpeg exited with code 1";
  EXPECT_EQ(view.Update(d),
            "a: delivered a.mp4 (2.0 KiB, sha256 0123456789ab)\n"
            "b: failed: ffmpeg exited with code 1\n");
}

TEST(ProgressViewTest, TerminalRedrawsInPlace) {
  ProgressView view(/*terminal=*/true);
  json d = Delivery("running", {Item("a", "running", 0.5, 1), Item("bb", "queued")});
  std::string first = view.Update(d);
  EXPECT_EQ(first.find("\x1b[3A"), std::string::npos) << "nothing to move over yet";
  EXPECT_EQ(first.substr(0, 5), "\r\x1b[2K");
  EXPECT_NE(first.find("launch-1: running"), std::string::npos);
  EXPECT_NE(first.find("  a   [############------------]  50%  running    w1\n"), std::string::npos)
      << first;
  size_t newlines = std::count(first.begin(), first.end(), '\n');
  EXPECT_EQ(newlines, 3u);  // headline + 2 items

  std::string second = view.Update(d);
  EXPECT_EQ(second.substr(0, 4), "\x1b[3A") << "moves up over the 3 lines drawn";
  EXPECT_EQ(std::count(second.begin(), second.end(), '\n'), 3);

  // One item fewer: the stale line is cleared and the cursor comes back up.
  json shorter = Delivery("running", {Item("a", "running", 0.6, 1)});
  std::string third = view.Update(shorter);
  EXPECT_EQ(third.substr(0, 4), "\x1b[3A");
  EXPECT_NE(third.find("\r\x1b[2K\n\x1b[1A"), std::string::npos) << third;
  EXPECT_EQ(view.Update(shorter).substr(0, 4), "\x1b[2A");
}

TEST(ProgressViewTest, TerminalLinesNeverWrap) {
  ProgressView view(/*terminal=*/true, /*columns=*/30);
  json item = Item("a", "failed");
  item["error"] = std::string(200, 'x');
  std::string out = view.Update(Delivery("running", {item}));
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    std::string line = out.substr(start, nl - start);
    ASSERT_EQ(line.substr(0, 5), "\r\x1b[2K");
    EXPECT_LE(line.size() - 5, 32u);  // 29 ASCII cells + a 3-byte ellipsis
    start = nl + 1;
  }
}

TEST(ProgressViewTest, SummaryShowsPathsSizesShaAndErrors) {
  json ok = Item("master", "delivered", 1, 1);
  json bad = Item("wav", "failed");
  bad["error"] = "the source has no audio";
  json d = Delivery("failed", {ok, bad});
  d["delivered"] = 1;
  d["failed"] = 1;
  d["manifest"] = "/out/manifest.json";
  std::string text = RenderSummary(d);
  EXPECT_NE(text.find("Delivery launch-1: failed, 1/2 delivered, 1 failed"), std::string::npos)
      << text;
  EXPECT_NE(text.find("master       delivered  master.mp4  2.0 KiB  0123456789ab\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("wav          failed     wav.mp4     -        the source has no audio"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Output folder: /out\n"), std::string::npos);
  EXPECT_NE(text.find("Manifest: /out/manifest.json\n"), std::string::npos);
}

}  // namespace
}  // namespace reelfarm::cli
