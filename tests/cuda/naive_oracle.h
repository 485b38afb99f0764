// File: naive_oracle.h
//
// A deliberately naive float64 implementation of dilated attention
// (ARCHITECTURE.md section 1), forward and backward, over contiguous
// [batch, seq, heads, head_dim] arrays: plain loops, no tiling, no shared
// code with the library. The tests' independent reference.

#ifndef TESTS_CUDA_NAIVE_ORACLE_H_
#define TESTS_CUDA_NAIVE_ORACLE_H_

#include <cstdint>
#include <vector>

namespace dilated {
namespace testing {

struct OracleShape {
  int64_t batch;
  int64_t seq;
  int64_t heads;
  int64_t head_dim;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
  bool causal;
  double scale;  // softmax scale
};

struct OracleForward {
  std::vector<double> out;  // [batch, seq, heads, head_dim]
  std::vector<double> lse;  // [batch, heads, seq], -inf where unselected
};

struct OracleGradients {
  std::vector<double> q;
  std::vector<double> k;
  std::vector<double> v;
};

// Returns out and lse for contiguous q, k, v.
OracleForward NaiveForward(const OracleShape& shape,
                           const std::vector<double>& q,
                           const std::vector<double>& k,
                           const std::vector<double>& v);

// Returns the gradients of sum(out * grad_out) with respect to q, k, v.
OracleGradients NaiveBackward(const OracleShape& shape,
                              const std::vector<double>& q,
                              const std::vector<double>& k,
                              const std::vector<double>& v,
                              const std::vector<double>& grad_out);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_CUDA_NAIVE_ORACLE_H_
