#include "tests/cuda/naive_oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dilated {
namespace testing {
namespace {

// The selected positions of one (group, segment) and the group's heads.
struct Selection {
  int64_t head_begin;
  int64_t num_heads;
  std::vector<int64_t> positions;
};

// Returns, for every group, its heads and a function of the segment index.
std::vector<Selection> Groups(const OracleShape& s, int64_t segment_index,
                              std::vector<int64_t>* segment_counts) {
  const int64_t groups = static_cast<int64_t>(s.segments.size());
  std::vector<Selection> result;
  int64_t head = 0;
  segment_counts->clear();
  for (int64_t i = 0; i < groups; ++i) {
    Selection sel;
    sel.head_begin = head;
    sel.num_heads = s.heads / groups + (i < s.heads % groups ? 1 : 0);
    head += sel.num_heads;
    const int64_t length = s.segments[i];
    const int64_t rate = s.rates[i];
    const int64_t offset = i % rate;
    segment_counts->push_back(s.seq / length);
    if (segment_index < s.seq / length) {
      for (int64_t p = offset; p < length; p += rate) {
        sel.positions.push_back(segment_index * length + p);
      }
    }
    result.push_back(sel);
  }
  return result;
}

int64_t Index(const OracleShape& s, int64_t b, int64_t n, int64_t h) {
  return ((b * s.seq + n) * s.heads + h) * s.head_dim;
}

// Probabilities [L x L] of one problem (row-major; zeros where masked) and
// the log-sum-exp of each row.
void Probabilities(const OracleShape& s, const std::vector<double>& q,
                   const std::vector<double>& k, int64_t b, int64_t h,
                   const std::vector<int64_t>& pos, std::vector<double>* probs,
                   std::vector<double>* lse) {
  const int64_t l = static_cast<int64_t>(pos.size());
  probs->assign(l * l, 0.0);
  lse->assign(l, 0.0);
  for (int64_t i = 0; i < l; ++i) {
    const int64_t allowed = s.causal ? i + 1 : l;
    double max_score = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < allowed; ++j) {
      double dot = 0.0;
      for (int64_t d = 0; d < s.head_dim; ++d) {
        dot += q[Index(s, b, pos[i], h) + d] * k[Index(s, b, pos[j], h) + d];
      }
      (*probs)[i * l + j] = s.scale * dot;
      max_score = std::max(max_score, s.scale * dot);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < allowed; ++j) {
      sum += std::exp((*probs)[i * l + j] - max_score);
    }
    for (int64_t j = 0; j < allowed; ++j) {
      (*probs)[i * l + j] = std::exp((*probs)[i * l + j] - max_score) / sum;
    }
    (*lse)[i] = max_score + std::log(sum);
  }
}

// Calls f(b, h, positions) for every (batch, group, segment, head) problem.
template <class F>
void ForEachProblem(const OracleShape& s, F f) {
  int64_t max_segments = 0;
  for (int64_t length : s.segments) {
    max_segments = std::max(max_segments, s.seq / length);
  }
  std::vector<int64_t> counts;
  for (int64_t m = 0; m < max_segments; ++m) {
    for (const Selection& sel : Groups(s, m, &counts)) {
      if (sel.positions.empty()) continue;
      for (int64_t b = 0; b < s.batch; ++b) {
        for (int64_t h = sel.head_begin; h < sel.head_begin + sel.num_heads;
             ++h) {
          f(b, h, sel.positions);
        }
      }
    }
  }
}

}  // namespace

OracleForward NaiveForward(const OracleShape& s, const std::vector<double>& q,
                           const std::vector<double>& k,
                           const std::vector<double>& v) {
  OracleForward result;
  result.out.assign(q.size(), 0.0);
  result.lse.assign(s.batch * s.heads * s.seq,
                    -std::numeric_limits<double>::infinity());
  const double c = 1.0 / static_cast<double>(s.segments.size());
  std::vector<double> probs, lse;
  ForEachProblem(s, [&](int64_t b, int64_t h, const std::vector<int64_t>& pos) {
    Probabilities(s, q, k, b, h, pos, &probs, &lse);
    const int64_t l = static_cast<int64_t>(pos.size());
    for (int64_t i = 0; i < l; ++i) {
      for (int64_t d = 0; d < s.head_dim; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < l; ++j) {
          acc += probs[i * l + j] * v[Index(s, b, pos[j], h) + d];
        }
        result.out[Index(s, b, pos[i], h) + d] = c * acc;
      }
      result.lse[(b * s.heads + h) * s.seq + pos[i]] = lse[i];
    }
  });
  return result;
}

OracleGradients NaiveBackward(const OracleShape& s,
                              const std::vector<double>& q,
                              const std::vector<double>& k,
                              const std::vector<double>& v,
                              const std::vector<double>& grad_out) {
  OracleGradients g;
  g.q.assign(q.size(), 0.0);
  g.k.assign(q.size(), 0.0);
  g.v.assign(q.size(), 0.0);
  const double c = 1.0 / static_cast<double>(s.segments.size());
  std::vector<double> probs, lse;
  ForEachProblem(s, [&](int64_t b, int64_t h, const std::vector<int64_t>& pos) {
    Probabilities(s, q, k, b, h, pos, &probs, &lse);
    const int64_t l = static_cast<int64_t>(pos.size());
    const int64_t dim = s.head_dim;
    // dP[i][j] = c * dO_i . V_j; dS = P o (dP - rowsum(P o dP)).
    std::vector<double> ds(l * l, 0.0);
    for (int64_t i = 0; i < l; ++i) {
      double row = 0.0;
      for (int64_t j = 0; j < l; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < dim; ++d) {
          dot += grad_out[Index(s, b, pos[i], h) + d] *
                 v[Index(s, b, pos[j], h) + d];
        }
        ds[i * l + j] = c * dot;
        row += probs[i * l + j] * c * dot;
      }
      for (int64_t j = 0; j < l; ++j) {
        ds[i * l + j] = probs[i * l + j] * (ds[i * l + j] - row);
      }
    }
    for (int64_t i = 0; i < l; ++i) {
      for (int64_t j = 0; j < l; ++j) {
        const double p = probs[i * l + j];
        const double d_s = ds[i * l + j];
        for (int64_t d = 0; d < dim; ++d) {
          g.v[Index(s, b, pos[j], h) + d] +=
              c * p * grad_out[Index(s, b, pos[i], h) + d];
          g.q[Index(s, b, pos[i], h) + d] +=
              s.scale * d_s * k[Index(s, b, pos[j], h) + d];
          g.k[Index(s, b, pos[j], h) + d] +=
              s.scale * d_s * q[Index(s, b, pos[i], h) + d];
        }
      }
    }
  });
  return g;
}

}  // namespace testing
}  // namespace dilated
