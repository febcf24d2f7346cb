// The coordinator's web board (docs/web.md): the pages and their assets,
// embedded in the binary at build time from coordinator/web/ (see
// cmake/embed_web.cmake), the login that turns the API token into a session
// cookie, the CSRF rule for cookie-authenticated requests, and the download
// of delivered files.
//
// Routes (on the API's server, GuardedHttpServer):
//   GET /, /index.html      the board (one page, hash-routed); with a token
//                           configured, a redirect to /login without a valid
//                           session
//   GET /app.js, /app.css, /favicon.svg   static assets (no data: no login)
//   GET /login, POST /login, POST /logout
//   GET /api/v1/deliveries/{id}/files/{deliverable}   a delivered file
// Every page and asset carries a Content-Security-Policy without inline
// script or style, nosniff, X-Frame-Options DENY, no referrer; assets are
// revalidated (ETag).
#ifndef REELFARM_COORDINATOR_WEB_UI_H_
#define REELFARM_COORDINATOR_WEB_UI_H_

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace reelfarm {

// The session cookie's name, and the header a cookie-authenticated unsafe
// request must carry (a cross-site form cannot send it).
inline constexpr char kSessionCookieName[] = "reelfarm_session";
inline constexpr char kCsrfHeaderName[] = "X-Reelfarm-Request";

// The session cookie's value for `token`: lower-case hex of
// HMAC-SHA256(key = token, "reelfarm-web-session"). Not the token itself;
// it changes when the token does (which logs every browser out).
std::string SessionCookieValue(std::string_view token);

// The value of cookie `name` in a Cookie request header ("a=1; b=2"); ""
// when it is absent. The first one wins.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// How a request proves it may use the API.
enum class WebAuth {
  kOpen,     // no token configured: everything is open
  kBearer,   // "Authorization: Bearer TOKEN"
  kCookie,   // the session cookie
  kRefused,  // a token is configured and neither matched
};

// Compares in constant time (per length). An empty `token`: kOpen.
WebAuth Authenticate(std::string_view token, std::string_view authorization,
                     std::string_view cookie_header);

// The CSRF rule: a cookie-authenticated request with an unsafe method
// (anything but GET, HEAD, OPTIONS) must carry `X-Reelfarm-Request: 1`, and
// its Origin, when it names one, must be this server's (http:// or https://
// + the Host header). Bearer and open requests are not affected. The header
// is the defence (a cross-site form cannot send it; a cross-site fetch with
// it needs a CORS preflight this server never grants); the Origin is a second
// check.
bool PassesCsrfCheck(WebAuth auth, std::string_view method, std::string_view custom_header,
                     std::string_view origin, std::string_view host);

// Whether `origin` (the Origin header) is absent, "null" (withheld, as
// browsers do under Referrer-Policy: no-referrer), or names `host` (the Host
// header): for the login and logout forms.
bool SameOriginOrAbsent(std::string_view origin, std::string_view host);

// Failed logins per client address: after `max_failures` within `window`
// the address is refused until the window since its first failure passes.
// At most `max_addresses` are tracked (the oldest forgotten first).
// Thread-safe.
class LoginThrottle {
 public:
  LoginThrottle(int max_failures, std::chrono::milliseconds window, size_t max_addresses);
  bool Allowed(const std::string& address, SteadyTime now);
  void Failed(const std::string& address, SteadyTime now);
  void Succeeded(const std::string& address);

 private:
  struct Entry {
    SteadyTime first;
    int failures = 0;
  };
  int max_failures_;
  std::chrono::milliseconds window_;
  size_t max_addresses_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// The file of `deliverable` that GET .../files/{deliverable} sends, relative
// to the delivery's output_dir, from GET /api/v1/deliveries/{id}'s JSON
// (`delivery_detail`): the item's `path` when its state is "delivered"; for
// a streaming package (an item with `renditions`) its master playlist,
// `path`/master.m3u8. NotFound when no item of that name is delivered.
StatusOr<std::string> DownloadRelativePath(const nlohmann::json& delivery_detail,
                                           const std::string& deliverable);

// A regular file opened for reading; closes it when destroyed.
class ConfinedFile {
 public:
  ConfinedFile(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~ConfinedFile();
  ConfinedFile(const ConfinedFile&) = delete;
  ConfinedFile& operator=(const ConfinedFile&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_;
};

// Opens `relative` inside the folder `dir` without leaving it: `relative`
// must be a plain relative path (no leading '/', no "", "." or ".."
// component, at most 4096 bytes); `dir` is opened (its own path may hold
// symlinks) and must really lie inside `roots` (none: anywhere); then every
// component is opened with O_NOFOLLOW, so a symlink anywhere below `dir` is
// refused, and the end must be a regular file. NotFound when something is
// missing, InvalidArgument when refused (a bad path, a symlink, not a
// regular file, outside the roots), IOError otherwise.
StatusOr<std::shared_ptr<ConfinedFile>> OpenConfinedFile(const std::string& dir,
                                                         const std::string& relative,
                                                         const std::vector<std::string>& roots);

// The download's file name for Content-Disposition: the last component of
// `relative_path`, only [A-Za-z0-9._-] kept (others become '_'), no leading
// dot, at most 128 characters; "download" when nothing is left.
std::string AttachmentFileName(std::string_view relative_path);

struct WebUiOptions {
  std::string api_token;  // "" : no login
  std::vector<std::string> allowed_roots;
  // GET /api/v1/deliveries/{id}'s JSON (Coordinator::ShowDelivery).
  std::function<StatusOr<nlohmann::json>(const std::string& id)> show_delivery;
  Clock* clock = nullptr;  // not owned; for the login throttle
  int max_failed_logins = 10;
  std::chrono::milliseconds failed_login_window{60000};
};

class WebUi {
 public:
  explicit WebUi(WebUiOptions options);

  // For the server's pre-routing handler, on /api/ requests: true when the
  // request may go on; otherwise `res` holds the refusal (401 without a
  // valid bearer token or session cookie, 403 failing the CSRF rule).
  bool AuthorizeApi(const httplib::Request& req, httplib::Response& res) const;

  // Adds the page, asset, login and download routes to `server`. The
  // download route relies on AuthorizeApi having run (it is under /api/).
  // `self` must be this object: the routes keep it alive.
  static void Register(const std::shared_ptr<WebUi>& self, httplib::Server* server);

 private:
  void ServeAsset(const std::string& name, const httplib::Request& req,
                  httplib::Response& res) const;
  void ServeLogin(const httplib::Request& req, httplib::Response& res, int status,
                  const std::string& error) const;
  void Login(const httplib::Request& req, httplib::Response& res);
  void Download(const httplib::Request& req, httplib::Response& res) const;

  WebUiOptions options_;
  std::string cookie_value_;  // SessionCookieValue(token), or "" without one
  // index.html as served: it says whether a login is in use (the page then
  // offers to log out); the other assets as embedded.
  std::string index_html_;
  std::map<std::string, std::string> etags_;  // asset name -> quoted ETag
  std::unique_ptr<LoginThrottle> throttle_;
};

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_WEB_UI_H_
