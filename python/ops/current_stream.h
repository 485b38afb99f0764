// The CUDA stream PyTorch is currently using on a device, for the library's
// calls to run on (null in the CPU build, which gets no CUDA tensors).

#ifndef DILATED_PYTHON_OPS_CURRENT_STREAM_H_
#define DILATED_PYTHON_OPS_CURRENT_STREAM_H_

#include <cstdint>

namespace dilated {
namespace torch_ops {

void* CurrentStream(int32_t device_index);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_CURRENT_STREAM_H_
