// File: oracle.h
//
// A deliberately naive float64 implementation of dilated attention, written
// from docs/ARCHITECTURE.md section 1 and nothing else: no library code, no
// gather/scatter, one loop nest per formula, partial segments, key padding
// and packed sequences included. The tests compare every implementation with
// it.

#ifndef TESTS_TESTING_ORACLE_H_
#define TESTS_TESTING_ORACLE_H_

#include <cstdint>
#include <vector>

namespace dilated {
namespace testing {

struct OracleProblem {
  int64_t batch = 1;
  int64_t seq_len = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  bool is_causal = false;
  double softmax_scale = 0.0;
  // Optional [batch, seq_len] key padding mask, nonzero = padding.
  std::vector<uint8_t> key_padding_mask;
  // Packed layout when not empty: sequence b has seq_lens[b] rows, one after
  // the other; tensors are [total, heads, head_dim] and lse [heads, total]
  // (batch and seq_len are then ignored).
  std::vector<int64_t> seq_lens;

  // Returns the rows of the row axis: total (packed) or batch * seq_len.
  int64_t Rows() const;
  // Returns the number of elements of q (and of every tensor like it).
  int64_t NumElements() const { return Rows() * num_heads * head_dim; }
};

// Writes out (q's shape) and lse ([b, h, n], or [h, total] when packed; -inf
// where a row is not selected or padded). Tensors are contiguous float64.
void OracleForward(const OracleProblem& problem, const std::vector<double>& q,
                   const std::vector<double>& k, const std::vector<double>& v,
                   std::vector<double>* out, std::vector<double>* lse);

// Writes the gradients of sum(out * grad_out) with respect to q, k and v.
void OracleBackward(const OracleProblem& problem, const std::vector<double>& q,
                    const std::vector<double>& k, const std::vector<double>& v,
                    const std::vector<double>& grad_out,
                    std::vector<double>* grad_q, std::vector<double>* grad_k,
                    std::vector<double>* grad_v);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_ORACLE_H_
