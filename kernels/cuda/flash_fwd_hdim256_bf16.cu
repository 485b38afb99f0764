// Forward kernel instantiation: bf16, head_dim padded to 256.

#include "kernels/cuda/flash_configs.cuh"

namespace dilated {
namespace kernels {
namespace gpu {

template cudaError_t RunFlashForward<DataType::kBFloat16, 256>(
    const ForwardParams& params, const FlashProblems* problems,
    const BlockLists& sparse, cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
