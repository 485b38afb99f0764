// A distributed::Communicator whose operations are C functions supplied by
// the caller: the package registers Python functions (through ctypes) that
// run each operation with torch.distributed on a process group, so that the
// operator libraries, built without Python headers, can use any c10d
// backend (python/dilated_attention_torch/_process_group_engine.py).
//
// Every function returns 0 on success, or an absl::StatusCode (e.g. 4,
// DEADLINE_EXCEEDED, for a timed-out collective) after which last_error
// writes the message. Device arguments: device_type 0 = CPU, 1 = CUDA, the
// device index, and the cudaStream_t (as an address) that orders the work.
// After a failed operation the communicator refuses every later one with
// FailedPrecondition, as the other engines do after a timeout.

#ifndef DILATED_PYTHON_OPS_CALLBACK_COMMUNICATOR_H_
#define DILATED_PYTHON_OPS_CALLBACK_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "distributed/communicator.h"

namespace dilated {
namespace torch_ops {

struct CommunicatorCallbacks {
  int (*all_gather)(const void* send, void* recv, uint64_t bytes,
                    int device_type, int device_index, void* stream);
  // type: distributed::ElementType, op: distributed::ReduceOp, as ints.
  int (*reduce_scatter)(const void* send, void* recv, int64_t count, int type,
                        int op, int device_type, int device_index,
                        void* stream);
  int (*all_reduce)(const void* send, void* recv, int64_t count, int type,
                    int op, int device_type, int device_index, void* stream);
  int (*barrier)();
  // Starts `count` transfers (kinds: 0 send, 1 receive) and writes an id
  // that finish_exchange takes.
  int (*start_exchange)(int64_t count, const int32_t* kinds,
                        const int32_t* peers, void* const* data,
                        const uint64_t* bytes, int device_type,
                        int device_index, void* stream, int64_t* id);
  int (*finish_exchange)(int64_t id);
  // Writes the message of the last failure, NUL-terminated, truncated to
  // `size` bytes.
  void (*last_error)(char* buffer, uint64_t size);
};

// REQUIRES: every callback is set, 0 <= rank < size.
std::unique_ptr<distributed::Communicator> CreateCallbackCommunicator(
    int rank, int size, absl::Duration timeout,
    const CommunicatorCallbacks& callbacks);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_CALLBACK_COMMUNICATOR_H_
