// USE_CUDA makes the stable C shim declare its CUDA functions.
#define USE_CUDA 1
#include <torch/csrc/inductor/aoti_torch/c/shim.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "python/ops/current_stream.h"

namespace dilated {
namespace torch_ops {

void* CurrentStream(int32_t device_index) {
  void* stream = nullptr;
  if (aoti_torch_get_current_cuda_stream(device_index, &stream) !=
      AOTI_TORCH_SUCCESS) {
    throw std::runtime_error("cannot get PyTorch's current CUDA stream on " +
                             std::to_string(device_index));
  }
  return stream;
}

}  // namespace torch_ops
}  // namespace dilated
