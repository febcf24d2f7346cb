// Small cryptographic helpers (OpenSSL): comparisons that take the same time
// whatever the inputs hold, and random bytes from the system's CSPRNG.
#ifndef REELFARM_COMMON_SECURE_H_
#define REELFARM_COMMON_SECURE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace reelfarm {

// Whether a and b are equal, in a time that depends on their lengths only
// (CRYPTO_memcmp). Different lengths are unequal.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` bytes from OpenSSL's CSPRNG (RAND_bytes), or getrandom(2) should that
// fail. Aborts when neither can give them: a predictable secret is worse
// than no coordinator.
std::string SecureRandomBytes(size_t n);

// Lower-case hex of arbitrary bytes (routing ids and keys in logs and Redis,
// digests).
std::string HexBytes(std::string_view bytes);
// The bytes of a hex string; "" when it is not hex.
std::string UnhexBytes(std::string_view hex);

// SHA-256 of bytes as lowercase hex.
std::string Sha256Hex(std::string_view data);
// SHA-256 of a file as lowercase hex (streamed: any size).
StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_SECURE_H_
