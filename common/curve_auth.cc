#include "common/curve_auth.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <zmq.h>

#include <fstream>
#include <sstream>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace reelfarm {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool IsZ85Key(const std::string& k) {
  uint8_t raw[32];
  return k.size() == 40 && zmq_z85_decode(raw, k.c_str()) != nullptr;
}

StatusOr<std::string> ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read " + path);
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (!line.empty() && line[0] != '#') return line;
  }
  return Status::InvalidArgument(path + " holds no key");
}

}  // namespace

StatusOr<CurveKeyPair> GenerateCurveKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Status::Unavailable("this libzmq has no CURVE support");
  }
  return CurveKeyPair{pub, sec};
}

Status WriteCurveKeyFiles(const CurveKeyPair& pair, const std::string& prefix) {
  {
    std::ofstream sec(prefix + ".key");
    if (!sec) return Status::IOError("cannot write " + prefix + ".key");
    sec << "# reelfarm CURVE secret key: keep it private\n" << pair.secret_key << "\n";
  }
  chmod((prefix + ".key").c_str(), 0600);
  std::ofstream pub(prefix + ".pub");
  if (!pub) return Status::IOError("cannot write " + prefix + ".pub");
  pub << pair.public_key << "\n";
  return Status::OK();
}

StatusOr<CurveKeyPair> ReadCurveSecretFile(const std::string& path) {
  auto secret = ReadFirstLine(path);
  if (!secret.ok()) return secret.status();
  if (!IsZ85Key(*secret)) return Status::InvalidArgument(path + " is not a Z85 CURVE key");
  char pub[41];
  if (zmq_curve_public(pub, secret->c_str()) != 0) {
    return Status::InvalidArgument("cannot derive a public key from " + path);
  }
  return CurveKeyPair{pub, *secret};
}

StatusOr<std::string> ReadCurvePublicKey(const std::string& key_or_file) {
  if (IsZ85Key(key_or_file)) return key_or_file;
  auto key = ReadFirstLine(key_or_file);
  if (!key.ok()) return key.status();
  if (!IsZ85Key(*key)) return Status::InvalidArgument(key_or_file + " is not a Z85 CURVE key");
  return *key;
}

StatusOr<std::set<std::string>> ReadCurveAllowList(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read the CURVE allow-list " + path);
  std::set<std::string> keys;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (!IsZ85Key(line)) {
      return Status::InvalidArgument(path + ":" + std::to_string(n) + ": not a Z85 public key");
    }
    keys.insert(line);
  }
  if (keys.empty()) return Status::InvalidArgument(path + " allows no key");
  return keys;
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t* context, std::set<std::string> allowed_z85)
    : context_(context), allowed_(std::move(allowed_z85)) {
  thread_ = std::thread([this] { Serve(); });
  while (!bound_.load()) std::this_thread::yield();  // bound before any CURVE socket
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapAuthenticator::Serve() {
  zmq::socket_t sock(*context_, zmq::socket_type::rep);
  sock.set(zmq::sockopt::linger, 0);
  sock.bind("inproc://zeromq.zap.01");
  bound_.store(true);
  while (!stop_.load()) {
    zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(sock, std::back_inserter(req))) continue;
    // version, request id, domain, address, identity, mechanism, credentials
    std::string version = req.size() > 0 ? req[0].to_string() : "";
    std::string request_id = req.size() > 1 ? req[1].to_string() : "";
    std::string address = req.size() > 3 ? req[3].to_string() : "";
    std::string mechanism = req.size() > 5 ? req[5].to_string() : "";
    bool ok = false;
    std::string user;
    if (version == "1.0" && mechanism == "CURVE" && req.size() > 6 && req[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, static_cast<const uint8_t*>(req[6].data()), 32);
      user = z85;
      ok = allowed_.count(user) > 0;
    }
    if (!ok) {
      ++refused_;
      spdlog::warn("refused a worker connection from {} ({} key {})", address, mechanism,
                   user.empty() ? "none" : user);
    }
    const std::string kVersion = "1.0", code = ok ? "200" : "400",
                      text = ok ? "OK" : "key not allowed", metadata;
    std::vector<zmq::const_buffer> reply = {zmq::buffer(kVersion), zmq::buffer(request_id),
                                            zmq::buffer(code),     zmq::buffer(text),
                                            zmq::buffer(user),     zmq::buffer(metadata)};
    zmq::send_multipart(sock, reply);
  }
}

}  // namespace reelfarm
