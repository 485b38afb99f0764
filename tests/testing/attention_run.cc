#include "tests/testing/attention_run.h"

#include <random>

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

}  // namespace testing
}  // namespace dilated
