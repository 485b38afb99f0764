// File: mpi_runtime.h
//
// What every MPI communicator shares: initialising MPI once per process (and
// finalising it at exit if this library initialised it), MPI error codes as
// absl::Status, and a polling wait for requests that gives up at a deadline
// and leaves the CPU to other ranks between polls.

#ifndef DISTRIBUTED_INTERNAL_MPI_RUNTIME_H_
#define DISTRIBUTED_INTERNAL_MPI_RUNTIME_H_

#include <mpi.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dilated {
namespace distributed {
namespace internal {

// Initialises MPI with MPI_THREAD_FUNNELED unless it is initialised already
// (by the application, or by an earlier call). If this call initialised it,
// MPI_Finalize runs at process exit (std::atexit), after every communicator
// destroyed before exit. FailedPrecondition once MPI has been finalised.
absl::Status EnsureMpiInitialized();

// Returns whether MPI has been finalised (communicators alive at exit must
// not free their MPI objects then).
bool MpiFinalized();

// Returns OK for MPI_SUCCESS, else Internal naming `what` and the error's
// text from MPI_Error_string.
absl::Status MpiStatus(int error, absl::string_view what);

// Polls `requests` with MPI_Testall until all complete (returns true) or
// `deadline` passes (returns false, the requests left as they are). Yields
// the CPU between polls, first with sched_yield and then with sleeps that
// grow to a millisecond, so that ranks sharing cores make progress.
absl::StatusOr<bool> TestAllUntil(std::vector<MPI_Request>& requests,
                                  absl::Time deadline);

}  // namespace internal
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_INTERNAL_MPI_RUNTIME_H_
