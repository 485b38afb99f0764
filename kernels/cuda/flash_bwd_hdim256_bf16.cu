// Backward kernels instantiation: bf16, head_dim padded to 256.

#include "kernels/cuda/flash_configs.cuh"

namespace dilated {
namespace kernels {
namespace gpu {

template cudaError_t RunFlashBackward<DataType::kBFloat16, 256>(
    const BackwardParams& params, const FlashProblems* problems,
    const BlockLists& sparse, float* delta, cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated
