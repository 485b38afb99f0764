// File: flash_work_sim.h
//
// Where the fused CUDA kernels' thread blocks write, simulated on the host:
// the decode, addressing and zeroing code of kernels/cuda/flash_common.cuh
// (and the delta kernel's decode in flash_backward.cuh), run over every
// block index of a launch, counting the writes per element of a [batch,
// rows, heads] grid laid out as the front end lays the tensors out (stride_b
// and lse_stride_b 0 when packed). No GPU needed: it checks the index
// arithmetic that every kernel shares, not the kernels' tile loops.

#ifndef TESTS_CUDA_FLASH_WORK_SIM_H_
#define TESTS_CUDA_FLASH_WORK_SIM_H_

#include <cstdint>
#include <vector>

#include "kernels/cuda/flash_attention.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace testing {

// Write counts of one launch per (storage batch entry b, row, head), at
// index (b * rows + row) * heads + head.
struct SimulatedWrites {
  std::vector<int> rows;       // Rows a block computes and stores.
  std::vector<int> zeros;      // Positions ZeroUnselectedRows zeroes.
  std::vector<int> lse_rows;   // lse entries of computed rows.
  std::vector<int> lse_zeros;  // lse entries set to -inf.
};

// Simulates a launch of `rows_per_block` rows per thread block over the
// problems (`problems` null: the closed form).
SimulatedWrites SimulateLaunch(
    const kernels::ForwardParams& p,
    const std::vector<kernels::gpu::FlashProblem>* problems, int rows_per_block,
    bool heavy_last_first);

// Returns the delta-buffer entries FlashDeltaKernel writes, counted as
// above.
std::vector<int> SimulateDeltaRows(
    const kernels::ForwardParams& p,
    const std::vector<kernels::gpu::FlashProblem>* problems);

// Returns the number of block indices of a launch whose work item the
// problem list decodes differently from the closed form, or -1 when the two
// launches have different numbers of blocks.
int64_t CountDecodeDifferences(
    const kernels::ForwardParams& p,
    const std::vector<kernels::gpu::FlashProblem>& problems, int rows_per_block,
    bool heavy_last_first);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_CUDA_FLASH_WORK_SIM_H_
