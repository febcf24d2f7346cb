#include "common/webhooks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <ctime>

#include "common/secure.h"

namespace reelfarm {

namespace {

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool InV4(const unsigned char* a, uint8_t b0, uint8_t b1, int prefix) {
  uint32_t addr = (uint32_t{a[0]} << 24) | (uint32_t{a[1]} << 16) | (uint32_t{a[2]} << 8) | a[3];
  uint32_t net = (uint32_t{b0} << 24) | (uint32_t{b1} << 16);
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (addr & mask) == (net & mask);
}

std::string V4Reason(const unsigned char* a) {
  if (a[0] == 0) return "is in 0.0.0.0/8 (this network, unspecified)";
  if (a[0] == 127) return "is loopback (127.0.0.0/8)";
  if (a[0] == 10) return "is private (10.0.0.0/8)";
  if (InV4(a, 172, 16, 12)) return "is private (172.16.0.0/12)";
  if (InV4(a, 192, 168, 16)) return "is private (192.168.0.0/16)";
  if (InV4(a, 169, 254, 16)) {
    return "is link-local (169.254.0.0/16, where cloud metadata services such as "
           "169.254.169.254 live)";
  }
  if (InV4(a, 100, 64, 10)) return "is shared address space (100.64.0.0/10)";
  if (a[0] == 192 && a[1] == 0 && a[2] == 0) return "is IETF protocol space (192.0.0.0/24)";
  if (InV4(a, 198, 18, 15)) return "is benchmarking space (198.18.0.0/15)";
  if (a[0] >= 224 && a[0] <= 239) return "is multicast (224.0.0.0/4)";
  if (a[0] >= 240) return "is reserved or broadcast (240.0.0.0/4)";
  return "";
}

std::string V6Reason(const unsigned char* a) {
  static const unsigned char kZero[16] = {};
  if (std::memcmp(a, kZero, 16) == 0) return "is the unspecified address (::)";
  if (std::memcmp(a, kZero, 15) == 0 && a[15] == 1) return "is loopback (::1)";
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address.
  if (std::memcmp(a, kZero, 10) == 0 && a[10] == 0xff && a[11] == 0xff) {
    std::string why = V4Reason(a + 12);
    return why.empty() ? "" : "maps an IPv4 address that " + why;
  }
  if (std::memcmp(a, kZero, 12) == 0) {
    std::string why = V4Reason(a + 12);
    return why.empty() ? "" : "is IPv4-compatible with an address that " + why;
  }
  // 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) reach an IPv4 address.
  static const unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(a, kNat64, 12) == 0) {
    std::string why = V4Reason(a + 12);
    return why.empty() ? "" : "is NAT64 of an IPv4 address that " + why;
  }
  if (a[0] == 0x20 && a[1] == 0x02) {
    std::string why = V4Reason(a + 2);
    return why.empty() ? "" : "is 6to4 of an IPv4 address that " + why;
  }
  if ((a[0] & 0xfe) == 0xfc) {
    return "is unique-local (fc00::/7, where cloud metadata services such as fd00:ec2::254 live)";
  }
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return "is link-local (fe80::/10)";
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return "is site-local (fec0::/10)";
  if (a[0] == 0xff) return "is multicast (ff00::/8)";
  if (a[0] == 0x01 && std::memcmp(a + 1, kZero, 7) == 0) return "is discard-only (100::/64)";
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) {
    return "is documentation space (2001:db8::/32)";
  }
  return "";
}

bool PrefixMatch(const unsigned char* a, const unsigned char* net, int prefix) {
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a, net, full) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a[full] & mask) == (net[full] & mask);
}

bool ValidHostName(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    char c = h[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return true;
}

}  // namespace

const std::vector<std::string>& WebhookEventTypes() {
  static const std::vector<std::string> kTypes = {kEventDeliveryAccepted,
                                                  kEventDeliverablePublished,
                                                  kEventDeliverableFailed, kEventDeliveryFinished};
  return kTypes;
}

bool IsWebhookEventType(const std::string& type) {
  const auto& t = WebhookEventTypes();
  return std::find(t.begin(), t.end(), type) != t.end();
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (i + 1 < bytes.size()) v |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return Status::InvalidArgument("not base64: wrong length");
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = B64Value(c);
    if (v < 0) return Status::InvalidArgument("not base64: unexpected character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

StatusOr<std::string> ParseWebhookSecret(std::string_view text) {
  std::string s = Trim(text);
  if (s.rfind("whsec_", 0) == 0) s.erase(0, 6);
  if (s.empty())
    return Status::InvalidArgument("the webhook secret is empty; write whsec_<base64>");
  auto key = Base64Decode(s);
  if (!key.ok()) {
    return Status::InvalidArgument("the webhook secret is not whsec_<base64> (" +
                                   key.status().message() + ")");
  }
  if (key->size() < kMinWebhookSecretBytes || key->size() > kMaxWebhookSecretBytes) {
    return Status::InvalidArgument("the webhook secret decodes to " + std::to_string(key->size()) +
                                   " bytes; use 24 to 64 random bytes (e.g. `echo whsec_$(head "
                                   "-c 32 /dev/urandom | base64)`)");
  }
  return key;
}

std::string SignWebhook(std::string_view key, std::string_view msg_id, int64_t timestamp_s,
                        std::string_view body) {
  std::string content;
  content.reserve(msg_id.size() + body.size() + 24);
  content.append(msg_id);
  content += '.';
  content += std::to_string(timestamp_s);
  content += '.';
  content.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &len);
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

Status VerifyWebhook(std::string_view key, std::string_view msg_id, std::string_view timestamp,
                     std::string_view signature_header, std::string_view body, int64_t now_s,
                     std::chrono::seconds tolerance) {
  if (msg_id.empty() || timestamp.empty() || signature_header.empty()) {
    return Status::InvalidArgument("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (timestamp.size() > 18 || !std::all_of(timestamp.begin(), timestamp.end(),
                                            [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument("webhook-timestamp is not unix seconds");
  }
  const int64_t ts = std::stoll(std::string(timestamp));
  if (std::llabs(now_s - ts) > tolerance.count()) {
    return Status::FailedPrecondition("webhook-timestamp is outside the tolerance");
  }
  const std::string expected = SignWebhook(key, msg_id, ts, body);
  size_t pos = 0;
  while (pos <= signature_header.size()) {
    size_t end = signature_header.find(' ', pos);
    if (end == std::string_view::npos) end = signature_header.size();
    std::string_view sig = signature_header.substr(pos, end - pos);
    if (sig.rfind("v1,", 0) == 0 && ConstantTimeEquals(sig, expected)) return Status::OK();
    pos = end + 1;
  }
  return Status::FailedPrecondition("no matching v1 signature");
}

std::string Iso8601Millis(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string WebhookMessageId(std::string_view event_key) {
  return "msg_" + Sha256Hex(event_key).substr(0, 32);
}

std::string BuildWebhookBody(const std::string& type, int64_t unix_ms, const nlohmann::json& data) {
  nlohmann::json body = {{"type", type}, {"timestamp", Iso8601Millis(unix_ms)}, {"data", data}};
  // Invalid UTF-8 (a file name, an FFmpeg message) is replaced, not thrown.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void WebhookRetryOptions::Sanitize() {
  WebhookRetryOptions d;
  if (attempts < 1 || attempts > 1000) attempts = d.attempts;
  if (first_backoff.count() < 1) first_backoff = d.first_backoff;
  if (!(factor >= 1 && factor <= 100)) factor = d.factor;
  if (max_backoff < first_backoff) max_backoff = first_backoff;
  if (!(jitter >= 0 && jitter < 1)) jitter = d.jitter;
}

std::chrono::milliseconds WebhookBackoff(const WebhookRetryOptions& options, int failures,
                                         double unit_random) {
  double wait = static_cast<double>(options.first_backoff.count());
  const double cap = static_cast<double>(options.max_backoff.count());
  for (int i = 1; i < failures && wait < cap; ++i) wait *= options.factor;
  wait = std::min(wait, cap);
  unit_random = std::clamp(unit_random, 0.0, 1.0);
  wait *= 1 - options.jitter + 2 * options.jitter * unit_random;
  return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(wait)));
}

std::string WebhookUrl::Origin() const {
  return scheme + "://" + (host_is_ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

StatusOr<WebhookUrl> ParseWebhookUrl(const std::string& url) {
  if (url.size() > kMaxWebhookUrlBytes) {
    return Status::InvalidArgument("the URL is longer than " + std::to_string(kMaxWebhookUrlBytes) +
                                   " bytes");
  }
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f) {
      return Status::InvalidArgument(
          "the URL contains a space, control or non-ASCII character; percent-encode it");
    }
  }
  WebhookUrl out;
  size_t colon = url.find("://");
  if (colon == std::string::npos) {
    return Status::InvalidArgument("not an absolute URL; write http://HOST/PATH or https://...");
  }
  out.scheme = Lower(url.substr(0, colon));
  if (out.scheme != "http" && out.scheme != "https") {
    return Status::InvalidArgument("scheme `" + out.scheme + "` is not allowed; use http or https");
  }
  std::string rest = url.substr(colon + 3);
  if (rest.find('#') != std::string::npos) {
    return Status::InvalidArgument("a webhook URL has no fragment (#...)");
  }
  size_t end = rest.find_first_of("/?");
  std::string authority = rest.substr(0, end);
  out.target = end == std::string::npos ? "/" : rest.substr(end);
  if (out.target[0] == '?') out.target = "/" + out.target;
  if (authority.find('@') != std::string::npos) {
    return Status::InvalidArgument("user info (user:password@) is not allowed in a webhook URL");
  }
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return Status::InvalidArgument("unclosed [ in the host");
    out.host = Lower(authority.substr(1, close - 1));
    out.host_is_ipv6 = true;
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Status::InvalidArgument("unexpected text after ]");
      port_text = after.substr(1);
    }
    in6_addr a6{};
    if (inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) {
      return Status::InvalidArgument("`" + out.host + "` is not an IPv6 address");
    }
  } else {
    size_t pc = authority.rfind(':');
    out.host = Lower(authority.substr(0, pc));
    if (pc != std::string::npos) port_text = authority.substr(pc + 1);
    if (!ValidHostName(out.host)) {
      return Status::InvalidArgument("the host is missing or not a valid host name");
    }
  }
  if (port_text.empty()) {
    if (authority.back() == ':') return Status::InvalidArgument("empty port");
    out.port = out.scheme == "https" ? 443 : 80;
  } else {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::InvalidArgument("the port is not a number");
    }
    out.port = std::stoi(port_text);
    if (out.port < 1 || out.port > 65535) {
      return Status::InvalidArgument("the port is out of range (1-65535)");
    }
  }
  return out;
}

bool ParseIpLiteral(const std::string& host, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    return true;
  }
  return false;
}

Status WebhookAllowList::Add(const std::string& entry) {
  std::string e = Lower(Trim(entry));
  if (e.empty()) return Status::InvalidArgument("empty webhook allow-list entry");
  std::string addr = e;
  int prefix = -1;
  size_t slash = e.find('/');
  if (slash != std::string::npos) {
    addr = e.substr(0, slash);
    std::string p = e.substr(slash + 1);
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::InvalidArgument("`" + entry + "`: the prefix length is not a number");
    }
    prefix = std::stoi(p);
  }
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') {
    addr = addr.substr(1, addr.size() - 2);
  }
  Net net;
  if (inet_pton(AF_INET, addr.c_str(), net.addr) == 1) {
    net.family = AF_INET;
    net.prefix = prefix < 0 ? 32 : prefix;
    if (net.prefix > 32) return Status::InvalidArgument("`" + entry + "`: an IPv4 prefix is 0-32");
  } else if (inet_pton(AF_INET6, addr.c_str(), net.addr) == 1) {
    net.family = AF_INET6;
    net.prefix = prefix < 0 ? 128 : prefix;
    if (net.prefix > 128) {
      return Status::InvalidArgument("`" + entry + "`: an IPv6 prefix is 0-128");
    }
  } else {
    if (prefix >= 0 || !ValidHostName(e)) {
      return Status::InvalidArgument("`" + entry + "` is neither an address, a CIDR nor a host");
    }
    hosts.push_back(e);
    return Status::OK();
  }
  nets.push_back(net);
  return Status::OK();
}

bool WebhookAllowList::HostAllowed(const std::string& host) const {
  return std::find(hosts.begin(), hosts.end(), Lower(host)) != hosts.end();
}

bool WebhookAllowList::AddressAllowed(const sockaddr* sa) const {
  const unsigned char* a = nullptr;
  int family = sa->sa_family;
  unsigned char mapped[4];
  if (family == AF_INET) {
    a = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  } else if (family == AF_INET6) {
    a = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
  } else {
    return false;
  }
  for (const Net& n : nets) {
    if (n.family == family && PrefixMatch(a, n.addr, n.prefix)) return true;
    // ::ffff:a.b.c.d is a.b.c.d: an IPv4 entry covers it.
    if (family == AF_INET6 && n.family == AF_INET) {
      static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(a, kMappedPrefix, 12) == 0) {
        std::memcpy(mapped, a + 12, 4);
        if (PrefixMatch(mapped, n.addr, n.prefix)) return true;
      }
    }
  }
  return false;
}

std::string NonPublicAddressReason(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    return V4Reason(reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr));
  }
  if (sa->sa_family == AF_INET6) {
    return V6Reason(reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr));
  }
  return "is not an IPv4 or IPv6 address";
}

std::string AddressString(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

std::string WebhookAddressProblem(const std::string& host, const sockaddr* sa,
                                  const WebhookAllowList& allow) {
  std::string why = NonPublicAddressReason(sa);
  if (why.empty() || allow.AddressAllowed(sa) || allow.HostAllowed(host)) return "";
  return "address " + AddressString(sa) + " of `" + host + "` " + why +
         "; webhooks go to public addresses only unless the coordinator's --webhook-allow "
         "names it";
}

}  // namespace reelfarm
