// File: dropout_oracle.h
//
// A deliberately naive float64 dilated attention with attention dropout,
// written from docs/ARCHITECTURE.md section 1 and the mask contract of
// kernels/dropout_rng.h: the groups, segments and allowed keys in one loop
// nest, the softmax in float64, and then every probability multiplied by the
// mask function's keep decision (in float64: 0 or 1 / (1 - p)) before it
// weighs v. lse is that of the undropped softmax. Fixed-length layout
// ([batch, seq, heads, head_dim]), partial segments and causal included. No
// library code besides the mask function itself, whose generator the Philox
// known-answer test checks.

#ifndef TESTS_TESTING_DROPOUT_ORACLE_H_
#define TESTS_TESTING_DROPOUT_ORACLE_H_

#include <cstdint>
#include <vector>

namespace dilated {
namespace testing {

struct DropoutOracleProblem {
  int64_t batch = 1;
  int64_t seq_len = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  bool is_causal = false;
  double softmax_scale = 0.0;
  // Dropout probability in [0, 1) and the random stream.
  double dropout = 0.0;
  uint64_t seed = 0;
  uint64_t offset = 0;

  int64_t NumElements() const { return batch * seq_len * num_heads * head_dim; }
};

// Writes out ([batch, seq, heads, head_dim], contiguous) and lse ([batch,
// heads, seq]; -inf where a row is not selected).
void DropoutOracleForward(const DropoutOracleProblem& problem,
                          const std::vector<double>& q,
                          const std::vector<double>& k,
                          const std::vector<double>& v,
                          std::vector<double>* out, std::vector<double>* lse);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_DROPOUT_ORACLE_H_
