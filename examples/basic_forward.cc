// Runs dilated attention forward and backward on random CPU tensors through
// the factory, and prints what it computed.
//
//   ./bazelw run //examples:basic_forward -- auto

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention/registry.h"

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "auto";
  dilated::AttentionConfig config;
  config.segment_lengths = {64, 128, 256};
  config.dilation_rates = {1, 2, 4};

  absl::StatusOr<std::unique_ptr<dilated::Attention>> attention =
      dilated::CreateAttention(name, config);
  if (!attention.ok()) {
    std::fprintf(stderr, "%s\n", attention.status().ToString().c_str());
    return 1;
  }

  const int64_t b = 2, n = 512, h = 6, d = 32;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto random_tensor = [&](std::vector<float>* storage) {
    storage->resize(b * n * h * d);
    for (float& x : *storage) x = normal(rng);
    return dilated::TensorView::Contiguous(
        storage->data(), dilated::DType::kFloat32, {b, n, h, d});
  };
  std::vector<float> q_data, k_data, v_data, out_data, grad_out_data,
      grad_q_data, grad_k_data, grad_v_data;
  const dilated::TensorView q = random_tensor(&q_data);
  const dilated::TensorView k = random_tensor(&k_data);
  const dilated::TensorView v = random_tensor(&v_data);
  const dilated::TensorView out = random_tensor(&out_data);
  const dilated::TensorView grad_out = random_tensor(&grad_out_data);
  const dilated::TensorView grad_q = random_tensor(&grad_q_data);
  const dilated::TensorView grad_k = random_tensor(&grad_k_data);
  const dilated::TensorView grad_v = random_tensor(&grad_v_data);
  std::vector<float> lse_data(b * h * n);
  const dilated::TensorView lse = dilated::TensorView::Contiguous(
      lse_data.data(), dilated::DType::kFloat32, {b, h, n});

  dilated::ForwardOptions options;
  options.is_causal = true;
  absl::Status status = (*attention)->Forward(q, k, v, out, options, &lse);
  if (status.ok()) {
    status = (*attention)
                 ->Backward(q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v,
                            options);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  double out_norm = 0.0, grad_norm = 0.0;
  int64_t zero_rows = 0;
  for (int64_t row = 0; row < b * n * h; ++row) {
    bool all_zero = true;
    for (int64_t i = 0; i < d; ++i) {
      out_norm += out_data[row * d + i] * out_data[row * d + i];
      grad_norm += grad_q_data[row * d + i] * grad_q_data[row * d + i];
      all_zero = all_zero && out_data[row * d + i] == 0.0f;
    }
    zero_rows += all_zero;
  }
  std::printf(
      "%s: out [%ld, %ld, %ld, %ld], |out| = %.4f, |grad_q| = %.4f, %ld of "
      "%ld rows unselected (zero)\n",
      (*attention)->name().c_str(), static_cast<long>(b), static_cast<long>(n),
      static_cast<long>(h), static_cast<long>(d), std::sqrt(out_norm),
      std::sqrt(grad_norm), static_cast<long>(zero_rows),
      static_cast<long>(b * n * h));
  return 0;
}
