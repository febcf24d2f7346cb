// The web board's pure pieces (coordinator/web_ui.h): the session cookie,
// the CSRF rule, the login throttle, which file a download may send and the
// confinement of that file to the delivery's folder; then the routes on a
// loopback server (headers, login, logout, download) with a fake delivery.
#include "coordinator/web_ui.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/clock.h"
#include "common/secure.h"
#include "coordinator/http_guard.h"

namespace reelfarm {
namespace {

namespace fs = std::filesystem;

TEST(WebSessionCookie, IsTheHmacOfTheTokenNotTheToken) {
  // python3: hmac.new(b'secret-token', b'reelfarm-web-session', sha256).hexdigest()
  EXPECT_EQ(SessionCookieValue("secret-token"),
            "bae7d1f9e4295fa1df0f8fff8460c416dc15c6fd0ffe4dce84627eb7d49f97c9");
  EXPECT_NE(SessionCookieValue("secret-token"), SessionCookieValue("secret-token2"));
  EXPECT_EQ(SessionCookieValue("x").find('x'), std::string::npos);
}

TEST(WebSessionCookie, CookieHeaderParsing) {
  EXPECT_EQ(CookieValue("a=1; reelfarm_session=abc; b=2", "reelfarm_session"), "abc");
  EXPECT_EQ(CookieValue("reelfarm_session=\"abc\"", "reelfarm_session"), "abc");
  EXPECT_EQ(CookieValue("xreelfarm_session=abc", "reelfarm_session"), "");
  EXPECT_EQ(CookieValue("reelfarm_session=first; reelfarm_session=second", "reelfarm_session"),
            "first");
  EXPECT_EQ(CookieValue("", "reelfarm_session"), "");
  EXPECT_EQ(CookieValue("garbage;;=;", "reelfarm_session"), "");
}

TEST(WebSessionCookie, AuthenticateAcceptsBearerOrCookieOnly) {
  const std::string token = "t0ken";
  const std::string cookie = "reelfarm_session=" + SessionCookieValue(token);
  EXPECT_EQ(Authenticate("", "", ""), WebAuth::kOpen);
  EXPECT_EQ(Authenticate(token, "Bearer t0ken", ""), WebAuth::kBearer);
  EXPECT_EQ(Authenticate(token, "", cookie), WebAuth::kCookie);
  EXPECT_EQ(Authenticate(token, "Bearer wrong", cookie), WebAuth::kCookie);
  EXPECT_EQ(Authenticate(token, "Bearer wrong", ""), WebAuth::kRefused);
  EXPECT_EQ(Authenticate(token, "", "reelfarm_session=t0ken"), WebAuth::kRefused)
      << "the raw token is not a session";
  EXPECT_EQ(Authenticate(token, "", "reelfarm_session=" + SessionCookieValue("other")),
            WebAuth::kRefused);
  EXPECT_EQ(Authenticate(token, "", ""), WebAuth::kRefused);
}

TEST(WebCsrf, CookiePostsNeedTheCustomHeaderAndTheirOwnOrigin) {
  const std::string host = "farm:8470";
  // Bearer and open requests: unaffected.
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kBearer, "POST", "", "https://evil.example", host));
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kOpen, "POST", "", "", host));
  // Safe methods with the cookie: fine.
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "GET", "", "", host));
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "HEAD", "", "https://evil.example", host));
  // Unsafe ones: the header, and an Origin (if any) of this server.
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "", host));
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "http://farm:8470", host));
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "https://farm:8470", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "", "", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "", "http://farm:8470", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "0", "", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "https://evil.example", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "http://farm:8471", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "DELETE", "", "", host));
  // "null": withheld by the browser (no-referrer); the header still counts.
  EXPECT_TRUE(PassesCsrfCheck(WebAuth::kCookie, "POST", "1", "null", host));
  EXPECT_FALSE(PassesCsrfCheck(WebAuth::kCookie, "POST", "", "null", host));
}

TEST(WebLoginThrottle, RefusesAnAddressAfterItsFailuresUntilTheWindowPasses) {
  LoginThrottle t(3, std::chrono::milliseconds(1000), 2);
  SteadyTime now{};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(t.Allowed("a", now));
    t.Failed("a", now);
  }
  EXPECT_FALSE(t.Allowed("a", now));
  EXPECT_TRUE(t.Allowed("b", now)) << "other addresses are not affected";
  EXPECT_TRUE(t.Allowed("a", now + std::chrono::milliseconds(1000)));
  // A success forgets the failures.
  t.Failed("c", now);
  t.Failed("c", now);
  t.Succeeded("c");
  t.Failed("c", now);
  t.Failed("c", now);
  EXPECT_TRUE(t.Allowed("c", now));
  // Bounded: with two addresses tracked, a third pushes out the oldest.
  LoginThrottle small(1, std::chrono::milliseconds(1000), 2);
  small.Failed("x", now);
  small.Failed("y", now + std::chrono::milliseconds(1));
  EXPECT_FALSE(small.Allowed("x", now + std::chrono::milliseconds(1)));
  small.Failed("z", now + std::chrono::milliseconds(2));
  EXPECT_TRUE(small.Allowed("x", now + std::chrono::milliseconds(2)));
  EXPECT_FALSE(small.Allowed("y", now + std::chrono::milliseconds(2)));
  EXPECT_FALSE(small.Allowed("z", now + std::chrono::milliseconds(2)));
}

nlohmann::json Detail(const std::string& dir) {
  return {{"id", "d-1"},
          {"output_dir", dir},
          {"items",
           {{{"name", "web"}, {"state", "delivered"}, {"path", "web.mp4"}},
            {{"name", "running"}, {"state", "running"}, {"path", "running.mp4"}},
            {{"name", "stream"},
             {"state", "delivered"},
             {"path", "stream"},
             {"renditions", nlohmann::json::array()}},
            {{"name", "nested"}, {"state", "delivered"}, {"path", "sub/dir/poster.jpg"}}}}};
}

TEST(WebDownload, OnlyADeliveredListedPath) {
  auto d = Detail("/out");
  ASSERT_TRUE(DownloadRelativePath(d, "web").ok());
  EXPECT_EQ(*DownloadRelativePath(d, "web"), "web.mp4");
  EXPECT_EQ(*DownloadRelativePath(d, "stream"), "stream/master.m3u8");
  EXPECT_EQ(DownloadRelativePath(d, "running").status().code(), Status::Code::kNotFound)
      << "not delivered yet";
  EXPECT_EQ(DownloadRelativePath(d, "web.mp4").status().code(), Status::Code::kNotFound)
      << "a path is not a deliverable";
  EXPECT_EQ(DownloadRelativePath(d, "../etc/passwd").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(DownloadRelativePath(nlohmann::json::object(), "web").status().code(),
            Status::Code::kNotFound);
}

TEST(WebDownload, AttachmentNamesAreSanitised) {
  EXPECT_EQ(AttachmentFileName("web.mp4"), "web.mp4");
  EXPECT_EQ(AttachmentFileName("sub/dir/poster.jpg"), "poster.jpg");
  EXPECT_EQ(AttachmentFileName("a \"b\";\r\nc.mp4"), "a__b____c.mp4");
  EXPECT_EQ(AttachmentFileName("..hidden"), "hidden");
  EXPECT_EQ(AttachmentFileName("dir/"), "download");
  EXPECT_EQ(AttachmentFileName(std::string(300, 'x') + ".mov").size(), 128u);
}

class ConfinedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rf-web-XXXXXX";
    root_ = mkdtemp(tmpl);
    out_ = root_ + "/out";
    fs::create_directories(out_ + "/sub/dir");
    Write(out_ + "/web.mp4", "0123456789");
    Write(out_ + "/sub/dir/poster.jpg", "jpeg");
    Write(root_ + "/secret", "outside");
  }
  void TearDown() override { fs::remove_all(root_); }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string root_, out_;
};

TEST_F(ConfinedFileTest, OpensAListedFileInside) {
  auto f = OpenConfinedFile(out_, "web.mp4", {});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->size(), 10u);
  char buf[4] = {};
  EXPECT_EQ(::pread((*f)->fd(), buf, 4, 2), 4);
  EXPECT_EQ(std::string(buf, 4), "2345");
  ASSERT_TRUE(OpenConfinedFile(out_, "sub/dir/poster.jpg", {root_}).ok());
}

TEST_F(ConfinedFileTest, RefusesDotDotAbsoluteAndEmptyComponents) {
  for (const char* bad : {"../secret", "sub/../../secret", "/etc/passwd", "", "sub//dir/poster.jpg",
                          "./web.mp4", "sub/dir/"}) {
    auto f = OpenConfinedFile(out_, bad, {});
    EXPECT_EQ(f.status().code(), Status::Code::kInvalidArgument) << bad;
  }
}

TEST_F(ConfinedFileTest, RefusesSymlinksAnywhereBelowTheFolder) {
  fs::create_symlink(root_ + "/secret", out_ + "/link.mp4");
  auto f = OpenConfinedFile(out_, "link.mp4", {});
  EXPECT_EQ(f.status().code(), Status::Code::kInvalidArgument) << f.status().ToString();
  // A folder on the way swapped for a symlink.
  fs::create_directories(root_ + "/elsewhere/dir");
  Write(root_ + "/elsewhere/dir/poster.jpg", "not yours");
  fs::remove_all(out_ + "/sub");
  fs::create_directory_symlink(root_ + "/elsewhere", out_ + "/sub");
  f = OpenConfinedFile(out_, "sub/dir/poster.jpg", {});
  EXPECT_EQ(f.status().code(), Status::Code::kInvalidArgument) << f.status().ToString();
}

TEST_F(ConfinedFileTest, RefusesWhatIsNotARegularFileAndMissesCleanly) {
  ASSERT_EQ(::mkfifo((out_ + "/fifo").c_str(), 0600), 0);
  EXPECT_EQ(OpenConfinedFile(out_, "fifo", {}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(OpenConfinedFile(out_, "sub", {}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(OpenConfinedFile(out_, "missing.mp4", {}).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(OpenConfinedFile(root_ + "/nope", "web.mp4", {}).status().code(),
            Status::Code::kNotFound);
}

TEST_F(ConfinedFileTest, TheFolderMustBeInsideTheAllowedRoots) {
  EXPECT_EQ(OpenConfinedFile(out_, "web.mp4", {root_ + "/elsewhere"}).status().code(),
            Status::Code::kInvalidArgument);
  // The folder's own path may be a symlink; where it really is counts.
  fs::create_directory_symlink(out_, root_ + "/alias");
  EXPECT_TRUE(OpenConfinedFile(root_ + "/alias", "web.mp4", {out_}).ok());
  fs::create_directories(root_ + "/allowed");
  EXPECT_FALSE(OpenConfinedFile(root_ + "/alias", "web.mp4", {root_ + "/allowed"}).ok());
}

// The routes on a loopback GuardedHttpServer, with a fake delivery.
class WebRoutesTest : public ConfinedFileTest {
 protected:
  void Start(const std::string& token) {
    WebUiOptions o;
    o.api_token = token;
    o.clock = &clock_;
    o.max_failed_logins = 2;
    const std::string out = out_;
    o.show_delivery = [out](const std::string& id) -> StatusOr<nlohmann::json> {
      if (id != "d-1") return Status::NotFound("no delivery " + id);
      return Detail(out);
    };
    web_ = std::make_shared<WebUi>(o);
    server_ = std::make_unique<GuardedHttpServer>(HttpLimits{});
    WebUi::Register(web_, server_.get());
    auto web = web_;
    server_->SetPreRoutingHandler([web](const httplib::Request& req, httplib::Response& res) {
      if (req.path.rfind("/api/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
      return web->AuthorizeApi(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                         : httplib::Server::HandlerResponse::Handled;
    });
    server_->Post("/api/v1/poke", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{}", "application/json");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    ConfinedFileTest::TearDown();
  }
  FakeClock clock_;
  std::shared_ptr<WebUi> web_;
  std::unique_ptr<GuardedHttpServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(WebRoutesTest, PagesCarryTheSecurityHeadersAndAnETag) {
  Start("");
  auto r = client_->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Content-Security-Policy").rfind("default-src 'self'", 0), 0u);
  EXPECT_EQ(r->get_header_value("Content-Security-Policy").find("unsafe-inline"),
            std::string::npos);
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY");
  EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer");
  EXPECT_NE(r->body.find("data-login=\"off\""), std::string::npos);
  auto js = client_->Get("/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  const std::string etag = js->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  auto again = client_->Get("/app.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_EQ(client_->Get("/app.css")->get_header_value("Content-Type"), "text/css; charset=utf-8");
  // No token: no login page.
  EXPECT_EQ(client_->Get("/login")->status, 303);
}

TEST_F(WebRoutesTest, WithATokenThePageNeedsTheLoginAndItsCookie) {
  Start("t0ken");
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 303);
  EXPECT_EQ(page->get_header_value("Location"), "/login");
  // Assets hold no data: served without the login.
  EXPECT_EQ(client_->Get("/app.js")->status, 200);
  EXPECT_EQ(client_->Get("/login")->status, 200);
  EXPECT_EQ(client_->Get("/api/v1/deliveries/d-1/files/web")->status, 401);

  auto wrong = client_->Post("/login", "token=nope", "application/x-www-form-urlencoded");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_FALSE(wrong->has_header("Set-Cookie"));
  EXPECT_NE(wrong->body.find("role=\"alert\""), std::string::npos);

  auto right = client_->Post("/login", "token=t0ken", "application/x-www-form-urlencoded");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 303);
  const std::string set = right->get_header_value("Set-Cookie");
  EXPECT_EQ(set, "reelfarm_session=" + SessionCookieValue("t0ken") +
                     "; Path=/; HttpOnly; SameSite=Strict");
  const httplib::Headers cookie = {{"Cookie", "reelfarm_session=" + SessionCookieValue("t0ken")}};
  auto logged_in = client_->Get("/", cookie);
  EXPECT_EQ(logged_in->status, 200);
  EXPECT_NE(logged_in->body.find("data-login=\"on\""), std::string::npos);

  // The cookie's POSTs need the custom header; bearer ones do not.
  EXPECT_EQ(client_->Post("/api/v1/poke", cookie, "", "application/json")->status, 403);
  httplib::Headers with_header = cookie;
  with_header.emplace("X-Reelfarm-Request", "1");
  EXPECT_EQ(client_->Post("/api/v1/poke", with_header, "", "application/json")->status, 200);
  with_header.emplace("Origin", "https://evil.example");
  EXPECT_EQ(client_->Post("/api/v1/poke", with_header, "", "application/json")->status, 403);
  EXPECT_EQ(
      client_->Post("/api/v1/poke", {{"Authorization", "Bearer t0ken"}}, "", "application/json")
          ->status,
      200);

  auto out = client_->Post("/logout", cookie, "", "application/x-www-form-urlencoded");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 303);
  EXPECT_NE(out->get_header_value("Set-Cookie").find("Max-Age=0"), std::string::npos);
}

TEST_F(WebRoutesTest, FailedLoginsAreBoundedPerAddress) {
  Start("t0ken");
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(client_->Post("/login", "token=no", "application/x-www-form-urlencoded")->status,
              401);
  }
  // Refused now, even with the right token, until the window passes.
  EXPECT_EQ(client_->Post("/login", "token=t0ken", "application/x-www-form-urlencoded")->status,
            429);
  clock_.Advance(std::chrono::minutes(1));
  EXPECT_EQ(client_->Post("/login", "token=t0ken", "application/x-www-form-urlencoded")->status,
            303);
}

TEST_F(WebRoutesTest, DownloadStreamsTheDeliveredFileOnly) {
  // Larger than one piece of the content provider.
  std::string big(600 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  Write(out_ + "/web.mp4", big);
  Start("");
  auto r = client_->Get("/api/v1/deliveries/d-1/files/web");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Disposition"), "attachment; filename=\"web.mp4\"");
  EXPECT_EQ(r->get_header_value("Content-Length"), std::to_string(big.size()));
  EXPECT_EQ(Sha256Hex(r->body), Sha256Hex(big));
  EXPECT_EQ(client_->Get("/api/v1/deliveries/d-1/files/running")->status, 404);
  EXPECT_EQ(client_->Get("/api/v1/deliveries/d-2/files/web")->status, 404);
  EXPECT_EQ(client_->Get("/api/v1/deliveries/d-1/files/stream")->status, 404) << "no playlist";
  // The delivered path swapped for a symlink: refused, not followed.
  fs::remove(out_ + "/web.mp4");
  fs::create_symlink(root_ + "/secret", out_ + "/web.mp4");
  auto link = client_->Get("/api/v1/deliveries/d-1/files/web");
  ASSERT_TRUE(link);
  EXPECT_EQ(link->status, 403);
  EXPECT_EQ(link->body.find("outside"), std::string::npos);
}

}  // namespace
}  // namespace reelfarm
