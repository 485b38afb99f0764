// The operator that makes a communicator of C callbacks
// (python/ops/callback_communicator.h):
//
//   callback_communicator(int rank, int size, int timeout_seconds,
//                         int[] callbacks) -> int handle
//
// `callbacks` holds the addresses of the seven functions of
// CommunicatorCallbacks in declaration order. The handle is the
// communicator's address, which forward and backward take as their
// `communicator` argument; the communicator is kept for the life of the
// process (handles given out must stay valid), so the caller makes one per
// process group and keeps the functions alive as long.

#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "python/ops/callback_communicator.h"

namespace dilated {
namespace torch_ops {
namespace {

template <typename Function>
Function FunctionAt(int64_t address) {
  return reinterpret_cast<Function>(static_cast<intptr_t>(address));
}

int64_t CallbackCommunicatorOf(int64_t rank, int64_t size,
                               int64_t timeout_seconds,
                               std::vector<int64_t> callbacks) {
  if (size <= 0 || rank < 0 || rank >= size) {
    throw std::runtime_error(absl::StrCat("INVALID_ARGUMENT: rank ", rank,
                                          " of size ", size,
                                          " is out of range"));
  }
  if (timeout_seconds <= 0) {
    throw std::runtime_error(
        absl::StrCat("INVALID_ARGUMENT: timeout_seconds must be positive, got ",
                     timeout_seconds));
  }
  if (callbacks.size() != 7) {
    throw std::runtime_error(absl::StrCat(
        "INVALID_ARGUMENT: callbacks must hold 7 function addresses, got ",
        callbacks.size()));
  }
  for (size_t i = 0; i < callbacks.size(); ++i) {
    if (callbacks[i] == 0) {
      throw std::runtime_error(
          absl::StrCat("INVALID_ARGUMENT: callbacks[", i, "] is null"));
    }
  }
  CommunicatorCallbacks table;
  table.all_gather = FunctionAt<decltype(table.all_gather)>(callbacks[0]);
  table.reduce_scatter =
      FunctionAt<decltype(table.reduce_scatter)>(callbacks[1]);
  table.all_reduce = FunctionAt<decltype(table.all_reduce)>(callbacks[2]);
  table.barrier = FunctionAt<decltype(table.barrier)>(callbacks[3]);
  table.start_exchange =
      FunctionAt<decltype(table.start_exchange)>(callbacks[4]);
  table.finish_exchange =
      FunctionAt<decltype(table.finish_exchange)>(callbacks[5]);
  table.last_error = FunctionAt<decltype(table.last_error)>(callbacks[6]);
  // Kept for the life of the process, as the MPI communicator is.
  distributed::Communicator* communicator =
      CreateCallbackCommunicator(static_cast<int>(rank), static_cast<int>(size),
                                 absl::Seconds(timeout_seconds), table)
          .release();
  return reinterpret_cast<int64_t>(communicator);
}

}  // namespace
}  // namespace torch_ops
}  // namespace dilated

STABLE_TORCH_LIBRARY_FRAGMENT(dilated_attention, m) {
  m.def(
      "callback_communicator(int rank, int size, int timeout_seconds, "
      "int[] callbacks) -> int");
}

STABLE_TORCH_LIBRARY_IMPL(dilated_attention, CompositeExplicitAutograd, m) {
  m.impl("callback_communicator",
         TORCH_BOX(&dilated::torch_ops::CallbackCommunicatorOf));
}
