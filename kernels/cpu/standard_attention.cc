#include "kernels/cpu/standard_attention.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/row_io.h"
#include "kernels/dropout_rng.h"
#include "kernels/problem_list.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

using RowMatrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Matrix = Eigen::Map<RowMatrix, Eigen::Aligned16>;

// Hands out consecutive matrices from one thread's slice of the workspace.
class Carver {
 public:
  explicit Carver(float* next) : next_(next) {}
  Matrix Take(int64_t rows, int64_t cols) {
    float* data = next_;
    next_ += RoundUp(rows * cols);
    return Matrix(data, rows, cols);
  }
  float* TakeVector(int64_t size) {
    float* data = next_;
    next_ += RoundUp(size);
    return data;
  }
  // Keeps every matrix 64-byte aligned: 16 floats.
  static int64_t RoundUp(int64_t floats) { return (floats + 15) / 16 * 16; }

 private:
  float* next_;
};

int64_t LargestPositions(const ForwardParams& p) {
  int64_t largest = 0;
  for (int gi = 0; gi < p.num_groups; ++gi) {
    largest = std::max(largest, p.groups[gi].positions);
  }
  return largest;
}

// The rows of one problem on one head, and where row j lives in tensor t.
struct Block {
  const Problem* problem;
  int64_t head;

  void* Row(const TensorParams& t, DataType dtype, int64_t j) const {
    return RowAddress(t, dtype, problem->b,
                      problem->row_base + problem->Position(j), head);
  }
};

// The blocks of a call: every problem on every head of its group.
class BlockList {
 public:
  explicit BlockList(const ProblemList& problems) : problems_(problems) {
    begin_.push_back(0);
    for (const Problem& problem : problems.problems()) {
      begin_.push_back(begin_.back() + problem.group->num_heads);
    }
  }
  int64_t size() const { return begin_.back(); }
  Block Decode(int64_t index) const {
    const int64_t pi = std::upper_bound(begin_.begin(), begin_.end(), index) -
                       begin_.begin() - 1;
    const Problem& problem = problems_.problems()[pi];
    return Block{&problem, problem.group->head_begin + index - begin_[pi]};
  }

 private:
  const ProblemList& problems_;
  std::vector<int64_t> begin_;
};

// Copies the block's rows of t into the first rows of dst.
void Gather(const TensorParams& t, DataType dtype, const Block& block,
            Matrix* dst) {
  for (int64_t j = 0; j < block.problem->length; ++j) {
    LoadRow(block.Row(t, dtype, j), dtype, dst->cols(), dst->row(j).data());
  }
}

void Scatter(const Matrix& src, const Block& block, DataType dtype,
             const TensorParams& t) {
  for (int64_t j = 0; j < block.problem->length; ++j) {
    StoreRow(src.row(j).data(), dtype, src.cols(), block.Row(t, dtype, j));
  }
}

// Turns scaled scores into probabilities row by row, masking keys after the
// query when causal; writes each row's log-sum-exp to lse[row].
void SoftmaxRows(bool is_causal, Matrix* scores, float* lse) {
  const int64_t rows = scores->rows();
  for (int64_t i = 0; i < rows; ++i) {
    float* row = scores->row(i).data();
    const int64_t allowed = is_causal ? i + 1 : scores->cols();
    float max_score = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < allowed; ++j)
      max_score = std::max(max_score, row[j]);
    float sum = 0.0f;
    for (int64_t j = 0; j < allowed; ++j) {
      row[j] = std::exp(row[j] - max_score);
      sum += row[j];
    }
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < allowed; ++j) row[j] *= inverse;
    for (int64_t j = allowed; j < scores->cols(); ++j) row[j] = 0.0f;
    lse[i] = max_score + std::log(sum);
  }
}

// Writes the dropout factors of the block (kernels/dropout_rng.h): element
// (i, j) multiplies the probability of row i attending row j.
void DropoutFactors(const ForwardParams& p, const Block& block,
                    Matrix* factors) {
  const Problem& problem = *block.problem;
  for (int64_t i = 0; i < problem.length; ++i) {
    for (int64_t j = 0; j < problem.length; ++j) {
      (*factors)(i, j) =
          DropoutFactor(p.dropout, problem.b, p.num_heads, block.head,
                        problem.Position(i), problem.Position(j));
    }
  }
}

// Computes the probabilities of one block from q and k.
void Probabilities(const ForwardParams& p, const Matrix& q, const Matrix& k,
                   Matrix* probs, float* lse) {
  probs->noalias() = q * k.transpose();
  *probs *= p.softmax_scale;
  SoftmaxRows(p.is_causal, probs, lse);
}

}  // namespace

int64_t StandardWorkspacePerThread(const ForwardParams& p, bool backward) {
  const int64_t length = LargestPositions(p);
  const int64_t rows = Carver::RoundUp(length * p.head_dim);
  const int64_t square = Carver::RoundUp(length * length);
  const int64_t vector = Carver::RoundUp(length);
  // Dropout adds one square: the factors.
  const int64_t squares = (backward ? 2 : 1) + (p.dropout.enabled ? 1 : 0);
  return backward ? 7 * rows + squares * square + 2 * vector
                  : 4 * rows + squares * square + vector;
}

void StandardForward(const ForwardParams& p, float* workspace,
                     int num_threads) {
  const int64_t per_thread = StandardWorkspacePerThread(p, false);
  ZeroTensor(p.out, p.dtype, StorageBatch(p), p.seq_len, p.num_heads,
             p.head_dim);
  FillLseWithNegativeInfinity(p);
  const ProblemList problems(p);
  const BlockList blocks(problems);
#pragma omp parallel num_threads(num_threads)
  {
    float* const thread_workspace =
        workspace + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic)
    for (int64_t index = 0; index < blocks.size(); ++index) {
      const Block block = blocks.Decode(index);
      const int64_t length = block.problem->length;
      if (length == 0) continue;
      Carver carver(thread_workspace);
      Matrix q = carver.Take(length, p.head_dim);
      Matrix k = carver.Take(length, p.head_dim);
      Matrix v = carver.Take(length, p.head_dim);
      Matrix o = carver.Take(length, p.head_dim);
      Matrix probs = carver.Take(length, length);
      float* lse = carver.TakeVector(length);
      Gather(p.q, p.dtype, block, &q);
      Gather(p.k, p.dtype, block, &k);
      Gather(p.v, p.dtype, block, &v);
      Probabilities(p, q, k, &probs, lse);
      if (p.dropout.enabled) {
        Matrix factors = carver.Take(length, length);
        DropoutFactors(p, block, &factors);
        probs = probs.cwiseProduct(factors);
      }
      o.noalias() = probs * v;
      o *= p.output_scale;
      Scatter(o, block, p.dtype, p.out);
      if (p.lse != nullptr) {
        float* lse_row = p.lse + block.problem->b * p.lse_stride_b +
                         block.head * p.lse_stride_h + block.problem->row_base;
        for (int64_t j = 0; j < length; ++j) {
          lse_row[block.problem->Position(j)] = lse[j];
        }
      }
    }
  }
}

void StandardBackward(const BackwardParams& bp, float* workspace,
                      int num_threads) {
  const ForwardParams& p = bp.forward;
  const int64_t per_thread = StandardWorkspacePerThread(p, true);
  for (const TensorParams* grad : {&bp.grad_q, &bp.grad_k, &bp.grad_v}) {
    ZeroTensor(*grad, p.dtype, StorageBatch(p), p.seq_len, p.num_heads,
               p.head_dim);
  }
  const ProblemList problems(p);
  const BlockList blocks(problems);
#pragma omp parallel num_threads(num_threads)
  {
    float* const thread_workspace =
        workspace + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic)
    for (int64_t index = 0; index < blocks.size(); ++index) {
      const Block block = blocks.Decode(index);
      const int64_t length = block.problem->length;
      if (length == 0) continue;
      Carver carver(thread_workspace);
      Matrix q = carver.Take(length, p.head_dim);
      Matrix k = carver.Take(length, p.head_dim);
      Matrix v = carver.Take(length, p.head_dim);
      Matrix grad_o = carver.Take(length, p.head_dim);
      Matrix grad_q = carver.Take(length, p.head_dim);
      Matrix grad_k = carver.Take(length, p.head_dim);
      Matrix grad_v = carver.Take(length, p.head_dim);
      Matrix probs = carver.Take(length, length);
      Matrix grad_s = carver.Take(length, length);
      float* lse = carver.TakeVector(length);
      Eigen::Map<Eigen::VectorXf> row_dot(carver.TakeVector(length), length);
      Gather(p.q, p.dtype, block, &q);
      Gather(p.k, p.dtype, block, &k);
      Gather(p.v, p.dtype, block, &v);
      Gather(bp.grad_out, p.dtype, block, &grad_o);
      Probabilities(p, q, k, &probs, lse);
      // out = c * P V with c = output_scale, so dV = c P^T dO and
      // dP = c dO V^T; the softmax gives dS = P o (dP - rowsum(dP o P)).
      // With dropout factors M, out = c (P o M) V: dV = c (P o M)^T dO and
      // dP = c (dO V^T) o M.
      grad_s.noalias() = grad_o * v.transpose();
      grad_s *= p.output_scale;
      if (p.dropout.enabled) {
        Matrix factors = carver.Take(length, length);
        DropoutFactors(p, block, &factors);
        grad_v.noalias() = probs.cwiseProduct(factors).transpose() * grad_o;
        grad_s = grad_s.cwiseProduct(factors);
      } else {
        grad_v.noalias() = probs.transpose() * grad_o;
      }
      grad_v *= p.output_scale;
      row_dot = grad_s.cwiseProduct(probs).rowwise().sum();
      grad_s = probs.cwiseProduct(grad_s.colwise() - row_dot);
      grad_q.noalias() = grad_s * k;
      grad_q *= p.softmax_scale;
      grad_k.noalias() = grad_s.transpose() * q;
      grad_k *= p.softmax_scale;
      Scatter(grad_q, block, p.dtype, bp.grad_q);
      Scatter(grad_k, block, p.dtype, bp.grad_k);
      Scatter(grad_v, block, p.dtype, bp.grad_v);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
