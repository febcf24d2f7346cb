// A small client for the coordinator's HTTP/JSON API (docs/api.md).
#ifndef REELFARM_CLI_API_CLIENT_H_
#define REELFARM_CLI_API_CLIENT_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace httplib {
class Client;
}

namespace reelfarm::cli {

// The default when neither --coordinator nor REELFARM_COORDINATOR is given.
inline constexpr const char* kDefaultCoordinatorUrl = "http://127.0.0.1:8470";

// A coordinator address split for httplib: "http://host:port" plus an
// optional path prefix ("/farm" in "http://host:8470/farm/").
struct CoordinatorUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // a name, an IPv4 address, or "[v6]"
  int port = 0;        // the scheme's default when the URL has none
  std::string prefix;  // "" or "/path" without a trailing slash
  std::string SchemeHostPort() const;
};

// Accepts "http://host[:port][/prefix]", "https://..." and a bare
// "host[:port]" (read as http). InvalidArgument says what is wrong.
StatusOr<CoordinatorUrl> ParseCoordinatorUrl(const std::string& url);

// The answer to one request: the HTTP status and the body. `json` is null
// when the body is not JSON.
struct ApiResponse {
  int status = 0;
  std::string body;
  nlohmann::json json;
  // The API's `{"error": ...}` sentence, or a generic "HTTP <status>" line.
  std::string ErrorMessage() const;
};

// Not thread-safe; one client per thread.
class ApiClient {
 public:
  explicit ApiClient(CoordinatorUrl url);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // The URL as given, for messages.
  std::string url() const;

  // `path` starts with "/" and is appended to the URL's prefix. A non-OK
  // Status (Unavailable) means no HTTP answer came back at all: the
  // coordinator could not be reached. Any HTTP status is an OK result.
  StatusOr<ApiResponse> Get(const std::string& path);
  StatusOr<ApiResponse> Post(const std::string& path, const nlohmann::json& body);

  // Seconds to wait for an answer; submit waits for the coordinator to probe
  // and plan the source.
  void set_read_timeout_s(int seconds);
  // Closes the kept-alive connection now (a server that is stopping waits
  // for its open connections; the next request opens a new one).
  void Disconnect();
  // Sent as "Authorization: Bearer TOKEN" with every request.
  void set_bearer_token(const std::string& token);

 private:
  CoordinatorUrl url_;
  std::unique_ptr<httplib::Client> client_;
};

// A webhook given on the command line (`--webhook URL`), besides the spec's.
struct WebhookArg {
  std::string url;
  std::string secret_file;  // absolute
};

// The request body of POST /api/v1/deliveries for a spec file: `base_dir`
// is the absolute folder of `spec_file`, `spec_file` stays as typed.
nlohmann::json SubmitRequestBody(const std::string& spec_text, const std::string& spec_file,
                                 const std::string& base_dir,
                                 const std::vector<WebhookArg>& webhooks = {});

// "/api/v1/deliveries/<id>" with the id percent-encoded.
std::string DeliveryPath(const std::string& id);

}  // namespace reelfarm::cli

#endif  // REELFARM_CLI_API_CLIENT_H_
