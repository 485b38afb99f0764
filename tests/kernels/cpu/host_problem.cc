#include "tests/kernels/cpu/host_problem.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "attention/config.h"
#include "attention/params_builder.h"
#include "kernels/numeric.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace testing {
namespace {

// 0xff bytes: NaN as float32, float16 and bfloat16.
constexpr unsigned char kSentinel = 0xff;

int64_t ElementSize(DataType dtype) {
  return dtype == DataType::kFloat32 ? 4 : 2;
}

}  // namespace

double RoundTo(DataType dtype, double value) {
  const float f = static_cast<float>(value);
  switch (dtype) {
    case DataType::kFloat32:
      return f;
    case DataType::kFloat16:
      return HalfToFloat(FloatToHalf(f));
    case DataType::kBFloat16:
      return BFloat16ToFloat(FloatToBFloat16(f));
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return value;
}

std::string DataTypeName(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat16:
      return "float16";
    case DataType::kBFloat16:
      return "bfloat16";
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return "unknown";
}

HostTensor::HostTensor(DataType dtype, int64_t batch, int64_t seq,
                       int64_t heads, int64_t head_dim, Layout layout)
    : dtype_(dtype),
      batch_(batch),
      seq_(seq),
      heads_(heads),
      head_dim_(head_dim) {
  int64_t elements = 0;
  switch (layout) {
    case Layout::kContiguous:
      stride_h_ = head_dim;
      stride_n_ = heads * stride_h_;
      stride_b_ = seq * stride_n_;
      elements = batch * stride_b_;
      break;
    case Layout::kPadded:
      stride_h_ = head_dim + 3;
      stride_n_ = heads * stride_h_ + 5;
      stride_b_ = seq * stride_n_ + 7;
      elements = batch * stride_b_ + 1;
      break;
    case Layout::kHeadMajor:
      stride_n_ = head_dim;
      stride_h_ = seq * stride_n_;
      stride_b_ = heads * stride_h_;
      elements = batch * stride_b_;
      break;
  }
  bytes_.assign(elements * ElementSize(dtype), kSentinel);
}

int64_t HostTensor::ElementOffset(int64_t b, int64_t n, int64_t h) const {
  return b * stride_b_ + n * stride_n_ + h * stride_h_;
}

void HostTensor::Upload(const std::vector<double>& values) {
  int64_t index = 0;
  for (int64_t b = 0; b < batch_; ++b) {
    for (int64_t n = 0; n < seq_; ++n) {
      for (int64_t h = 0; h < heads_; ++h) {
        for (int64_t a = 0; a < head_dim_; ++a) {
          const float f = static_cast<float>(values[index++]);
          unsigned char* dst = bytes_.data() + (ElementOffset(b, n, h) + a) *
                                                   ElementSize(dtype_);
          if (dtype_ == DataType::kFloat32) {
            std::memcpy(dst, &f, 4);
          } else {
            const uint16_t bits = dtype_ == DataType::kFloat16
                                      ? FloatToHalf(f)
                                      : FloatToBFloat16(f);
            std::memcpy(dst, &bits, 2);
          }
        }
      }
    }
  }
}

std::vector<double> HostTensor::Download() const {
  std::vector<double> values;
  values.reserve(batch_ * seq_ * heads_ * head_dim_);
  for (int64_t b = 0; b < batch_; ++b) {
    for (int64_t n = 0; n < seq_; ++n) {
      for (int64_t h = 0; h < heads_; ++h) {
        for (int64_t a = 0; a < head_dim_; ++a) {
          const unsigned char* src =
              bytes_.data() +
              (ElementOffset(b, n, h) + a) * ElementSize(dtype_);
          if (dtype_ == DataType::kFloat32) {
            float f;
            std::memcpy(&f, src, 4);
            values.push_back(f);
          } else {
            uint16_t bits;
            std::memcpy(&bits, src, 2);
            values.push_back(dtype_ == DataType::kFloat16
                                 ? HalfToFloat(bits)
                                 : BFloat16ToFloat(bits));
          }
        }
      }
    }
  }
  return values;
}

void HostTensor::FillWithSentinel() {
  std::fill(bytes_.begin(), bytes_.end(), kSentinel);
}

bool HostTensor::GapsIntact() const {
  std::vector<bool> is_element(bytes_.size(), false);
  const int64_t size = ElementSize(dtype_);
  for (int64_t b = 0; b < batch_; ++b) {
    for (int64_t n = 0; n < seq_; ++n) {
      for (int64_t h = 0; h < heads_; ++h) {
        const int64_t begin = ElementOffset(b, n, h) * size;
        for (int64_t i = 0; i < head_dim_ * size; ++i) {
          is_element[begin + i] = true;
        }
      }
    }
  }
  for (size_t i = 0; i < bytes_.size(); ++i) {
    if (!is_element[i] && bytes_[i] != kSentinel) return false;
  }
  return true;
}

TensorParams HostTensor::params() const {
  return TensorParams{const_cast<unsigned char*>(bytes_.data()), stride_b_,
                      stride_n_, stride_h_};
}

HostProblem::HostProblem(const ProblemShape& shape, DataType dtype,
                         bool is_causal, uint32_t seed)
    : q(dtype, shape.batch, shape.seq_len, shape.num_heads, shape.head_dim,
        shape.layout),
      k(q),
      v(q),
      out(q),
      grad_out(q),
      grad_q(q),
      grad_k(q),
      grad_v(q),
      lse(shape.batch * shape.num_heads * shape.seq_len),
      shape_(shape),
      dtype_(dtype),
      is_causal_(is_causal) {
  std::mt19937 rng(seed);
  const int64_t count =
      shape.batch * shape.seq_len * shape.num_heads * shape.head_dim;
  auto random = [&](double range) {
    std::uniform_real_distribution<double> uniform(-range, range);
    std::vector<double> values(count);
    for (double& x : values) x = RoundTo(dtype, uniform(rng));
    return values;
  };
  // Range 2 for q and k: peaked softmax rows, so a wrong key set shows.
  q_values = random(2.0);
  k_values = random(2.0);
  v_values = random(1.0);
  grad_out_values = random(1.0);
  q.Upload(q_values);
  k.Upload(k_values);
  v.Upload(v_values);
  grad_out.Upload(grad_out_values);
  PoisonOutputs();
}

void HostProblem::PoisonOutputs() {
  for (HostTensor* t : {&out, &grad_q, &grad_k, &grad_v}) t->FillWithSentinel();
  std::fill(lse.begin(), lse.end(), std::numeric_limits<float>::quiet_NaN());
}

ForwardParams HostProblem::Forward() {
  AttentionConfig config;
  config.segment_lengths = shape_.segment_lengths;
  config.dilation_rates = shape_.dilation_rates;
  ForwardParams p{};
  p.q = q.params();
  p.k = k.params();
  p.v = v.params();
  p.out = out.params();
  p.lse = lse.data();
  p.lse_stride_b = shape_.num_heads * shape_.seq_len;
  p.lse_stride_h = shape_.seq_len;
  p.batch = shape_.batch;
  p.seq_len = shape_.seq_len;
  p.num_heads = shape_.num_heads;
  p.head_dim = shape_.head_dim;
  p.dtype = dtype_;
  p.softmax_scale =
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape_.head_dim)));
  p.output_scale = 1.0f / static_cast<float>(config.num_groups());
  p.is_causal = is_causal_;
  p.num_groups = config.num_groups();
  const std::vector<GroupParams> groups =
      PartitionHeads(config, shape_.num_heads);
  for (int i = 0; i < p.num_groups; ++i) p.groups[i] = groups[i];
  return p;
}

BackwardParams HostProblem::Backward() {
  BackwardParams bp{};
  bp.forward = Forward();
  bp.grad_out = grad_out.params();
  bp.grad_q = grad_q.params();
  bp.grad_k = grad_k.params();
  bp.grad_v = grad_v.params();
  return bp;
}

dilated::testing::OracleProblem HostProblem::Oracle() const {
  dilated::testing::OracleProblem o;
  o.batch = shape_.batch;
  o.seq_len = shape_.seq_len;
  o.num_heads = shape_.num_heads;
  o.head_dim = shape_.head_dim;
  o.segment_lengths = shape_.segment_lengths;
  o.dilation_rates = shape_.dilation_rates;
  o.is_causal = is_causal_;
  o.softmax_scale = 1.0 / std::sqrt(static_cast<double>(shape_.head_dim));
  return o;
}

}  // namespace testing
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
