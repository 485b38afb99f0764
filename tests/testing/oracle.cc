#include "tests/testing/oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dilated {
namespace testing {
namespace {

// The keys a row attends to: the selected positions of its segment (up to
// the row itself when causal). Empty when the row is not selected.
struct RowKeys {
  std::vector<int64_t> positions;
};

// Returns the group index that owns `head` under the front-loaded split:
// group i has floor(h/G) heads, plus one if i < h mod G.
int64_t GroupOfHead(const OracleProblem& p, int64_t head) {
  const int64_t groups = static_cast<int64_t>(p.segment_lengths.size());
  int64_t first = 0;
  for (int64_t i = 0; i < groups; ++i) {
    const int64_t count =
        p.num_heads / groups + (i < p.num_heads % groups ? 1 : 0);
    if (head < first + count) return i;
    first += count;
  }
  return -1;
}

RowKeys KeysOf(const OracleProblem& p, int64_t head, int64_t position) {
  RowKeys keys;
  const int64_t i = GroupOfHead(p, head);
  const int64_t s = p.segment_lengths[i];
  const int64_t r = p.dilation_rates[i];
  const int64_t offset = i % r;
  const int64_t start = position - position % s;
  const int64_t within = position % s - offset;
  if (within < 0 || within % r != 0) return keys;  // Not selected.
  for (int64_t key = start + offset; key < start + s; key += r) {
    if (p.is_causal && key > position) break;
    keys.positions.push_back(key);
  }
  return keys;
}

int64_t Index(const OracleProblem& p, int64_t b, int64_t n, int64_t h,
              int64_t d) {
  return ((b * p.seq_len + n) * p.num_heads + h) * p.head_dim + d;
}

double Dot(const OracleProblem& p, const std::vector<double>& x,
           const std::vector<double>& y, int64_t b, int64_t nx, int64_t ny,
           int64_t h) {
  double sum = 0.0;
  for (int64_t d = 0; d < p.head_dim; ++d) {
    sum += x[Index(p, b, nx, h, d)] * y[Index(p, b, ny, h, d)];
  }
  return sum;
}

// Returns the softmax probabilities of row (b, position, head) over `keys`,
// and its log-sum-exp in *lse.
std::vector<double> Probabilities(const OracleProblem& p,
                                  const std::vector<double>& q,
                                  const std::vector<double>& k, int64_t b,
                                  int64_t position, int64_t head,
                                  const RowKeys& keys, double* lse) {
  std::vector<double> scores;
  double max_score = -std::numeric_limits<double>::infinity();
  for (int64_t key : keys.positions) {
    scores.push_back(p.softmax_scale * Dot(p, q, k, b, position, key, head));
    max_score = std::max(max_score, scores.back());
  }
  double sum = 0.0;
  for (double& s : scores) {
    s = std::exp(s - max_score);
    sum += s;
  }
  for (double& s : scores) s /= sum;
  *lse = max_score + std::log(sum);
  return scores;
}

}  // namespace

void OracleForward(const OracleProblem& p, const std::vector<double>& q,
                   const std::vector<double>& k, const std::vector<double>& v,
                   std::vector<double>* out, std::vector<double>* lse) {
  const double groups = static_cast<double>(p.segment_lengths.size());
  out->assign(p.NumElements(), 0.0);
  lse->assign(p.batch * p.num_heads * p.seq_len,
              -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t n = 0; n < p.seq_len; ++n) {
        const RowKeys keys = KeysOf(p, h, n);
        if (keys.positions.empty()) continue;
        double row_lse = 0.0;
        const std::vector<double> probs =
            Probabilities(p, q, k, b, n, h, keys, &row_lse);
        (*lse)[(b * p.num_heads + h) * p.seq_len + n] = row_lse;
        for (size_t j = 0; j < keys.positions.size(); ++j) {
          for (int64_t d = 0; d < p.head_dim; ++d) {
            (*out)[Index(p, b, n, h, d)] +=
                probs[j] * v[Index(p, b, keys.positions[j], h, d)] / groups;
          }
        }
      }
    }
  }
}

void OracleBackward(const OracleProblem& p, const std::vector<double>& q,
                    const std::vector<double>& k, const std::vector<double>& v,
                    const std::vector<double>& grad_out,
                    std::vector<double>* grad_q, std::vector<double>* grad_k,
                    std::vector<double>* grad_v) {
  const double c = 1.0 / static_cast<double>(p.segment_lengths.size());
  grad_q->assign(p.NumElements(), 0.0);
  grad_k->assign(p.NumElements(), 0.0);
  grad_v->assign(p.NumElements(), 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t n = 0; n < p.seq_len; ++n) {
        const RowKeys keys = KeysOf(p, h, n);
        if (keys.positions.empty()) continue;
        double unused_lse = 0.0;
        const std::vector<double> probs =
            Probabilities(p, q, k, b, n, h, keys, &unused_lse);
        // out[n] = c * sum_j P_j v_j, so dP_j = c * g.v_j and, through the
        // softmax, dS_j = P_j * (dP_j - sum_l P_l dP_l).
        std::vector<double> grad_p(keys.positions.size());
        double weighted = 0.0;
        for (size_t j = 0; j < keys.positions.size(); ++j) {
          grad_p[j] = c * Dot(p, grad_out, v, b, n, keys.positions[j], h);
          weighted += probs[j] * grad_p[j];
        }
        for (size_t j = 0; j < keys.positions.size(); ++j) {
          const int64_t key = keys.positions[j];
          const double grad_s = probs[j] * (grad_p[j] - weighted);
          for (int64_t d = 0; d < p.head_dim; ++d) {
            (*grad_v)[Index(p, b, key, h, d)] +=
                c * probs[j] * grad_out[Index(p, b, n, h, d)];
            (*grad_q)[Index(p, b, n, h, d)] +=
                p.softmax_scale * grad_s * k[Index(p, b, key, h, d)];
            (*grad_k)[Index(p, b, key, h, d)] +=
                p.softmax_scale * grad_s * q[Index(p, b, n, h, d)];
          }
        }
      }
    }
  }
}

}  // namespace testing
}  // namespace dilated
