#include <gtest/gtest.h>

#include <deque>
#include <sstream>

#include "cli/watch.h"

namespace reelfarm::cli {
namespace {

using nlohmann::json;

ApiResponse Answer(int status, const json& body) {
  ApiResponse r;
  r.status = status;
  r.json = body;
  r.body = body.dump();
  return r;
}

json Delivery(const std::string& state, const std::string& item_state) {
  return {{"id", "d-1"},
          {"name", "d"},
          {"state", state},
          {"deliverables", 1},
          {"delivered", item_state == "delivered" ? 1 : 0},
          {"failed", item_state == "failed" ? 1 : 0},
          {"progress", 0.5},
          {"output_dir", "/out"},
          {"items",
           {{{"name", "web"},
             {"state", item_state},
             {"progress", 0.5},
             {"attempts", 1},
             {"worker", "w1"},
             {"path", "web.mp4"},
             {"bytes", 10},
             {"sha256", "abc"},
             {"error", item_state == "failed" ? "boom" : ""}}}}};
}

// Replays scripted answers; counts the polls and the sleeps between them.
struct Script {
  std::deque<StatusOr<ApiResponse>> answers;
  int polls = 0;
  int sleeps = 0;
  StatusOr<ApiResponse> Next() {
    ++polls;
    if (answers.empty()) return Status::Internal("script ran out");
    StatusOr<ApiResponse> a = answers.front();
    answers.pop_front();
    return a;
  }
};

WatchResult Watch(Script& script, WatchOptions options, std::string* out, std::string* err) {
  options.sleep = [&](double) { ++script.sleeps; };
  std::ostringstream o, e;
  WatchResult r = WatchDelivery([&] { return script.Next(); }, options, o, e);
  *out = o.str();
  *err = e.str();
  return r;
}

TEST(WatchTest, FollowsUntilDeliveredAndExitsZero) {
  Script script;
  script.answers = {
      Answer(200, Delivery("queued", "queued")), Answer(200, Delivery("running", "running")),
      Answer(200, Delivery("running", "running")), Answer(200, Delivery("delivered", "delivered"))};
  std::string out, err;
  WatchResult r = Watch(script, WatchOptions(), &out, &err);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(script.polls, 4);
  EXPECT_EQ(script.sleeps, 3);  // between polls, not before the first
  EXPECT_EQ(r.delivery["state"], "delivered");
  // Plain lines: one per change, then the summary.
  EXPECT_NE(out.find("web: queued\nweb: running on w1\nweb: delivered web.mp4"), std::string::npos)
      << out;
  EXPECT_NE(out.find("Output folder: /out"), std::string::npos) << out;
  EXPECT_EQ(err, "");
}

TEST(WatchTest, FailedDeliveryExitsThree) {
  Script script;
  script.answers = {Answer(200, Delivery("failed", "failed"))};
  std::string out, err;
  EXPECT_EQ(Watch(script, WatchOptions(), &out, &err).exit_code, 3);
  EXPECT_NE(out.find("boom"), std::string::npos);
}

TEST(WatchTest, AManifestThatCannotBeWrittenEndsTheWatchWithFive) {
  auto failing = [](int failures) {
    json d = Delivery("running", "delivered");
    d["delivered"] = 1;
    d["manifest_error"] = "cannot write /out/manifest.json: Read-only file system";
    d["manifest_failures"] = failures;
    return d;
  };
  Script script;
  // A first failed try is ridden out (the coordinator retries at once);
  // the third in a row ends the watch.
  script.answers = {Answer(200, failing(1)), Answer(200, failing(2)), Answer(200, failing(3)),
                    Answer(200, Delivery("delivered", "delivered"))};
  std::string out, err;
  WatchResult r = Watch(script, WatchOptions(), &out, &err);
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(script.polls, 3);
  EXPECT_NE(err.find("the manifest cannot be written (3 tries): cannot write /out/manifest.json"),
            std::string::npos)
      << err;
  EXPECT_EQ(out.find("Manifest:"), std::string::npos) << "no manifest is advertised: " << out;
}

TEST(WatchTest, CancelledDeliveryExitsThree) {
  Script script;
  script.answers = {Answer(200, Delivery("cancelled", "cancelled"))};
  std::string out, err;
  EXPECT_EQ(Watch(script, WatchOptions(), &out, &err).exit_code, 3);
}

TEST(WatchTest, RidesOutAShortOutageThenGivesUpWithFour) {
  Script script;
  script.answers = {Status::Unavailable("cannot reach"), Status::Unavailable("cannot reach"),
                    Answer(200, Delivery("delivered", "delivered"))};
  std::string out, err;
  WatchOptions options;
  options.max_unreachable_polls = 3;
  EXPECT_EQ(Watch(script, options, &out, &err).exit_code, 0);
  EXPECT_NE(err.find("warning: cannot reach; retrying"), std::string::npos) << err;
  EXPECT_NE(err.find("answers again"), std::string::npos) << err;

  Script down;
  for (int i = 0; i < 5; ++i) down.answers.push_back(Status::Unavailable("cannot reach"));
  EXPECT_EQ(Watch(down, options, &out, &err).exit_code, 4);
  EXPECT_EQ(down.polls, 3);
}

TEST(WatchTest, Persistent503IsUnreachable) {
  Script script;
  for (int i = 0; i < 3; ++i) script.answers.push_back(Answer(503, {{"error", "redis down"}}));
  std::string out, err;
  WatchOptions options;
  options.max_unreachable_polls = 3;
  EXPECT_EQ(Watch(script, options, &out, &err).exit_code, 4);
  EXPECT_NE(err.find("redis down"), std::string::npos);
}

TEST(WatchTest, UnknownDeliveryExitsOne) {
  Script script;
  script.answers = {Answer(404, {{"error", "no delivery d-9"}})};
  std::string out, err;
  EXPECT_EQ(Watch(script, WatchOptions(), &out, &err).exit_code, 1);
  EXPECT_NE(err.find("no delivery d-9"), std::string::npos);
}

TEST(WatchTest, DeadFarmProcessEndsTheWatchWithFour) {
  Script script;
  script.answers = {Answer(200, Delivery("running", "running")),
                    Answer(200, Delivery("running", "running"))};
  int checks = 0;
  WatchOptions options;
  options.check_farm = [&]() -> Status {
    return ++checks < 2 ? Status::OK() : Status::Unavailable("the coordinator ended: exit code 1");
  };
  std::string out, err;
  EXPECT_EQ(Watch(script, options, &out, &err).exit_code, 4);
  EXPECT_EQ(script.polls, 1);
  EXPECT_NE(err.find("the coordinator ended: exit code 1"), std::string::npos);
}

TEST(WatchTest, InterruptionExits130) {
  Script script;
  script.answers = {Answer(200, Delivery("running", "running")),
                    Answer(200, Delivery("running", "running"))};
  std::atomic<bool> interrupted{false};
  WatchOptions options;
  options.interrupted = &interrupted;
  options.sleep = nullptr;
  std::ostringstream o, e;
  int polls = 0;
  WatchResult r = WatchDelivery(
      [&]() -> StatusOr<ApiResponse> {
        ++polls;
        interrupted = true;  // as if Ctrl-C came during the first poll
        return script.Next();
      },
      options, o, e);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(polls, 1);
}

}  // namespace
}  // namespace reelfarm::cli
