#include "distributed/internal/mpi_runtime.h"

#include <mpi.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dilated {
namespace distributed {
namespace internal {
namespace {

void FinalizeAtExit() {
  if (!MpiFinalized()) MPI_Finalize();
}

absl::Status InitializeOnce() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return absl::OkStatus();
  if (MpiFinalized()) {
    return absl::FailedPreconditionError(
        "MPI has been finalised: no MPI communicator can be created");
  }
  int provided = 0;
  const int error =
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  if (error != MPI_SUCCESS) return MpiStatus(error, "MPI_Init_thread");
  // Exit handlers and static destructors run in reverse order of
  // registration: statics constructed after this point (a communicator held
  // in one) are destroyed before MPI_Finalize runs.
  std::atexit(FinalizeAtExit);
  return absl::OkStatus();
}

}  // namespace

absl::Status EnsureMpiInitialized() {
  // The first caller initialises; every communicator created later sees the
  // same outcome.
  static const absl::Status* const status = new absl::Status(InitializeOnce());
  if (status->ok() && MpiFinalized()) {
    return absl::FailedPreconditionError(
        "MPI has been finalised: no MPI communicator can be created");
  }
  return *status;
}

bool MpiFinalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

absl::Status MpiStatus(int error, absl::string_view what) {
  if (error == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(error, text, &length) != MPI_SUCCESS) length = 0;
  return absl::InternalError(absl::StrCat(
      what, " failed with MPI error ", error, ": ",
      length > 0 ? absl::string_view(text, length) : "(no description)"));
}

absl::StatusOr<bool> TestAllUntil(std::vector<MPI_Request>& requests,
                                  absl::Time deadline) {
  constexpr int kYields = 64;
  constexpr absl::Duration kFirstNap = absl::Microseconds(20);
  constexpr absl::Duration kLongestNap = absl::Milliseconds(1);
  absl::Duration nap = kFirstNap;
  for (int poll = 0;; ++poll) {
    int done = 0;
    const int error = MPI_Testall(static_cast<int>(requests.size()),
                                  requests.data(), &done, MPI_STATUSES_IGNORE);
    if (error != MPI_SUCCESS) return MpiStatus(error, "MPI_Testall");
    if (done) return true;
    if (absl::Now() >= deadline) return false;
    if (poll < kYields) {
      sched_yield();
    } else {
      absl::SleepFor(nap);
      nap = std::min(nap * 2, kLongestNap);
    }
  }
}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
