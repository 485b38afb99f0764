#include "tests/testing/masked_oracle.h"

#include <cmath>
#include <limits>

namespace dilated {
namespace testing {
namespace {

int64_t Index(const MaskedProblem& p, int64_t b, int64_t n, int64_t h,
              int64_t a) {
  return ((b * p.seq_len + n) * p.num_heads + h) * p.head_dim + a;
}

double Score(const MaskedProblem& p, const std::vector<double>& q,
             const std::vector<double>& k, int64_t b, int64_t h, int64_t row,
             int64_t key) {
  double dot = 0.0;
  for (int64_t a = 0; a < p.head_dim; ++a) {
    dot += q[Index(p, b, row, h, a)] * k[Index(p, b, key, h, a)];
  }
  return p.softmax_scale * dot;
}

// The probabilities of row `row` (c e^s / sum c e^s) over every key; all
// zero and lse -inf when the row has no key.
std::vector<double> RowProbabilities(const MaskedProblem& p,
                                     const std::vector<double>& q,
                                     const std::vector<double>& k, int64_t b,
                                     int64_t h, int64_t row, double* lse) {
  std::vector<double> probabilities(p.seq_len, 0.0);
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t key = 0; key < p.seq_len; ++key) {
    if (p.KeyWeight(b, h, row, key) > 0) {
      max = std::max(max, Score(p, q, k, b, h, row, key));
    }
  }
  *lse = -std::numeric_limits<double>::infinity();
  if (max == -std::numeric_limits<double>::infinity()) return probabilities;
  double sum = 0.0;
  for (int64_t key = 0; key < p.seq_len; ++key) {
    const double c = p.KeyWeight(b, h, row, key);
    if (c > 0) {
      probabilities[key] = c * std::exp(Score(p, q, k, b, h, row, key) - max);
      sum += probabilities[key];
    }
  }
  for (double& x : probabilities) x /= sum;
  *lse = max + std::log(sum);
  return probabilities;
}

}  // namespace

void MaskedForward(const MaskedProblem& p, const std::vector<double>& q,
                   const std::vector<double>& k, const std::vector<double>& v,
                   std::vector<double>* out, std::vector<double>* lse) {
  out->assign(p.NumElements(), 0.0);
  lse->assign(p.batch * p.num_heads * p.seq_len, 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t row = 0; row < p.seq_len; ++row) {
        double row_lse;
        const std::vector<double> probabilities =
            RowProbabilities(p, q, k, b, h, row, &row_lse);
        (*lse)[(b * p.num_heads + h) * p.seq_len + row] = row_lse;
        for (int64_t key = 0; key < p.seq_len; ++key) {
          if (probabilities[key] == 0.0) continue;  // Unread keys stay unread.
          for (int64_t a = 0; a < p.head_dim; ++a) {
            (*out)[Index(p, b, row, h, a)] +=
                probabilities[key] * v[Index(p, b, key, h, a)];
          }
        }
      }
    }
  }
}

// With P the row's probabilities: dV[key] += P[key] dO,
// dS[key] = P[key] (dO.v[key] - dO.out), dQ += scale dS[key] k[key],
// dK[key] += scale dS[key] q.
void MaskedBackward(const MaskedProblem& p, const std::vector<double>& q,
                    const std::vector<double>& k, const std::vector<double>& v,
                    const std::vector<double>& grad_out,
                    std::vector<double>* grad_q, std::vector<double>* grad_k,
                    std::vector<double>* grad_v) {
  grad_q->assign(p.NumElements(), 0.0);
  grad_k->assign(p.NumElements(), 0.0);
  grad_v->assign(p.NumElements(), 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t row = 0; row < p.seq_len; ++row) {
        double row_lse;
        const std::vector<double> probabilities =
            RowProbabilities(p, q, k, b, h, row, &row_lse);
        std::vector<double> out(p.head_dim, 0.0);
        for (int64_t key = 0; key < p.seq_len; ++key) {
          if (probabilities[key] == 0.0) continue;
          for (int64_t a = 0; a < p.head_dim; ++a) {
            out[a] += probabilities[key] * v[Index(p, b, key, h, a)];
          }
        }
        double d_out_dot_out = 0.0;
        for (int64_t a = 0; a < p.head_dim; ++a) {
          d_out_dot_out += grad_out[Index(p, b, row, h, a)] * out[a];
        }
        for (int64_t key = 0; key < p.seq_len; ++key) {
          if (probabilities[key] == 0.0) continue;
          double d_out_dot_v = 0.0;
          for (int64_t a = 0; a < p.head_dim; ++a) {
            d_out_dot_v +=
                grad_out[Index(p, b, row, h, a)] * v[Index(p, b, key, h, a)];
          }
          const double ds = probabilities[key] * (d_out_dot_v - d_out_dot_out);
          for (int64_t a = 0; a < p.head_dim; ++a) {
            (*grad_v)[Index(p, b, key, h, a)] +=
                probabilities[key] * grad_out[Index(p, b, row, h, a)];
            (*grad_q)[Index(p, b, row, h, a)] +=
                p.softmax_scale * ds * k[Index(p, b, key, h, a)];
            (*grad_k)[Index(p, b, key, h, a)] +=
                p.softmax_scale * ds * q[Index(p, b, row, h, a)];
          }
        }
      }
    }
  }
}

}  // namespace testing
}  // namespace dilated
