// Issue 12: a spec's size is bounded whichever way it arrives (a file, or
// the text of an API request).
#include <gtest/gtest.h>

#include "common/spec.h"

namespace reelfarm {
namespace {

TEST(SpecLimits, SpecTextOverFourMiBIsRefusedBeforeParsing) {
  std::string text = "version: 1\nname: big\n# " + std::string(4 << 20, 'x') + "\n";
  SpecParseResult r = ParseSpecText(text, "big.yaml", "/tmp");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("the spec is too large"), std::string::npos)
      << r.errors[0].message;
  EXPECT_FALSE(r.spec.has_value());
}

}  // namespace
}  // namespace reelfarm
