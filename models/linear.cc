#include "models/linear.h"

#include <Eigen/Core>
#include <algorithm>

#include "factory/status_macros.h"
#include "kernels/cpu/linear_gemm.h"

namespace dilated {
namespace models {
namespace {

using RowMatrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Writes x W^T + b into y (row-major float32), then max(y, 0) when `relu`:
// x is [rows, in], w is [out, in], b (may be null) is [out], y is
// [rows, out]. The GEMM of kernels/cpu/linear_gemm.h; Eigen if its packed
// weights cannot be allocated.
void Gemm(const float* x, int64_t rows, int64_t in, const float* w,
          const float* b, int64_t out, bool relu, float* y) {
  kernels::cpu::LinearEpilogue epilogue;
  epilogue.bias = b;
  epilogue.relu = relu;
  if (kernels::cpu::LinearGemmFloat32(x, rows, in, in, w, out, epilogue, y,
                                      out)) {
    return;
  }
  Eigen::Map<const RowMatrix> x_map(x, rows, in);
  Eigen::Map<const RowMatrix> w_map(w, out, in);
  Eigen::Map<RowMatrix> y_map(y, rows, out);
  y_map.noalias() = x_map * w_map.transpose();
  if (b != nullptr) {
    Eigen::Map<const Eigen::RowVectorXf> b_map(b, out);
    y_map.rowwise() += b_map;
  }
  if (relu) y_map = y_map.cwiseMax(0.0f);
}

}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : weight_(Parameter::Filled({out_features, in_features}, 0.0f)),
      bias_(bias ? Parameter::Filled({out_features}, 0.0f) : Parameter()),
      has_bias_(bias) {}

Tensor Linear::Forward(const Tensor& x) const {
  return ForwardSlice(x, 0, out_features());
}

Tensor Linear::ForwardSlice(const Tensor& x, int64_t begin, int64_t end) const {
  return Compute(x, begin, end, /*relu=*/false);
}

Tensor Linear::ForwardRelu(const Tensor& x) const {
  return Compute(x, 0, out_features(), /*relu=*/true);
}

Tensor Linear::Compute(const Tensor& x, int64_t begin, int64_t end,
                       bool relu) const {
  DA_CHECK(x.rank() >= 1 && x.dim(-1) == in_features(),
           "Linear input's last axis must be in_features");
  DA_CHECK(0 <= begin && begin < end && end <= out_features(),
           "Linear output slice out of range");
  const int64_t in = in_features();
  const int64_t out = end - begin;
  std::vector<int64_t> shape = x.shape();
  shape.back() = out;
  Tensor y = Tensor::Uninitialized(x.dtype(), shape);
  const int64_t rows = x.NumElements() / in;
  const float* w = weight_.values.data() + begin * in;
  const float* b = has_bias_ ? bias_.values.data() + begin : nullptr;
  if (x.dtype() == DType::kFloat32) {
    Gemm(x.Float32(), rows, in, w, b, out, relu, y.MutableFloat32());
    return y;
  }
  const std::vector<float> x32 = x.ToFloat32();
  std::vector<float> y32(y.NumElements());
  Gemm(x32.data(), rows, in, w, b, out, relu, y32.data());
  y.AssignFromFloat32(y32);
  return y;
}

void Linear::Reset(double gain, Rng* rng) {
  XavierNormal(gain, &weight_, rng);
  std::fill(bias_.values.begin(), bias_.values.end(), 0.0f);
}

void Linear::AppendParameters(const std::string& prefix,
                              std::vector<NamedParameter>* out) {
  out->push_back({prefix + "weight", &weight_});
  if (has_bias_) out->push_back({prefix + "bias", &bias_});
}

}  // namespace models
}  // namespace dilated
