#include "cli/api_client.h"

#include <httplib.h>

#include <regex>
#include <utility>

namespace reelfarm::cli {

std::string CoordinatorUrl::SchemeHostPort() const {
  return scheme + "://" + host + ":" + std::to_string(port);
}

StatusOr<CoordinatorUrl> ParseCoordinatorUrl(const std::string& url) {
  // scheme? host (name, IPv4 or [IPv6]) port? path?
  static const std::regex kUrl(
      R"(^(?:([A-Za-z][A-Za-z0-9+.-]*)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?(/[^?#]*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    return Status::InvalidArgument("coordinator URL '" + url +
                                   "' is not of the form http://HOST[:PORT][/PATH]");
  }
  CoordinatorUrl out;
  out.scheme = m[1].matched ? m[1].str() : "http";
  for (char& c : out.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out.scheme != "http" && out.scheme != "https") {
    return Status::InvalidArgument("coordinator URL '" + url + "' has scheme '" + out.scheme +
                                   "'; only http and https are allowed");
  }
  out.host = m[2].str();
  if (m[3].matched) {
    out.port = std::stoi(m[3].str());
    if (out.port < 1 || out.port > 65535) {
      return Status::InvalidArgument("coordinator URL '" + url + "' has port " + m[3].str() +
                                     "; ports are 1..65535");
    }
  } else {
    out.port = out.scheme == "https" ? 443 : 80;
  }
  out.prefix = m[4].matched ? m[4].str() : "";
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  return out;
}

std::string ApiResponse::ErrorMessage() const {
  if (json.is_object() && json.contains("error") && json["error"].is_string()) {
    return json["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

ApiClient::ApiClient(CoordinatorUrl url)
    : url_(std::move(url)), client_(std::make_unique<httplib::Client>(url_.SchemeHostPort())) {
  client_->set_connection_timeout(3, 0);
  client_->set_read_timeout(30, 0);
  client_->set_write_timeout(30, 0);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);  // no delayed-ACK wait between headers and body
}

ApiClient::~ApiClient() = default;

std::string ApiClient::url() const { return url_.SchemeHostPort() + url_.prefix; }

void ApiClient::set_read_timeout_s(int seconds) { client_->set_read_timeout(seconds, 0); }

void ApiClient::Disconnect() { client_->stop(); }

void ApiClient::set_bearer_token(const std::string& token) {
  client_->set_bearer_token_auth(token.c_str());
}

namespace {

StatusOr<ApiResponse> ToResponse(const httplib::Result& result, const std::string& what) {
  if (!result) {
    return Status::Unavailable(what + ": " + httplib::to_string(result.error()));
  }
  ApiResponse out;
  out.status = result->status;
  out.body = result->body;
  out.json = nlohmann::json::parse(out.body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}

}  // namespace

StatusOr<ApiResponse> ApiClient::Get(const std::string& path) {
  httplib::Result result = client_->Get((url_.prefix + path).c_str());
  return ToResponse(result, "cannot reach the coordinator at " + url() + " (GET " + path + ")");
}

StatusOr<ApiResponse> ApiClient::Post(const std::string& path, const nlohmann::json& body) {
  httplib::Result result =
      client_->Post((url_.prefix + path).c_str(), body.dump(), "application/json");
  return ToResponse(result, "cannot reach the coordinator at " + url() + " (POST " + path + ")");
}

nlohmann::json SubmitRequestBody(const std::string& spec_text, const std::string& spec_file,
                                 const std::string& base_dir,
                                 const std::vector<WebhookArg>& webhooks) {
  nlohmann::json body = {{"spec", spec_text}, {"spec_file", spec_file}, {"base_dir", base_dir}};
  if (!webhooks.empty()) {
    body["webhooks"] = nlohmann::json::array();
    for (const auto& w : webhooks) {
      body["webhooks"].push_back({{"url", w.url}, {"secret_file", w.secret_file}});
    }
  }
  return body;
}

std::string DeliveryPath(const std::string& id) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return "/api/v1/deliveries/" + encoded;
}

}  // namespace reelfarm::cli
