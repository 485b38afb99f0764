#include "distributed/internal/launch_environment.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dilated {
namespace distributed {
namespace internal {
namespace {

absl::StatusOr<int> ParseVariable(const char* name, const char* value) {
  int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", value, "' is not an integer"));
  }
  return parsed;
}

absl::StatusOr<LaunchRank> FromPair(const char* rank_name,
                                    const char* size_name) {
  const char* rank_value = std::getenv(rank_name);
  const char* size_value = std::getenv(size_name);
  absl::StatusOr<int> rank = ParseVariable(rank_name, rank_value);
  if (!rank.ok()) return rank.status();
  absl::StatusOr<int> size = ParseVariable(size_name, size_value);
  if (!size.ok()) return size.status();
  if (*size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(size_name, "=", *size, " is not positive"));
  }
  if (*rank < 0 || *rank >= *size) {
    return absl::InvalidArgumentError(absl::StrCat(
        rank_name, "=", *rank, " is not in [0, ", size_name, "=", *size, ")"));
  }
  return LaunchRank{*rank, *size};
}

bool IsSet(const char* name) { return std::getenv(name) != nullptr; }

}  // namespace

absl::StatusOr<LaunchRank> RankFromEnvironment() {
  if (IsSet("DA_RANK") || IsSet("DA_WORLD_SIZE")) {
    if (!IsSet("DA_RANK") || !IsSet("DA_WORLD_SIZE")) {
      return absl::InvalidArgumentError(
          "DA_RANK and DA_WORLD_SIZE must be set together");
    }
    return FromPair("DA_RANK", "DA_WORLD_SIZE");
  }
  if (IsSet("OMPI_COMM_WORLD_RANK") && IsSet("OMPI_COMM_WORLD_SIZE")) {
    return FromPair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
  }
  return absl::FailedPreconditionError(
      "no rank in the environment: set DA_RANK and DA_WORLD_SIZE, or launch "
      "with Open MPI's mpirun (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE)");
}

absl::Status PublishFile(const std::string& path, absl::string_view contents) {
  const std::string temporary =
      absl::StrCat(path, ".tmp.", static_cast<long>(getpid()));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) {
      std::remove(temporary.c_str());
      return absl::InternalError(
          absl::StrCat("writing '", temporary, "' failed"));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    return absl::InternalError(
        absl::StrCat("renaming '", temporary, "' to '", path,
                     "' failed: ", std::strerror(error)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AwaitFile(const std::string& path, size_t bytes,
                                      absl::Time deadline) {
  const absl::Time start = absl::Now();
  for (;;) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string contents((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
      if (contents.size() != bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", path, "' holds ", contents.size(),
                         " bytes, not the ", bytes, " expected"));
      }
      return contents;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("'", path, "' did not appear within ",
                       absl::FormatDuration(absl::Now() - start),
                       ": rank 0 has not published it"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
