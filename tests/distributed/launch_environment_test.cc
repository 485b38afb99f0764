// Rank and size from the environment, and the published file that carries
// NCCL's unique id.

#include "distributed/internal/launch_environment.h"

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace distributed {
namespace internal {
namespace {

using ::testing::HasSubstr;

class LaunchEnvironmentTest : public ::testing::Test {
 protected:
  void SetUp() override { Clear(); }
  void TearDown() override { Clear(); }
  static void Clear() {
    for (const char* name : {"DA_RANK", "DA_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                             "OMPI_COMM_WORLD_SIZE"}) {
      unsetenv(name);
    }
  }
};

TEST_F(LaunchEnvironmentTest, NothingSetIsFailedPrecondition) {
  EXPECT_EQ(RankFromEnvironment().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LaunchEnvironmentTest, OwnVariablesWinOverOpenMpi) {
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  absl::StatusOr<LaunchRank> launch = RankFromEnvironment();
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_EQ(launch->rank, 1);
  EXPECT_EQ(launch->size, 2);

  setenv("DA_RANK", "3", 1);
  setenv("DA_WORLD_SIZE", "8", 1);
  launch = RankFromEnvironment();
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_EQ(launch->rank, 3);
  EXPECT_EQ(launch->size, 8);
}

TEST_F(LaunchEnvironmentTest, BadValuesNameTheVariable) {
  setenv("DA_RANK", "x", 1);
  setenv("DA_WORLD_SIZE", "2", 1);
  absl::Status status = RankFromEnvironment().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("DA_RANK='x'"));

  setenv("DA_RANK", "2", 1);
  status = RankFromEnvironment().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("DA_RANK=2"));

  setenv("DA_RANK", "0", 1);
  setenv("DA_WORLD_SIZE", "0", 1);
  status = RankFromEnvironment().status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("DA_WORLD_SIZE=0"));

  unsetenv("DA_WORLD_SIZE");
  EXPECT_EQ(RankFromEnvironment().status().code(),
            absl::StatusCode::kInvalidArgument);
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(PublishedFileTest, ArrivesWhole) {
  const std::string path = TempPath("id_whole");
  const std::string secret(128, '\x5a');
  std::thread publisher([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_TRUE(PublishFile(path, secret).ok());
  });
  absl::StatusOr<std::string> got =
      AwaitFile(path, secret.size(), absl::Now() + absl::Seconds(10));
  publisher.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, secret);
}

TEST(PublishedFileTest, WrongSizeIsInvalid) {
  const std::string path = TempPath("id_short");
  ASSERT_TRUE(PublishFile(path, "abc").ok());
  EXPECT_EQ(AwaitFile(path, 128, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PublishedFileTest, MissingFileTimesOut) {
  const absl::Time start = absl::Now();
  const absl::Status status =
      AwaitFile(TempPath("never"), 128, start + absl::Milliseconds(200))
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
}

}  // namespace
}  // namespace internal
}  // namespace distributed
}  // namespace dilated
