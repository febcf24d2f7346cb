// ZeroMQ CURVE authentication: key files, the allow-list, and the ZAP
// handler that makes the coordinator refuse workers whose public key is not
// on the list. (CURVE without a ZAP handler encrypts but authenticates no
// one; this fails closed.)
#ifndef REELFARM_COMMON_CURVE_AUTH_H_
#define REELFARM_COMMON_CURVE_AUTH_H_

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "common/status.h"

namespace zmq {
class context_t;
}

namespace reelfarm {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// A fresh key pair (zmq_curve_keypair).
StatusOr<CurveKeyPair> GenerateCurveKeyPair();

// Writes PREFIX.key (the secret, mode 0600) and PREFIX.pub (the public key).
Status WriteCurveKeyFiles(const CurveKeyPair& pair, const std::string& prefix);

// Reads a secret key file and derives its public key.
StatusOr<CurveKeyPair> ReadCurveSecretFile(const std::string& path);

// A Z85 public key given inline (40 characters) or as a file holding one.
StatusOr<std::string> ReadCurvePublicKey(const std::string& key_or_file);

// An allow-list file: one Z85 public key a line; '#' comments and blank
// lines ignored. Empty or unreadable is an error (fail closed).
StatusOr<std::set<std::string>> ReadCurveAllowList(const std::string& path);

// Serves ZAP (RFC 27) on inproc://zeromq.zap.01 of `context` from a thread
// of its own: CURVE clients whose public key is allowed get 200, everyone
// else 400. Construct before binding the CURVE server socket.
class ZapAuthenticator {
 public:
  ZapAuthenticator(zmq::context_t* context, std::set<std::string> allowed_z85);
  ~ZapAuthenticator();  // stops the thread
  int refused() const { return refused_.load(); }

 private:
  void Serve();
  zmq::context_t* context_;
  std::set<std::string> allowed_;
  std::atomic<bool> stop_{false};
  std::atomic<int> refused_{0};
  std::atomic<bool> bound_{false};
  std::thread thread_;
};

}  // namespace reelfarm

#endif  // REELFARM_COMMON_CURVE_AUTH_H_
