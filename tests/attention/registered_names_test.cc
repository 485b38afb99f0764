// Linked statically (linkstatic = 1): proves the implementations' static
// registrations survive static linking (their libraries set alwayslink).

#include <string>
#include <vector>

#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace {

using ::testing::Contains;

TEST(RegisteredNames, CoreImplementationsArePresent) {
  const std::vector<std::string> names = RegisteredAttentionNames();
  EXPECT_THAT(names, Contains("standard"));
  EXPECT_THAT(names, Contains("auto"));
  EXPECT_THAT(names, Contains("block_sparse"));
  EXPECT_THAT(names, Contains("longnet"));
}

TEST(RegisteredNames, DilatedNamesLeaveOutTheOtherFunctions) {
  const std::vector<std::string> names = DilatedAttentionNames();
  EXPECT_THAT(names, Contains("improved"));
  EXPECT_THAT(names, ::testing::Not(Contains("block_sparse")));
  EXPECT_THAT(names, ::testing::Not(Contains("longnet")));
}

TEST(RegisteredNames, EveryNameCreates) {
  for (const std::string& name : RegisteredAttentionNames()) {
    absl::StatusOr<std::unique_ptr<Attention>> attention =
        CreateAttention(name, AttentionConfig());
    ASSERT_TRUE(attention.ok()) << name << ": " << attention.status();
    EXPECT_EQ((*attention)->name(), name);
  }
}

}  // namespace
}  // namespace dilated
