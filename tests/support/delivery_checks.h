// Checks and sources shared by the end-to-end tests.
#ifndef REELFARM_TESTS_SUPPORT_DELIVERY_CHECKS_H_
#define REELFARM_TESTS_SUPPORT_DELIVERY_CHECKS_H_

#include <nlohmann/json.hpp>
#include <string>

namespace reelfarm::testing {

// `dir`/source.mov: testsrc2 at `size` ("1280x720"), 25 fps, `seconds` long,
// with a sine tone; big enough that a kill can land mid-encode.
std::string MakeTestSource(const std::string& dir, const std::string& size, int seconds);

// A delivery JSON (GET /api/v1/deliveries/ID) in a terminal state.
bool IsFinished(const nlohmann::json& delivery);

// In `out`: exactly one file per delivered item plus manifest.json (and the
// manifests/ of its versions), no
// temporary files, and each delivered file's SHA-256 and size as the
// manifest says.
void ExpectPublishedExactlyOnce(const std::string& out, const nlohmann::json& delivery);

}  // namespace reelfarm::testing

#endif  // REELFARM_TESTS_SUPPORT_DELIVERY_CHECKS_H_
