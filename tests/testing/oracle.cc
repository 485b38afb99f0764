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

int64_t Sequences(const OracleProblem& p) {
  return p.seq_lens.empty() ? p.batch : static_cast<int64_t>(p.seq_lens.size());
}

int64_t SeqLen(const OracleProblem& p, int64_t b) {
  return p.seq_lens.empty() ? p.seq_len : p.seq_lens[b];
}

// Returns the row of position n of sequence b on the row axis.
int64_t Row(const OracleProblem& p, int64_t b, int64_t n) {
  if (p.seq_lens.empty()) return b * p.seq_len + n;
  int64_t row = n;
  for (int64_t i = 0; i < b; ++i) row += p.seq_lens[i];
  return row;
}

bool Padded(const OracleProblem& p, int64_t b, int64_t n) {
  return !p.key_padding_mask.empty() &&
         p.key_padding_mask[b * p.seq_len + n] != 0;
}

// Segment m of a sequence of length len covers [m*s, min((m+1)*s, len)); the
// group selects m*s + offset + j*r inside it. Padded keys are left out;
// padded rows attend to nothing.
RowKeys KeysOf(const OracleProblem& p, int64_t b, int64_t head,
               int64_t position) {
  RowKeys keys;
  const int64_t i = GroupOfHead(p, head);
  const int64_t s = p.segment_lengths[i];
  const int64_t r = p.dilation_rates[i];
  const int64_t offset = i % r;
  const int64_t start = position - position % s;
  const int64_t end = std::min(start + s, SeqLen(p, b));
  const int64_t within = position % s - offset;
  if (within < 0 || within % r != 0) return keys;  // Not selected.
  if (Padded(p, b, position)) return keys;
  for (int64_t key = start + offset; key < end; key += r) {
    if (p.is_causal && key > position) break;
    if (Padded(p, b, key)) continue;
    keys.positions.push_back(key);
  }
  return keys;
}

int64_t Index(const OracleProblem& p, int64_t b, int64_t n, int64_t h,
              int64_t d) {
  return (Row(p, b, n) * p.num_heads + h) * p.head_dim + d;
}

int64_t LseIndex(const OracleProblem& p, int64_t b, int64_t h, int64_t n) {
  if (!p.seq_lens.empty()) return h * p.Rows() + Row(p, b, n);
  return (b * p.num_heads + h) * p.seq_len + n;
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

int64_t OracleProblem::Rows() const {
  if (seq_lens.empty()) return batch * seq_len;
  int64_t total = 0;
  for (int64_t length : seq_lens) total += length;
  return total;
}

void OracleForward(const OracleProblem& p, const std::vector<double>& q,
                   const std::vector<double>& k, const std::vector<double>& v,
                   std::vector<double>* out, std::vector<double>* lse) {
  const double groups = static_cast<double>(p.segment_lengths.size());
  out->assign(p.NumElements(), 0.0);
  lse->assign(p.Rows() * p.num_heads, -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < Sequences(p); ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t n = 0; n < SeqLen(p, b); ++n) {
        const RowKeys keys = KeysOf(p, b, h, n);
        if (keys.positions.empty()) continue;
        double row_lse = 0.0;
        const std::vector<double> probs =
            Probabilities(p, q, k, b, n, h, keys, &row_lse);
        (*lse)[LseIndex(p, b, h, n)] = row_lse;
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
  for (int64_t b = 0; b < Sequences(p); ++b) {
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t n = 0; n < SeqLen(p, b); ++n) {
        const RowKeys keys = KeysOf(p, b, h, n);
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
