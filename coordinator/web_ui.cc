#include "coordinator/web_ui.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fs_util.h"
#include "common/secure.h"
#include "coordinator/web_assets.h"

namespace reelfarm {
namespace {

constexpr char kSessionLabel[] = "reelfarm-web-session";
constexpr size_t kMaxRelativePath = 4096;
constexpr size_t kDownloadChunk = 256 << 10;

// No inline script or style anywhere: the pages load app.js and app.css.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'";

void SetSecurityHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
}

const char* ContentTypeOf(const std::string& name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() &&
           name.compare(name.size() - ext.size(), ext.size(), ext) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml; charset=utf-8";
  return "application/octet-stream";
}

const WebAsset* FindAsset(std::string_view name) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (name == kWebAssets[i].name) return &kWebAssets[i];
  }
  return nullptr;
}

std::string_view AssetText(const WebAsset& a) {
  return std::string_view(reinterpret_cast<const char*>(a.data), a.size);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool SafeMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

std::string RemoteAddress(const httplib::Request& req) { return req.remote_addr; }

void JsonError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(nlohmann::json({{"error", message}}).dump() + "\n", "application/json");
}

}  // namespace

std::string SessionCookieValue(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
           reinterpret_cast<const unsigned char*>(kSessionLabel), sizeof(kSessionLabel) - 1, md,
           &len) == nullptr) {
    abort();
  }
  return HexBytes(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = Trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = Trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return std::string(value);
  }
  return "";
}

WebAuth Authenticate(std::string_view token, std::string_view authorization,
                     std::string_view cookie_header) {
  if (token.empty()) return WebAuth::kOpen;
  if (!authorization.empty() &&
      ConstantTimeEquals(authorization, std::string("Bearer ") + std::string(token))) {
    return WebAuth::kBearer;
  }
  const std::string cookie = CookieValue(cookie_header, kSessionCookieName);
  if (!cookie.empty() && ConstantTimeEquals(cookie, SessionCookieValue(token))) {
    return WebAuth::kCookie;
  }
  return WebAuth::kRefused;
}

bool SameOriginOrAbsent(std::string_view origin, std::string_view host) {
  // "null": the browser withholds it (the pages' Referrer-Policy: no-referrer
  // makes it do so even for their own POSTs).
  if (origin.empty() || origin == "null") return true;
  if (host.empty()) return false;
  const std::string h(host);
  return origin == "http://" + h || origin == "https://" + h;
}

bool PassesCsrfCheck(WebAuth auth, std::string_view method, std::string_view custom_header,
                     std::string_view origin, std::string_view host) {
  if (auth != WebAuth::kCookie || SafeMethod(method)) return true;
  return custom_header == "1" && SameOriginOrAbsent(origin, host);
}

LoginThrottle::LoginThrottle(int max_failures, std::chrono::milliseconds window,
                             size_t max_addresses)
    : max_failures_(std::max(1, max_failures)),
      window_(window),
      max_addresses_(std::max<size_t>(1, max_addresses)) {}

bool LoginThrottle::Allowed(const std::string& address, SteadyTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return true;
  if (now - it->second.first >= window_) {
    entries_.erase(it);
    return true;
  }
  return it->second.failures < max_failures_;
}

void LoginThrottle::Failed(const std::string& address, SteadyTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(address);
  if (it != entries_.end() && now - it->second.first >= window_) {
    entries_.erase(it);
    it = entries_.end();
  }
  if (it == entries_.end()) {
    if (entries_.size() >= max_addresses_) {
      // Forget the expired ones, then (still full) the oldest.
      for (auto e = entries_.begin(); e != entries_.end();) {
        e = now - e->second.first >= window_ ? entries_.erase(e) : std::next(e);
      }
      if (entries_.size() >= max_addresses_) {
        entries_.erase(std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
          return a.second.first < b.second.first;
        }));
      }
    }
    it = entries_.emplace(address, Entry{now, 0}).first;
  }
  ++it->second.failures;
}

void LoginThrottle::Succeeded(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(address);
}

StatusOr<std::string> DownloadRelativePath(const nlohmann::json& detail,
                                           const std::string& deliverable) {
  if (detail.is_object() && detail.contains("items") && detail["items"].is_array()) {
    for (const auto& item : detail["items"]) {
      if (!item.is_object() || item.value("name", "") != deliverable) continue;
      if (item.value("state", "") != "delivered") continue;
      std::string path = item.value("path", "");
      if (path.empty()) continue;
      if (item.contains("renditions")) path += "/master.m3u8";
      return path;
    }
  }
  return Status::NotFound("no delivered deliverable " + deliverable);
}

ConfinedFile::~ConfinedFile() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<std::shared_ptr<ConfinedFile>> OpenConfinedFile(const std::string& dir,
                                                         const std::string& relative,
                                                         const std::vector<std::string>& roots) {
  if (relative.empty() || relative.size() > kMaxRelativePath || relative.front() == '/' ||
      relative.find('\0') != std::string::npos) {
    return Status::InvalidArgument("not a relative path: " + relative);
  }
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = relative.find('/', start);
    std::string part = relative.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") {
      return Status::InvalidArgument("a path with an empty, . or .. component: " + relative);
    }
    parts.push_back(std::move(part));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no folder " + dir);
    return Status::IOError("cannot open " + dir + ": " + std::strerror(errno));
  }
  // Where the folder actually opened lies (its path may be a symlink).
  char real[PATH_MAX + 1] = {};
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(self.c_str(), real, PATH_MAX);
  if (n <= 0 || !PathInsideRoots(std::string(real, static_cast<size_t>(n)), roots)) {
    ::close(fd);
    return Status::InvalidArgument(dir + " is not inside the allowed roots");
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
    int next = ::openat(fd, parts[i].c_str(), flags);
    const int err = errno;
    ::close(fd);
    if (next < 0) {
      if (err == ENOENT) return Status::NotFound("no file " + relative + " in " + dir);
      if (err == ELOOP || err == ENOTDIR) {
        return Status::InvalidArgument("refused: " + relative + " goes through a symlink");
      }
      return Status::IOError("cannot open " + relative + ": " + std::strerror(err));
    }
    fd = next;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("refused: " + relative + " is not a regular file");
  }
  // Reads block again (O_NONBLOCK only kept a FIFO from hanging the open).
  (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return std::make_shared<ConfinedFile>(fd, static_cast<uint64_t>(st.st_size));
}

std::string AttachmentFileName(std::string_view relative_path) {
  size_t slash = relative_path.rfind('/');
  if (slash != std::string_view::npos) relative_path.remove_prefix(slash + 1);
  std::string out;
  for (char c : relative_path) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  while (!out.empty() && out.front() == '.') out.erase(out.begin());
  if (out.size() > 128) out.erase(0, out.size() - 128);
  while (!out.empty() && out.front() == '.') out.erase(out.begin());
  return out.empty() ? "download" : out;
}

WebUi::WebUi(WebUiOptions options)
    : options_(std::move(options)),
      throttle_(std::make_unique<LoginThrottle>(options_.max_failed_logins,
                                                options_.failed_login_window, 10000)) {
  if (!options_.api_token.empty()) cookie_value_ = SessionCookieValue(options_.api_token);
  if (const WebAsset* index = FindAsset("index.html")) {
    index_html_ = AssetText(*index);
    const std::string off = "<body data-login=\"off\">";
    size_t at = index_html_.find(off);
    if (at != std::string::npos && !options_.api_token.empty()) {
      index_html_.replace(at, off.size(), "<body data-login=\"on\">");
    }
  }
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const std::string name = kWebAssets[i].name;
    etags_[name] =
        "\"" +
        Sha256Hex(name == "index.html" ? std::string_view(index_html_) : AssetText(kWebAssets[i]))
            .substr(0, 32) +
        "\"";
  }
}

bool WebUi::AuthorizeApi(const httplib::Request& req, httplib::Response& res) const {
  const WebAuth auth = Authenticate(options_.api_token, req.get_header_value("Authorization"),
                                    req.get_header_value("Cookie"));
  if (auth == WebAuth::kRefused) {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content("{\"error\": \"a valid bearer token is required\"}\n", "application/json");
    return false;
  }
  if (!PassesCsrfCheck(auth, req.method, req.get_header_value(kCsrfHeaderName),
                       req.get_header_value("Origin"), req.get_header_value("Host"))) {
    JsonError(res, 403,
              std::string("a request authenticated by the session cookie must send the header ") +
                  kCsrfHeaderName + ": 1 from this server's own pages");
    return false;
  }
  return true;
}

void WebUi::ServeAsset(const std::string& name, const httplib::Request& req,
                       httplib::Response& res) const {
  const WebAsset* asset = FindAsset(name);
  if (asset == nullptr) {
    res.status = 404;
    return;
  }
  SetSecurityHeaders(res);
  res.set_header("Cache-Control", "no-cache");
  const std::string& etag = etags_.at(name);
  res.set_header("ETag", etag);
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.status = 200;
  if (name == "index.html") return res.set_content(index_html_, ContentTypeOf(name));
  res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, ContentTypeOf(name));
}

void WebUi::ServeLogin(const httplib::Request&, httplib::Response& res, int status,
                       const std::string& error) const {
  const WebAsset* asset = FindAsset("login.html");
  std::string page = asset != nullptr ? std::string(AssetText(*asset)) : std::string();
  // The message is one of this file's fixed sentences, never request data.
  const std::string marker = "<!--login-error-->";
  size_t at = page.find(marker);
  if (at != std::string::npos && !error.empty()) {
    page.replace(at, marker.size(), "<p class=\"error\" role=\"alert\">" + error + "</p>");
  }
  SetSecurityHeaders(res);
  res.set_header("Cache-Control", "no-store");
  res.status = status;
  res.set_content(page, "text/html; charset=utf-8");
}

void WebUi::Login(const httplib::Request& req, httplib::Response& res) {
  if (options_.api_token.empty()) return res.set_redirect("/", 303);
  if (!SameOriginOrAbsent(req.get_header_value("Origin"), req.get_header_value("Host"))) {
    return ServeLogin(req, res, 403, "Log in from this server's own login page.");
  }
  const std::string address = RemoteAddress(req);
  const SteadyTime now = options_.clock->Now();
  if (!throttle_->Allowed(address, now)) {
    return ServeLogin(req, res, 429,
                      "Too many failed logins from this address: try again in a minute.");
  }
  std::string token = req.get_param_value("token");
  if (token.empty()) {
    httplib::Params form;
    httplib::detail::parse_query_text(req.body, form);
    auto it = form.find("token");
    if (it != form.end()) token = it->second;
  }
  // Compared as their session values: the same length whatever was typed.
  if (token.empty() || !ConstantTimeEquals(SessionCookieValue(token), cookie_value_)) {
    throttle_->Failed(address, now);
    return ServeLogin(req, res, 401, "That token is not the coordinator's.");
  }
  throttle_->Succeeded(address);
  res.set_header("Set-Cookie", std::string(kSessionCookieName) + "=" + cookie_value_ +
                                   "; Path=/; HttpOnly; SameSite=Strict");
  res.set_header("Cache-Control", "no-store");
  res.set_redirect("/", 303);
}

void WebUi::Download(const httplib::Request& req, httplib::Response& res) const {
  const std::string id = req.matches[1];
  const std::string deliverable = req.matches[2];
  auto detail = options_.show_delivery(id);
  if (!detail.ok()) return JsonError(res, 404, detail.status().message());
  auto relative = DownloadRelativePath(*detail, deliverable);
  if (!relative.ok()) return JsonError(res, 404, relative.status().message());
  const std::string output_dir = detail->value("output_dir", "");
  auto file = OpenConfinedFile(output_dir, *relative, options_.allowed_roots);
  if (!file.ok()) {
    const Status& s = file.status();
    const int code = s.code() == Status::Code::kNotFound          ? 404
                     : s.code() == Status::Code::kInvalidArgument ? 403
                                                                  : 500;
    return JsonError(res, code, s.message());
  }
  std::shared_ptr<ConfinedFile> f = *file;
  const std::string name = AttachmentFileName(*relative);
  res.status = 200;
  res.set_header("Content-Disposition", "attachment; filename=\"" + name + "\"");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Cache-Control", "no-store");
  // In pieces: a master is GBs.
  res.set_content_provider(static_cast<size_t>(f->size()), "application/octet-stream",
                           [f](size_t offset, size_t length, httplib::DataSink& sink) {
                             std::vector<char> buf(std::min(length, kDownloadChunk));
                             ssize_t n;
                             do {
                               n = ::pread(f->fd(), buf.data(), buf.size(),
                                           static_cast<off_t>(offset));
                             } while (n < 0 && errno == EINTR);
                             // Shorter than announced (truncated meanwhile):
                             // the connection is cut, not padded.
                             if (n <= 0) return false;
                             return sink.write(buf.data(), static_cast<size_t>(n));
                           });
}

void WebUi::Register(const std::shared_ptr<WebUi>& self, httplib::Server* server) {
  auto page = [self](const httplib::Request& req, httplib::Response& res) {
    if (!self->options_.api_token.empty() &&
        Authenticate(self->options_.api_token, req.get_header_value("Authorization"),
                     req.get_header_value("Cookie")) == WebAuth::kRefused) {
      res.set_header("Cache-Control", "no-store");
      return res.set_redirect("/login", 303);
    }
    self->ServeAsset("index.html", req, res);
  };
  server->Get("/", page);
  server->Get("/index.html", page);
  for (const char* asset : {"app.js", "app.css", "favicon.svg"}) {
    const std::string name = asset;
    server->Get("/" + name, [self, name](const httplib::Request& req, httplib::Response& res) {
      self->ServeAsset(name, req, res);
    });
  }
  server->Get("/login", [self](const httplib::Request& req, httplib::Response& res) {
    if (self->options_.api_token.empty()) return res.set_redirect("/", 303);
    self->ServeLogin(req, res, 200, "");
  });
  server->Post("/login", [self](const httplib::Request& req, httplib::Response& res) {
    self->Login(req, res);
  });
  server->Post("/logout", [self](const httplib::Request& req, httplib::Response& res) {
    if (!SameOriginOrAbsent(req.get_header_value("Origin"), req.get_header_value("Host"))) {
      return JsonError(res, 403, "log out from this server's own pages");
    }
    res.set_header("Set-Cookie", std::string(kSessionCookieName) +
                                     "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    res.set_header("Cache-Control", "no-store");
    res.set_redirect(self->options_.api_token.empty() ? "/" : "/login", 303);
  });
  server->Get(
      R"(/api/v1/deliveries/([^/]+)/files/([^/]+))",
      [self](const httplib::Request& req, httplib::Response& res) { self->Download(req, res); });
}

}  // namespace reelfarm
