// File: attention_run.h
//
// Runs one Attention forward and backward on float64 inputs placed on a test
// device in a given dtype and layout, and reads every result back: what the
// suites of block_sparse and longnet compare with their oracles.

#ifndef TESTS_TESTING_ATTENTION_RUN_H_
#define TESTS_TESTING_ATTENTION_RUN_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "attention/attention.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace testing {

struct AttentionInputs {
  // [batch, seq, heads, head_dim] values (already rounded to the dtype).
  std::vector<int64_t> shape;
  std::vector<double> q, k, v, grad_out;
  // Optional [batch, seq] key padding mask, nonzero = padding.
  std::vector<uint8_t> key_padding_mask;
  bool is_causal = false;
  // ForwardOptions::training and the dropout random stream.
  bool training = false;
  uint64_t dropout_seed = 0;
  uint64_t dropout_offset = 0;
};

struct AttentionResults {
  absl::Status forward;
  absl::Status backward;  // Not run when forward failed.
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
  // Whether every output tensor left the bytes outside its elements alone.
  bool padding_intact = true;
};

// Returns the results of Forward (with lse) and Backward on `device`.
AttentionResults RunAttention(Attention& attention, TestDevice* device,
                              DType dtype, Layout layout,
                              const AttentionInputs& inputs);

// Returns `count` values uniform in [-range, range] rounded to `dtype`, from
// a fixed seed per call site's `seed`.
std::vector<double> Values(int64_t count, double range, DType dtype,
                           unsigned seed);

// Returns inputs of `shape` ([batch, seq, heads, head_dim]) in `dtype`, no
// padding: q and k uniform in [-2, 2] (peaked softmax rows, so that a wrong
// key set shows), v and grad_out in [-1, 1], from seeds seed .. seed + 3.
AttentionInputs RandomInputs(const std::vector<int64_t>& shape, DType dtype,
                             bool is_causal, unsigned seed);

// Returns a [batch, seq] key padding mask (`count` entries) with padding at
// random positions (probability 0.3), from `seed`.
std::vector<uint8_t> RandomPadding(int64_t count, unsigned seed);

// What an oracle expects of a forward and backward call.
struct ExpectedResults {
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
};

// Adds a gtest failure for every result of `got` that differs from `want`
// beyond the tolerances of `dtype` (compare.h), or when `got` wrote outside
// its tensors' elements.
void ExpectResultsMatch(const AttentionResults& got,
                        const ExpectedResults& want, DType dtype);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_ATTENTION_RUN_H_
