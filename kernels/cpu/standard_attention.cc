#include "kernels/cpu/standard_attention.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/row_io.h"

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

// One dense attention problem: (batch b, segment m, head) of one group.
struct Block {
  int64_t b;
  int64_t m;
  int64_t head;
};

Block DecodeBlock(int64_t index, const GroupParams& g, int64_t segments) {
  Block block;
  block.head = g.head_begin + index % g.num_heads;
  index /= g.num_heads;
  block.m = index % segments;
  block.b = index / segments;
  return block;
}

int64_t Position(const GroupParams& g, const Block& block, int64_t j) {
  return block.m * g.segment_length + g.offset + j * g.dilation_rate;
}

void Gather(const TensorParams& t, DataType dtype, const GroupParams& g,
            const Block& block, Matrix* dst) {
  for (int64_t j = 0; j < g.positions; ++j) {
    LoadRow(RowAddress(t, dtype, block.b, Position(g, block, j), block.head),
            dtype, dst->cols(), dst->row(j).data());
  }
}

void Scatter(const Matrix& src, const GroupParams& g, const Block& block,
             DataType dtype, const TensorParams& t) {
  for (int64_t j = 0; j < g.positions; ++j) {
    StoreRow(src.row(j).data(), dtype, src.cols(),
             RowAddress(t, dtype, block.b, Position(g, block, j), block.head));
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
  return backward ? 7 * rows + 2 * square + 2 * vector
                  : 4 * rows + square + vector;
}

void StandardForward(const ForwardParams& p, float* workspace,
                     int num_threads) {
  const int64_t per_thread = StandardWorkspacePerThread(p, false);
  ZeroTensor(p.out, p.dtype, p.batch, p.seq_len, p.num_heads, p.head_dim);
  FillLseWithNegativeInfinity(p);
  for (int gi = 0; gi < p.num_groups; ++gi) {
    const GroupParams& g = p.groups[gi];
    if (g.positions == 0 || g.num_heads == 0) continue;
    const int64_t segments = p.seq_len / g.segment_length;
    const int64_t blocks = p.batch * segments * g.num_heads;
    const int64_t length = g.positions;
#pragma omp parallel num_threads(num_threads)
    {
      Carver carver(workspace + omp_get_thread_num() * per_thread);
      Matrix q = carver.Take(length, p.head_dim);
      Matrix k = carver.Take(length, p.head_dim);
      Matrix v = carver.Take(length, p.head_dim);
      Matrix o = carver.Take(length, p.head_dim);
      Matrix probs = carver.Take(length, length);
      float* lse = carver.TakeVector(length);
#pragma omp for schedule(dynamic)
      for (int64_t index = 0; index < blocks; ++index) {
        const Block block = DecodeBlock(index, g, segments);
        Gather(p.q, p.dtype, g, block, &q);
        Gather(p.k, p.dtype, g, block, &k);
        Gather(p.v, p.dtype, g, block, &v);
        Probabilities(p, q, k, &probs, lse);
        o.noalias() = probs * v;
        o *= p.output_scale;
        Scatter(o, g, block, p.dtype, p.out);
        if (p.lse != nullptr) {
          float* lse_row =
              p.lse + block.b * p.lse_stride_b + block.head * p.lse_stride_h;
          for (int64_t j = 0; j < length; ++j) {
            lse_row[Position(g, block, j)] = lse[j];
          }
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
    ZeroTensor(*grad, p.dtype, p.batch, p.seq_len, p.num_heads, p.head_dim);
  }
  for (int gi = 0; gi < p.num_groups; ++gi) {
    const GroupParams& g = p.groups[gi];
    if (g.positions == 0 || g.num_heads == 0) continue;
    const int64_t segments = p.seq_len / g.segment_length;
    const int64_t blocks = p.batch * segments * g.num_heads;
    const int64_t length = g.positions;
#pragma omp parallel num_threads(num_threads)
    {
      Carver carver(workspace + omp_get_thread_num() * per_thread);
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
#pragma omp for schedule(dynamic)
      for (int64_t index = 0; index < blocks; ++index) {
        const Block block = DecodeBlock(index, g, segments);
        Gather(p.q, p.dtype, g, block, &q);
        Gather(p.k, p.dtype, g, block, &k);
        Gather(p.v, p.dtype, g, block, &v);
        Gather(bp.grad_out, p.dtype, g, block, &grad_o);
        Probabilities(p, q, k, &probs, lse);
        // out = c * P V with c = output_scale, so dV = c P^T dO and
        // dP = c dO V^T; the softmax gives dS = P o (dP - rowsum(dP o P)).
        grad_v.noalias() = probs.transpose() * grad_o;
        grad_v *= p.output_scale;
        grad_s.noalias() = grad_o * v.transpose();
        grad_s *= p.output_scale;
        row_dot = grad_s.cwiseProduct(probs).rowwise().sum();
        grad_s = probs.cwiseProduct(grad_s.colwise() - row_dot);
        grad_q.noalias() = grad_s * k;
        grad_q *= p.softmax_scale;
        grad_k.noalias() = grad_s.transpose() * q;
        grad_k *= p.softmax_scale;
        Scatter(grad_q, g, block, p.dtype, bp.grad_q);
        Scatter(grad_k, g, block, p.dtype, bp.grad_k);
        Scatter(grad_v, g, block, p.dtype, bp.grad_v);
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
