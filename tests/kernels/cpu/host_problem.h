// File: host_problem.h
//
// Host-side fixtures for the CPU kernel tests: tensors stored as float32,
// float16 or bfloat16 in several strided layouts (with a sentinel in every
// byte that is not an element), and a dilated attention problem that owns
// q, k, v, out, lse and the gradients and builds the kernels' POD params.

#ifndef TESTS_KERNELS_CPU_HOST_PROBLEM_H_
#define TESTS_KERNELS_CPU_HOST_PROBLEM_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/dilated_params.h"
#include "tests/testing/oracle.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace testing {

enum class Layout {
  kContiguous,  // [b, n, h, d] packed.
  kPadded,      // [b, n, h, d] with gaps after every head, position, batch.
  kHeadMajor,   // Memory order [b, h, n, d]: a permuted (transposed) view.
};

// A [b, n, h, d] tensor on the host in `layout`.
class HostTensor {
 public:
  HostTensor(DataType dtype, int64_t batch, int64_t seq, int64_t heads,
             int64_t head_dim, Layout layout);

  // Writes `values` (logical row-major [b, n, h, d]) rounded to the dtype.
  void Upload(const std::vector<double>& values);
  // Returns the elements in logical row-major order.
  std::vector<double> Download() const;
  // Sets every byte (elements and gaps) to the sentinel, a NaN pattern in
  // every dtype, so that elements a kernel does not write stay NaN.
  void FillWithSentinel();
  // Returns whether every byte outside the elements holds the sentinel.
  bool GapsIntact() const;
  // Returns the raw storage, for bitwise comparisons.
  const std::vector<unsigned char>& bytes() const { return bytes_; }

  TensorParams params() const;

 private:
  int64_t ElementOffset(int64_t b, int64_t n, int64_t h) const;

  DataType dtype_;
  int64_t batch_, seq_, heads_, head_dim_;
  int64_t stride_b_, stride_n_, stride_h_;
  std::vector<unsigned char> bytes_;
};

// Returns `value` rounded to `dtype` (nearest even).
double RoundTo(DataType dtype, double value);

// Returns the name of `dtype`.
std::string DataTypeName(DataType dtype);

struct ProblemShape {
  std::string label;
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  Layout layout = Layout::kContiguous;
};

// One problem with random inputs (exactly representable in the dtype) and
// storage for every output.
class HostProblem {
 public:
  HostProblem(const ProblemShape& shape, DataType dtype, bool is_causal,
              uint32_t seed);

  // Returns forward params over q, k, v, out and lse.
  ForwardParams Forward();
  // Returns backward params over the above plus grad_out and the gradients.
  BackwardParams Backward();
  // Returns the matching float64 oracle problem.
  dilated::testing::OracleProblem Oracle() const;

  // Sets out, lse and the gradients to NaN sentinels.
  void PoisonOutputs();

  const ProblemShape& shape() const { return shape_; }
  DataType dtype() const { return dtype_; }

  std::vector<double> q_values, k_values, v_values, grad_out_values;
  HostTensor q, k, v, out, grad_out, grad_q, grad_k, grad_v;
  std::vector<float> lse;  // [b, h, n].

 private:
  ProblemShape shape_;
  DataType dtype_;
  bool is_causal_;
};

}  // namespace testing
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // TESTS_KERNELS_CPU_HOST_PROBLEM_H_
