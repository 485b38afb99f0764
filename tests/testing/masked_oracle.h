// File: masked_oracle.h
//
// A deliberately naive float64 dense attention over an explicit key mask with
// multiplicities, the oracle of "block_sparse" and "longnet": for every
// (head, query row p) a weight c(p, p') >= 0 per key p' (0 = not attended;
// 2 = the key counts twice, as in longnet's union of branches):
//
//   out[p] = sum_p' c e^{s(p,p')} v[p'] / sum_p' c e^{s(p,p')},
//   s(p, p') = scale * q[p].k[p'],  lse[p] = log sum_p' c e^{s(p,p')},
//
// rows with no key give out = 0 and lse = -inf. Written from that formula
// alone, with its analytic gradient; no library code.

#ifndef TESTS_TESTING_MASKED_ORACLE_H_
#define TESTS_TESTING_MASKED_ORACLE_H_

#include <cstdint>
#include <vector>

namespace dilated {
namespace testing {

struct MaskedProblem {
  int64_t batch = 1;
  int64_t seq_len = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  double softmax_scale = 0.0;
  // [batch, heads, seq, seq]: c(p, p') of (batch b, head h) at
  // ((b * heads + h) * seq + p) * seq + p'.
  std::vector<double> key_weights;

  int64_t NumElements() const { return batch * seq_len * num_heads * head_dim; }
  double KeyWeight(int64_t b, int64_t h, int64_t p, int64_t key) const {
    return key_weights[((b * num_heads + h) * seq_len + p) * seq_len + key];
  }
};

// Writes out ([batch, seq, heads, head_dim], contiguous) and lse ([batch,
// heads, seq]).
void MaskedForward(const MaskedProblem& problem, const std::vector<double>& q,
                   const std::vector<double>& k, const std::vector<double>& v,
                   std::vector<double>* out, std::vector<double>* lse);

// Writes the gradients of sum(out * grad_out) with respect to q, k and v.
void MaskedBackward(const MaskedProblem& problem, const std::vector<double>& q,
                    const std::vector<double>& k, const std::vector<double>& v,
                    const std::vector<double>& grad_out,
                    std::vector<double>* grad_q, std::vector<double>* grad_k,
                    std::vector<double>* grad_v);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_MASKED_ORACLE_H_
