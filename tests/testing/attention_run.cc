#include "tests/testing/attention_run.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace testing {

AttentionResults RunAttention(Attention& attention, TestDevice* device,
                              DType dtype, Layout layout,
                              const AttentionInputs& in) {
  const std::vector<int64_t>& shape = in.shape;
  TestTensor q(device, dtype, shape, layout);
  TestTensor k(device, dtype, shape, layout);
  TestTensor v(device, dtype, shape, layout);
  TestTensor out(device, dtype, shape, layout);
  TestTensor grad_out(device, dtype, shape, layout);
  TestTensor grad_q(device, dtype, shape, layout);
  TestTensor grad_k(device, dtype, shape, layout);
  TestTensor grad_v(device, dtype, shape, layout);
  TestTensor lse(device, DType::kFloat32, {shape[0], shape[2], shape[1]});
  q.Upload(in.q);
  k.Upload(in.k);
  v.Upload(in.v);
  grad_out.Upload(in.grad_out);
  ForwardOptions options;
  options.is_causal = in.is_causal;
  options.training = in.training;
  options.dropout_seed = in.dropout_seed;
  options.dropout_offset = in.dropout_offset;
  const DeviceBytes mask(device, in.key_padding_mask.data(),
                         in.key_padding_mask.size());
  if (!in.key_padding_mask.empty()) {
    options.key_padding_mask = TensorView::Contiguous(
        mask.data(), DType::kBool, {shape[0], shape[1]}, device->device());
  }
  AttentionResults results;
  results.forward = attention.Forward(q.view(), k.view(), v.view(), out.view(),
                                      options, &lse.view());
  if (!results.forward.ok()) return results;
  results.out = out.Download();
  results.lse = lse.Download();
  results.backward = attention.Backward(
      q.view(), k.view(), v.view(), out.view(), lse.view(), grad_out.view(),
      grad_q.view(), grad_k.view(), grad_v.view(), options);
  if (results.backward.ok()) {
    results.grad_q = grad_q.Download();
    results.grad_k = grad_k.Download();
    results.grad_v = grad_v.Download();
  }
  for (const TestTensor* t : {&out, &grad_q, &grad_k, &grad_v}) {
    results.padding_intact = results.padding_intact && t->PaddingIntact();
  }
  return results;
}

std::vector<double> Values(int64_t count, double range, DType dtype,
                           unsigned seed) {
  std::mt19937 rng(seed);
  return RandomValues(count, range, dtype, &rng);
}

AttentionInputs RandomInputs(const std::vector<int64_t>& shape, DType dtype,
                             bool is_causal, unsigned seed) {
  const int64_t count = shape[0] * shape[1] * shape[2] * shape[3];
  AttentionInputs in;
  in.shape = shape;
  in.q = Values(count, 2.0, dtype, seed);
  in.k = Values(count, 2.0, dtype, seed + 1);
  in.v = Values(count, 1.0, dtype, seed + 2);
  in.grad_out = Values(count, 1.0, dtype, seed + 3);
  in.is_causal = is_causal;
  return in;
}

std::vector<uint8_t> RandomPadding(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution hole(0.3);
  std::vector<uint8_t> mask;
  for (int64_t i = 0; i < count; ++i) mask.push_back(hole(rng));
  return mask;
}

void ExpectResultsMatch(const AttentionResults& got,
                        const ExpectedResults& want, DType dtype) {
  EXPECT_TRUE(AllClose(got.out, want.out, OutputTolerance(dtype))) << "out";
  // float32 whatever the storage type: scores of inputs exact in every dtype.
  EXPECT_TRUE(AllClose(got.lse, want.lse, {1e-4, 1e-4})) << "lse";
  const Tolerance tolerance = GradientTolerance(dtype);
  EXPECT_TRUE(AllClose(got.grad_q, want.grad_q, tolerance)) << "grad_q";
  EXPECT_TRUE(AllClose(got.grad_k, want.grad_k, tolerance)) << "grad_k";
  EXPECT_TRUE(AllClose(got.grad_v, want.grad_v, tolerance)) << "grad_v";
  EXPECT_TRUE(got.padding_intact) << "written outside the tensors' elements";
}

}  // namespace testing
}  // namespace dilated
