// The MPI communicator for the PyTorch operators, in a library of its own
// (_ops_mpi.so) so that the others do not need Open MPI: the operator
//
//   dilated_attention::mpi_communicator(int timeout_seconds)
//       -> (int handle, int rank, int size)
//
// creates, on its first call in a process (collectively: every rank calls
// it), a communicator over MPI_COMM_WORLD (distributed/mpi_communicator.h)
// and returns it as a handle that forward and backward take as their
// `communicator` argument. Later calls return the same communicator. The
// handle is the communicator's address: valid in this process only, for
// the life of the process.

#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"

namespace dilated {
namespace torch_ops {
namespace {

std::tuple<int64_t, int64_t, int64_t> MpiCommunicator(int64_t timeout_seconds) {
  static absl::Mutex mutex(absl::kConstInit);
  static distributed::Communicator* communicator = nullptr;
  absl::MutexLock lock(&mutex);
  if (communicator == nullptr) {
    distributed::MpiOptions options;
    options.timeout = absl::Seconds(timeout_seconds);
    absl::StatusOr<std::unique_ptr<distributed::Communicator>> created =
        distributed::CreateMpiCommunicator(options);
    if (!created.ok()) {
      throw std::runtime_error(
          absl::StrCat(absl::StatusCodeToString(created.status().code()), ": ",
                       created.status().message()));
    }
    // Kept for the life of the process: handles given out must stay valid.
    communicator = created->release();
  }
  return {reinterpret_cast<int64_t>(communicator), communicator->rank(),
          communicator->size()};
}

}  // namespace
}  // namespace torch_ops
}  // namespace dilated

STABLE_TORCH_LIBRARY_FRAGMENT(dilated_attention, m) {
  m.def("mpi_communicator(int timeout_seconds) -> (int, int, int)");
}

STABLE_TORCH_LIBRARY_IMPL(dilated_attention, CompositeExplicitAutograd, m) {
  m.impl("mpi_communicator", TORCH_BOX(&dilated::torch_ops::MpiCommunicator));
}
