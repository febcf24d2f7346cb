// The webhook outbox against a real redis-server: the reconciler enqueues
// each event once per endpoint, also when a new outbox (a restarted
// coordinator, knowing nothing) derives them again; a redelivered dead
// letter is queued again.
#include "coordinator/webhook_outbox.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>

#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

WebhookDeliveryView View(bool finished) {
  WebhookDeliveryView v;
  v.id = "film-3";
  v.name = "film";
  v.output_dir = "/out";
  v.created_ms = FakeClock().WallMillis();
  for (const char* n : {"web", "poster"}) {
    WebhookDeliveryView::Item item;
    item.deliverable = n;
    item.delivered = finished;
    item.generation = 7;
    v.items.push_back(item);
  }
  v.finished = finished;
  v.finished_ms = v.created_ms + 1000;
  v.state = finished ? "delivered" : "running";
  return v;
}

// A real Redis, a fake clock and one farm-wide endpoint with its secret.
class WebhookOutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(farm_.StartRedis().ok());
    ep.port = farm_.redis_port();
    redis_.emplace(ep, 2000);
    redis = &*redis_;
    const std::string dir = MakeTempDir("reelfarm-outbox");
    { std::ofstream(dir + "/s") << "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"; }
    opts.urls = {"https://hooks.example.com/a"};
    opts.secret_file = dir + "/s";
  }

  LocalFarm farm_{LocalFarmOptions{}};
  std::optional<RedisClient> redis_;
  RedisEndpoint ep;
  RedisClient* redis = nullptr;
  FakeClock clock;
  WebhookOptions opts;
};

TEST_F(WebhookOutboxTest, EnqueuesEachEventOnceAcrossRestarts) {
  auto due = [&] { return redis->Command({"ZCARD", "rf:wh:due"})->integer; };

  WebhookOutbox first(opts, redis, ep, &clock);
  ASSERT_TRUE(first.Init().ok());
  // The delivery's own endpoint, interested in deliverables only.
  ASSERT_TRUE(
      WebhookOutbox::SaveSubscriptions(
          redis, {}, "rf:wh:", "film-3",
          {{"https://other.example.com/b", std::string(32, 'k'), {kEventDeliverablePublished}}})
          .ok());
  first.AddSubscriptions(
      "film-3",
      {{"https://other.example.com/b", std::string(32, 'k'), {kEventDeliverablePublished}}});
  ASSERT_TRUE(first.Reconcile({View(false)}).ok());
  EXPECT_EQ(due(), 1);  // accepted, farm-wide only
  ASSERT_TRUE(first.Reconcile({View(false)}).ok());
  EXPECT_EQ(due(), 1);
  ASSERT_TRUE(first.Reconcile({View(true)}).ok());
  EXPECT_EQ(due(), 1 + 2 + 1 + 2);  // farm: 2 published + finished; own: 2 published

  // A restarted coordinator derives them all again: nothing new.
  WebhookOutbox second(opts, redis, ep, &clock);
  ASSERT_TRUE(second.Init().ok());
  ASSERT_TRUE(second.Load({"film-3"}).ok());
  ASSERT_TRUE(second.Reconcile({View(true)}).ok());
  EXPECT_EQ(due(), 6);
  // Even one that forgot what it loaded (the Redis set decides).
  WebhookOutbox third(opts, redis, ep, &clock);
  ASSERT_TRUE(third.Init().ok());
  third.AddSubscriptions(
      "film-3",
      {{"https://other.example.com/b", std::string(32, 'k'), {kEventDeliverablePublished}}});
  ASSERT_TRUE(third.Reconcile({View(true)}).ok());
  EXPECT_EQ(due(), 6);

  auto described = second.Describe();
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["queue"], 6);
  EXPECT_EQ((*described)["dead_letters"], 0);
  for (const auto& q : (*described)["queued"]) {
    // Paths are not shown: they can hold an endpoint's secret.
    EXPECT_EQ(q["url"].get<std::string>().find("/a"), std::string::npos);
  }
  EXPECT_EQ(second.Redeliver("msg_nothing").code(), Status::Code::kNotFound);
}

TEST_F(WebhookOutboxTest, ADeliveryBeforeAFarmWebhookWasConfiguredIsNotReplayed) {
  WebhookDeliveryView old = View(true);
  clock.Advance(std::chrono::seconds(10));
  WebhookOutbox outbox(opts, redis, ep, &clock);
  ASSERT_TRUE(outbox.Init().ok());
  ASSERT_TRUE(outbox.Reconcile({old}).ok());
  EXPECT_EQ(redis->Command({"ZCARD", "rf:wh:due"})->integer, 0);
  WebhookDeliveryView fresh = View(false);
  fresh.id = "film-4";
  fresh.created_ms = clock.WallMillis();
  ASSERT_TRUE(outbox.Reconcile({fresh}).ok());
  EXPECT_EQ(redis->Command({"ZCARD", "rf:wh:due"})->integer, 1);
}

}  // namespace
}  // namespace reelfarm::testing
