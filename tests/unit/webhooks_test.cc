// Signed webhooks: signatures against the Standard Webhooks reference
// libraries' vector, secrets, the retry schedule, where webhooks may go, and
// the reconciler's events (coordinator/webhook_outbox.h).
#include "common/webhooks.h"

#include <gtest/gtest.h>

#include <set>

#include "cli/api_client.h"
#include "common/spec.h"
#include "coordinator/webhook_outbox.h"

namespace reelfarm {
namespace {

// From the Standard Webhooks reference libraries' tests (go, csharp).
constexpr char kRefSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kRefId[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kRefTimestamp = 1614265330;
constexpr char kRefBody[] = R"({"test": 2432232314})";
constexpr char kRefSignature[] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(WebhookSignature, MatchesTheReferenceVector) {
  auto key = ParseWebhookSecret(kRefSecret);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->size(), 24u);
  EXPECT_EQ(SignWebhook(*key, kRefId, kRefTimestamp, kRefBody), kRefSignature);
}

TEST(WebhookSignature, VerifiesAndRefusesTampering) {
  auto key = *ParseWebhookSecret(kRefSecret);
  const std::string ts = std::to_string(kRefTimestamp);
  EXPECT_TRUE(VerifyWebhook(key, kRefId, ts, kRefSignature, kRefBody, kRefTimestamp).ok());
  // One of several (rotation) suffices.
  EXPECT_TRUE(VerifyWebhook(key, kRefId, ts, std::string("v1,bm9wZQ== ") + kRefSignature, kRefBody,
                            kRefTimestamp + 10)
                  .ok());
  EXPECT_FALSE(
      VerifyWebhook(key, kRefId, ts, kRefSignature, R"({"test": 2432232315})", kRefTimestamp).ok());
  EXPECT_FALSE(VerifyWebhook(key, "msg_other", ts, kRefSignature, kRefBody, kRefTimestamp).ok());
  EXPECT_FALSE(VerifyWebhook(key, kRefId, std::to_string(kRefTimestamp + 1), kRefSignature,
                             kRefBody, kRefTimestamp)
                   .ok());
  // Too old or too new.
  EXPECT_FALSE(VerifyWebhook(key, kRefId, ts, kRefSignature, kRefBody, kRefTimestamp + 301).ok());
  EXPECT_FALSE(VerifyWebhook(key, kRefId, ts, kRefSignature, kRefBody, kRefTimestamp - 301).ok());
  EXPECT_FALSE(VerifyWebhook(key, kRefId, "12x", kRefSignature, kRefBody, kRefTimestamp).ok());
  EXPECT_FALSE(VerifyWebhook(key, kRefId, ts, "", kRefBody, kRefTimestamp).ok());
  EXPECT_FALSE(VerifyWebhook(key, kRefId, ts, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                             kRefBody, kRefTimestamp)
                   .ok());
}

TEST(WebhookSecret, ParsesWhsecAndRefusesBadOnes) {
  EXPECT_TRUE(ParseWebhookSecret("  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").ok());
  EXPECT_TRUE(ParseWebhookSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok());  // prefix optional
  EXPECT_FALSE(ParseWebhookSecret("").ok());
  EXPECT_FALSE(ParseWebhookSecret("whsec_").ok());
  EXPECT_FALSE(ParseWebhookSecret("whsec_c2hvcnQ=").ok());  // 5 bytes
  EXPECT_FALSE(ParseWebhookSecret("whsec_not*base64!!").ok());
  EXPECT_FALSE(ParseWebhookSecret("whsec_" + Base64Encode(std::string(65, 'x'))).ok());
  EXPECT_TRUE(ParseWebhookSecret("whsec_" + Base64Encode(std::string(64, 'x'))).ok());
  // The message never holds the secret.
  auto bad = ParseWebhookSecret("whsec_c2VjcmV0c2VjcmV0");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("c2VjcmV0"), std::string::npos);
}

TEST(WebhookBase64, RoundTrips) {
  for (const std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x10"}) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_FALSE(Base64Decode("Y").ok());
}

TEST(WebhookRetry, BacksOffExponentiallyCappedWithJitter) {
  WebhookRetryOptions o;
  o.first_backoff = std::chrono::milliseconds(100);
  o.factor = 2;
  o.max_backoff = std::chrono::milliseconds(1000);
  o.jitter = 0.2;
  o.Sanitize();
  // unit_random 0.5: no spread.
  EXPECT_EQ(WebhookBackoff(o, 1, 0.5).count(), 100);
  EXPECT_EQ(WebhookBackoff(o, 2, 0.5).count(), 200);
  EXPECT_EQ(WebhookBackoff(o, 4, 0.5).count(), 800);
  EXPECT_EQ(WebhookBackoff(o, 5, 0.5).count(), 1000);
  EXPECT_EQ(WebhookBackoff(o, 500, 0.5).count(), 1000);
  EXPECT_EQ(WebhookBackoff(o, 1, 0.0).count(), 80);
  EXPECT_EQ(WebhookBackoff(o, 1, 1.0).count(), 120);
  WebhookRetryOptions bad;
  bad.attempts = 0;
  bad.factor = 0;
  bad.jitter = 5;
  bad.Sanitize();
  EXPECT_EQ(bad.attempts, WebhookRetryOptions{}.attempts);
  EXPECT_GE(bad.factor, 1);
  EXPECT_LT(bad.jitter, 1);
}

TEST(WebhookUrlTest, ParsesHttpAndHttpsOnly) {
  auto u = ParseWebhookUrl("HTTPS://Hooks.Example.com/a/b?x=1");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/a/b?x=1");
  EXPECT_EQ(u->Origin(), "https://hooks.example.com:443");
  auto v6 = ParseWebhookUrl("http://[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_EQ(v6->target, "/");
  EXPECT_EQ(v6->Origin(), "http://[::1]:8080");
  for (const char* bad :
       {"ftp://example.com/", "file:///etc/passwd", "example.com/hook", "http://", "http://:80/",
        "http://user:pw@example.com/", "http://example.com:0/", "http://example.com:99999/",
        "http://example.com:8o/", "http://exa mple.com/", "http://example.com/#frag",
        "http://[zz::1]/", "gopher://example.com", "http://example.com:/"}) {
    EXPECT_FALSE(ParseWebhookUrl(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseWebhookUrl("http://example.com/" + std::string(3000, 'a')).ok());
}

std::string Why(const std::string& ip, const WebhookAllowList& allow = {},
                const std::string& host = "h.example") {
  sockaddr_storage ss;
  EXPECT_TRUE(ParseIpLiteral(ip, &ss)) << ip;
  return WebhookAddressProblem(host, reinterpret_cast<const sockaddr*>(&ss), allow);
}

TEST(WebhookAddressPolicy, RefusesNonPublicAddresses) {
  for (const char* ip : {"127.0.0.1",
                         "127.1.2.3",
                         "10.0.0.1",
                         "10.255.255.255",
                         "172.16.0.1",
                         "172.31.255.1",
                         "192.168.1.1",
                         "169.254.169.254",
                         "169.254.0.1",
                         "100.64.0.1",
                         "0.0.0.0",
                         "224.0.0.1",
                         "255.255.255.255",
                         "198.18.0.1",
                         "::1",
                         "::",
                         "fe80::1",
                         "febf::1",
                         "fc00::1",
                         "fd00:ec2::254",
                         "ff02::1",
                         "::ffff:127.0.0.1",
                         "::ffff:169.254.169.254",
                         "::ffff:10.1.2.3",
                         "::127.0.0.1",
                         "64:ff9b::a9fe:a9fe",
                         "2002:7f00:1::"}) {
    EXPECT_NE(Why(ip), "") << ip;
  }
  for (const char* ip : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "192.169.0.1", "100.128.0.1",
                         "2606:4700:4700::1111", "::ffff:8.8.8.8", "2a00:1450:4001::1"}) {
    EXPECT_EQ(Why(ip), "") << ip;
  }
  EXPECT_NE(Why("169.254.169.254").find("metadata"), std::string::npos);
  EXPECT_NE(Why("127.0.0.1").find("--webhook-allow"), std::string::npos);
}

TEST(WebhookAddressPolicy, AllowListOverrides) {
  WebhookAllowList allow;
  ASSERT_TRUE(allow.Add("127.0.0.1/32").ok());
  ASSERT_TRUE(allow.Add("10.0.0.0/8").ok());
  ASSERT_TRUE(allow.Add("fd00::/8").ok());
  ASSERT_TRUE(allow.Add("Hooks.Internal").ok());
  EXPECT_EQ(Why("127.0.0.1", allow), "");
  EXPECT_EQ(Why("::ffff:127.0.0.1", allow), "");  // the mapped form is the same address
  EXPECT_NE(Why("127.0.0.2", allow), "");
  EXPECT_EQ(Why("10.9.8.7", allow), "");
  EXPECT_EQ(Why("fd00:ec2::254", allow), "");
  EXPECT_NE(Why("169.254.169.254", allow), "");
  EXPECT_NE(Why("::1", allow), "");
  EXPECT_EQ(Why("192.168.0.5", allow, "hooks.internal"), "");
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "1.2.3.4/x", "bad host!", "h/8"}) {
    WebhookAllowList a;
    EXPECT_FALSE(a.Add(bad).ok()) << bad;
  }
}

TEST(WebhookPost, ChecksTheResolvedAddressBeforeConnecting) {
  auto url = ParseWebhookUrl("http://127.0.0.1:1/hook");
  ASSERT_TRUE(url.ok());
  auto refused = PostWebhook(*url, {}, "{}", WebhookAllowList{}, std::chrono::milliseconds(500),
                             std::chrono::milliseconds(500));
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error.find("refused: address 127.0.0.1"), std::string::npos) << refused.error;
  // Allowed: it connects (nobody listens on port 1).
  WebhookAllowList allow;
  ASSERT_TRUE(allow.Add("127.0.0.0/8").ok());
  auto tried = PostWebhook(*url, {}, "{}", allow, std::chrono::milliseconds(500),
                           std::chrono::milliseconds(500));
  EXPECT_EQ(tried.status, 0);
  EXPECT_EQ(tried.error.find("refused: address"), std::string::npos) << tried.error;
  EXPECT_NE(tried.error.find("failed"), std::string::npos) << tried.error;
}

TEST(WebhookMessage, IdsAreDeterministicAndDotless) {
  EXPECT_EQ(WebhookMessageId("a|b"), WebhookMessageId("a|b"));
  EXPECT_NE(WebhookMessageId("a|b"), WebhookMessageId("a|c"));
  EXPECT_EQ(WebhookMessageId("x.y").find('.'), std::string::npos);
  EXPECT_EQ(WebhookMessageId("x").size(), 4u + 32u);
  EXPECT_EQ(Iso8601Millis(1614265330123), "2021-02-25T15:02:10.123Z");
  auto body = nlohmann::json::parse(BuildWebhookBody("delivery.accepted", 0, {{"delivery", "d"}}));
  EXPECT_EQ(body["type"], "delivery.accepted");
  EXPECT_EQ(body["timestamp"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(body["data"]["delivery"], "d");
}

WebhookDeliveryView View() {
  WebhookDeliveryView v;
  v.id = "film-7";
  v.name = "film";
  v.output_dir = "/out/film";
  v.created_ms = 1000;
  for (const char* n : {"web", "hevc", "poster"}) {
    WebhookDeliveryView::Item item;
    item.deliverable = n;
    item.path = std::string(n) + ".mp4";
    v.items.push_back(item);
  }
  return v;
}

std::vector<std::string> Types(const std::vector<WebhookEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type);
  return out;
}

TEST(WebhookReconciler, DerivesEventsFromStateWithDeterministicIds) {
  WebhookDeliveryView v = View();
  auto first = DeriveWebhookEvents(v, 5000);
  ASSERT_EQ(Types(first), std::vector<std::string>{kEventDeliveryAccepted});
  v.items[0].delivered = true;
  v.items[0].generation = 4;
  v.items[0].sha256 = "ab";
  v.items[1].failed = true;
  v.items[1].generation = 5;
  v.items[1].error = "boom";
  auto second = DeriveWebhookEvents(v, 9000);
  ASSERT_EQ(Types(second),
            (std::vector<std::string>{kEventDeliveryAccepted, kEventDeliverablePublished,
                                      kEventDeliverableFailed}));
  // The same state later (another time stamp, a restart) gives the same ids.
  EXPECT_EQ(second[0].id, first[0].id);
  auto again = DeriveWebhookEvents(v, 123456);
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].id, second[i].id);
  auto published = nlohmann::json::parse(second[1].body);
  EXPECT_EQ(published["data"]["deliverable"], "web");
  EXPECT_EQ(published["data"]["sha256"], "ab");
  EXPECT_EQ(nlohmann::json::parse(second[2].body)["data"]["error"], "boom");
  // A retry that publishes the failed deliverable is a new event.
  v.items[1].failed = false;
  v.items[1].delivered = true;
  v.items[1].generation = 9;
  v.items[2].delivered = true;
  v.items[2].generation = 8;
  v.finished = true;
  v.finished_ms = 20000;
  v.state = "delivered";
  auto done = DeriveWebhookEvents(v, 30000);
  ASSERT_EQ(done.size(), 5u);
  EXPECT_EQ(done.back().type, kEventDeliveryFinished);
  std::set<std::string> ids;
  for (const auto& e : done) ids.insert(e.id);
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids.count(second[2].id), 0u);  // the failure's id is not reused
  // Finished again after a retry: another finished event.
  v.finished_ms = 40000;
  EXPECT_NE(DeriveWebhookEvents(v, 50000).back().id, done.back().id);
}

TEST(WebhookReconciler, EntryIdsDifferPerEndpoint) {
  WebhookTarget a{"https://a.example/h", "farm", {}, 0};
  WebhookTarget b{"https://b.example/h", "farm", {}, 0};
  WebhookTarget c{"https://a.example/h", "film-7#0", {}, 0};
  const std::string id = WebhookMessageId("k");
  std::set<std::string> entries = {WebhookEntryId(id, a), WebhookEntryId(id, b),
                                   WebhookEntryId(id, c)};
  EXPECT_EQ(entries.size(), 3u);
  EXPECT_EQ(WebhookEntryId(id, a), WebhookEntryId(id, a));
  EXPECT_EQ(WebhookEntryId(id, a).rfind(id, 0), 0u);
}

TEST(WebhookSpec, ParsesWebhooksWithLineAndFieldErrors) {
  const std::string head =
      "version: 1\nname: film\nsource: film.mov\ndeliverables:\n  - name: web\n"
      "    preset: web-h264\n";
  auto ok = ParseSpecText(head +
                              "webhooks:\n  - url: https://hooks.example.com/rf\n"
                              "    secret_file: hook.secret\n"
                              "    events: [deliverable.published, delivery.finished]\n",
                          "spec.yaml", "/media");
  ASSERT_TRUE(ok.spec) << (ok.errors.empty() ? "" : ok.errors[0].ToString());
  ASSERT_EQ(ok.spec->webhooks.size(), 1u);
  EXPECT_EQ(ok.spec->webhooks[0].secret_file, "/media/hook.secret");
  EXPECT_EQ(ok.spec->webhooks[0].events.size(), 2u);
  EXPECT_EQ(ok.spec->webhooks[0].line, 8);

  auto bad = ParseSpecText(head +
                               "webhooks:\n  - url: ftp://hooks.example.com/rf\n"
                               "    secret_file: hook.secret\n"
                               "  - url: https://x.example/\n"
                               "    events: [deliverable.publish]\n",
                           "spec.yaml", "/media");
  ASSERT_FALSE(bad.spec);
  std::vector<std::string> texts;
  for (const auto& e : bad.errors) texts.push_back(e.ToString());
  ASSERT_EQ(bad.errors.size(), 3u) << ::testing::PrintToString(texts);
  EXPECT_EQ(bad.errors[0].field, "webhooks[0].url");
  EXPECT_EQ(bad.errors[0].line, 8);
  EXPECT_NE(bad.errors[0].message.find("scheme"), std::string::npos);
  EXPECT_EQ(bad.errors[1].field, "webhooks[1].secret_file");
  EXPECT_EQ(bad.errors[2].field, "webhooks[1].events[0]");
  EXPECT_NE(bad.errors[2].message.find("did you mean `deliverable.published`"), std::string::npos);

  auto not_list = ParseSpecText(head + "webhooks: https://x.example/\n", "spec.yaml", "/media");
  ASSERT_EQ(not_list.errors.size(), 1u);
  EXPECT_EQ(not_list.errors[0].field, "webhooks");
  EXPECT_EQ(not_list.errors[0].line, 7);
}

TEST(WebhookCli, SubmitCarriesCommandLineWebhooks) {
  auto plain = cli::SubmitRequestBody("version: 1\n", "x.yaml", "/abs");
  EXPECT_FALSE(plain.contains("webhooks"));
  auto with = cli::SubmitRequestBody("version: 1\n", "x.yaml", "/abs",
                                     {{"https://h.example/x", "/abs/h.whsec"}});
  ASSERT_EQ(with["webhooks"].size(), 1u);
  EXPECT_EQ(with["webhooks"][0]["url"], "https://h.example/x");
  EXPECT_EQ(with["webhooks"][0]["secret_file"], "/abs/h.whsec");
}

}  // namespace
}  // namespace reelfarm
