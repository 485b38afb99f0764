#include "tests/testing/dropout_oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/dropout_rng.h"

namespace dilated {
namespace testing {
namespace {

// The keep factor of (query, key) in float64: the mask contract of
// kernels/dropout_rng.h evaluated directly.
double KeepFactor(const DropoutOracleProblem& problem, int64_t b, int64_t head,
                  int64_t query, int64_t key) {
  if (problem.dropout <= 0.0) return 1.0;
  kernels::DropoutParams stream{};
  stream.seed = problem.seed;
  stream.offset = problem.offset;
  const uint32_t bits = kernels::DropoutRandomBits(stream, b, problem.num_heads,
                                                   head, query, key);
  const double threshold = std::floor(problem.dropout * 4294967296.0);
  return static_cast<double>(bits) < threshold ? 0.0
                                               : 1.0 / (1.0 - problem.dropout);
}

}  // namespace

void DropoutOracleForward(const DropoutOracleProblem& problem,
                          const std::vector<double>& q,
                          const std::vector<double>& k,
                          const std::vector<double>& v,
                          std::vector<double>* out, std::vector<double>* lse) {
  const int64_t n = problem.seq_len;
  const int64_t h = problem.num_heads;
  const int64_t d = problem.head_dim;
  const int64_t groups = problem.segment_lengths.size();
  out->assign(problem.NumElements(), 0.0);
  lse->assign(problem.batch * h * n, -std::numeric_limits<double>::infinity());
  auto at = [&](int64_t b, int64_t pos, int64_t head) {
    return ((b * n + pos) * h + head) * d;
  };
  int64_t head_begin = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t heads = h / groups + (g < h % groups ? 1 : 0);
    const int64_t s = problem.segment_lengths[g];
    const int64_t r = problem.dilation_rates[g];
    const int64_t o = g % r;
    for (int64_t b = 0; b < problem.batch; ++b) {
      for (int64_t head = head_begin; head < head_begin + heads; ++head) {
        for (int64_t p = 0; p < n; ++p) {
          const int64_t start = p / s * s;
          if ((p - start) < o || (p - start - o) % r != 0) continue;
          std::vector<int64_t> keys;
          for (int64_t key = start + o; key < std::min(start + s, n);
               key += r) {
            if (!problem.is_causal || key <= p) keys.push_back(key);
          }
          std::vector<double> scores;
          for (int64_t key : keys) {
            double dot = 0.0;
            for (int64_t a = 0; a < d; ++a) {
              dot += q[at(b, p, head) + a] * k[at(b, key, head) + a];
            }
            scores.push_back(problem.softmax_scale * dot);
          }
          const double max = *std::max_element(scores.begin(), scores.end());
          double sum = 0.0;
          for (double score : scores) sum += std::exp(score - max);
          for (size_t e = 0; e < keys.size(); ++e) {
            const double weight = std::exp(scores[e] - max) / sum *
                                  KeepFactor(problem, b, head, p, keys[e]);
            for (int64_t a = 0; a < d; ++a) {
              (*out)[at(b, p, head) + a] +=
                  weight * v[at(b, keys[e], head) + a] / groups;
            }
          }
          (*lse)[(b * h + head) * n + p] = max + std::log(sum);
        }
      }
    }
    head_begin += heads;
  }
}

}  // namespace testing
}  // namespace dilated
