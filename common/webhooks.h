// Signed webhooks, the Standard Webhooks way (docs/webhooks.md): secrets,
// signatures, payloads, the retry schedule and the policy on where they may
// be sent. Pure: no I/O (the addresses checked are given, not resolved).
//
// A message is POSTed with
//   webhook-id: msg_<hex>         the same on every retry of the message
//   webhook-timestamp: <unix s>   of this attempt
//   webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
// keyed with the bytes of a secret written `whsec_<base64>`.
#ifndef REELFARM_COMMON_WEBHOOKS_H_
#define REELFARM_COMMON_WEBHOOKS_H_

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace reelfarm {

inline constexpr char kEventDeliveryAccepted[] = "delivery.accepted";
inline constexpr char kEventDeliverablePublished[] = "deliverable.published";
inline constexpr char kEventDeliverableFailed[] = "deliverable.failed";
inline constexpr char kEventDeliveryFinished[] = "delivery.finished";
// The four above, in the order a delivery emits them.
const std::vector<std::string>& WebhookEventTypes();
bool IsWebhookEventType(const std::string& type);

// ---- secrets and signatures --------------------------------------------------

// Standard base64 with padding.
std::string Base64Encode(std::string_view bytes);
// Standard base64; padding optional, whitespace refused. InvalidArgument
// when it is not base64.
StatusOr<std::string> Base64Decode(std::string_view text);

inline constexpr size_t kMinWebhookSecretBytes = 24;
inline constexpr size_t kMaxWebhookSecretBytes = 64;
inline constexpr size_t kMaxWebhookSecretFileBytes = 4096;
// The key of a secret as written in a secret file: `whsec_<base64>` (the
// prefix may be left out), surrounding whitespace ignored, 24 to 64 bytes
// once decoded. InvalidArgument saying what is wrong (never the secret).
StatusOr<std::string> ParseWebhookSecret(std::string_view text);

// "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>".
std::string SignWebhook(std::string_view key, std::string_view msg_id, int64_t timestamp_s,
                        std::string_view body);

// Checks a received message as a receiver would: the signature header (a
// space-separated list; one matching v1 signature suffices, compared in
// constant time) and the timestamp within `tolerance` of `now_s`.
// InvalidArgument (malformed headers) or FailedPrecondition (no signature
// matches; too old or too new).
Status VerifyWebhook(std::string_view key, std::string_view msg_id, std::string_view timestamp,
                     std::string_view signature_header, std::string_view body, int64_t now_s,
                     std::chrono::seconds tolerance = std::chrono::minutes(5));

// ---- messages -------------------------------------------------------------------

// "2026-11-30T17:22:13.123Z".
std::string Iso8601Millis(int64_t unix_ms);
// `msg_` and 32 hex digits of SHA-256 of `event_key`: a message's id,
// derived from what it reports (the same event always gets the same id;
// never a '.', which the signed content uses as its separator).
std::string WebhookMessageId(std::string_view event_key);
// {"type": type, "timestamp": ISO-8601 of unix_ms, "data": data}, compact.
std::string BuildWebhookBody(const std::string& type, int64_t unix_ms, const nlohmann::json& data);

// ---- retries --------------------------------------------------------------------

struct WebhookRetryOptions {
  int attempts = 10;  // attempts per message before it is a dead letter
  std::chrono::milliseconds first_backoff{5000};
  double factor = 2;
  std::chrono::milliseconds max_backoff{std::chrono::minutes(15)};
  double jitter = 0.2;  // each wait is drawn from backoff x [1 - jitter, 1 + jitter]
  // REQUIRES: called once before use; clamps nonsense to defaults.
  void Sanitize();
};
// The wait after the `failures`-th failed attempt (1, 2, ...):
// first_backoff x factor^(failures-1), capped at max_backoff, then spread by
// jitter with `unit_random` in [0, 1) (injected: tests pass fixed values).
std::chrono::milliseconds WebhookBackoff(const WebhookRetryOptions& options, int failures,
                                         double unit_random);

// ---- where webhooks may go --------------------------------------------------------

struct WebhookUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower-case; an IPv6 literal without brackets
  int port = 0;        // explicit or the scheme's
  std::string target;  // path and query, "/" at least
  bool host_is_ipv6 = false;
  // "https://host:port" (brackets around IPv6), for httplib::Client.
  std::string Origin() const;
};
inline constexpr size_t kMaxWebhookUrlBytes = 2048;
// An absolute http or https URL without user info or fragment; the host a
// DNS name or an IP literal. InvalidArgument saying what is wrong.
StatusOr<WebhookUrl> ParseWebhookUrl(const std::string& url);

// Destinations allowed although their addresses are not public.
struct WebhookAllowList {
  struct Net {
    int family = AF_INET;  // AF_INET or AF_INET6
    unsigned char addr[16] = {};
    int prefix = 0;
  };
  std::vector<Net> nets;           // CIDR entries: addresses inside may be used
  std::vector<std::string> hosts;  // host names (lower-case) whose addresses may be anything
  // Adds "CIDR", "ADDRESS" (a /32 or /128) or "HOST". InvalidArgument.
  Status Add(const std::string& entry);
  bool HostAllowed(const std::string& host) const;
  bool AddressAllowed(const sockaddr* sa) const;
};

// Why an address may not receive webhooks unless allowed: loopback,
// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16,
// fe80::/10; cloud metadata lives there and at fd00:ec2::254), CGNAT
// (100.64/10), unspecified, multicast, reserved, benchmarking; IPv6 forms
// carrying an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by
// it. "" for a public address.
std::string NonPublicAddressReason(const sockaddr* sa);
// "" when `sa` may receive a webhook for `host` under `allow`, else why not.
std::string WebhookAddressProblem(const std::string& host, const sockaddr* sa,
                                  const WebhookAllowList& allow);
// The numeric form of an address ("10.0.0.1", "::1").
std::string AddressString(const sockaddr* sa);
// When `host` is an IP literal: the address (true). False for a DNS name.
bool ParseIpLiteral(const std::string& host, sockaddr_storage* out);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_WEBHOOKS_H_
