// Uses the library from another Bazel workspace: creates "improved" by name,
// runs Forward and Backward on small random CPU float32 tensors, and checks the
// results against "standard" (the direct algorithm, a separate implementation)
// run on the same inputs. Exits nonzero if a call fails or a check does not
// hold.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention/registry.h"

namespace {

constexpr int64_t kBatch = 1;
constexpr int64_t kSeq = 64;
constexpr int64_t kHeads = 4;
constexpr int64_t kHeadDim = 16;

// Both implementations compute exact softmax attention in float32 and differ
// only in the order of their sums (online softmax in blocks against a direct
// two-pass softmax). With unit-variance inputs, head_dim 16 and at most 64
// keys per row, rounding differences stay around 1e-6; 1e-4 leaves two orders
// of magnitude of room while any real disagreement (a wrong mask, scale or
// segment) is far larger.
constexpr double kTolerance = 1e-4;

// The tensors of one Forward + Backward run, [b, n, h, d] and lse [b, h, n].
struct Run {
  std::vector<float> out, lse, grad_q, grad_k, grad_v;
};

dilated::TensorView View(std::vector<float>* data,
                         std::initializer_list<int64_t> shape) {
  return dilated::TensorView::Contiguous(data->data(), dilated::DType::kFloat32,
                                         shape);
}

// Runs the implementation registered as `name` on q, k, v and grad_out.
// Returns false (after printing why) if it cannot be created or a call fails.
bool RunImplementation(const std::string& name, std::vector<float>* q,
                       std::vector<float>* k, std::vector<float>* v,
                       std::vector<float>* grad_out, Run* run) {
  dilated::AttentionConfig config;
  config.segment_lengths = {16, 32};
  config.dilation_rates = {1, 2};
  absl::StatusOr<std::unique_ptr<dilated::Attention>> attention =
      dilated::CreateAttention(name, config);
  if (!attention.ok()) {
    std::fprintf(stderr, "CreateAttention(%s): %s\n", name.c_str(),
                 attention.status().ToString().c_str());
    return false;
  }
  const std::initializer_list<int64_t> shape = {kBatch, kSeq, kHeads, kHeadDim};
  const size_t elements = kBatch * kSeq * kHeads * kHeadDim;
  run->out.assign(elements, 0.0f);
  run->grad_q.assign(elements, 0.0f);
  run->grad_k.assign(elements, 0.0f);
  run->grad_v.assign(elements, 0.0f);
  run->lse.assign(kBatch * kHeads * kSeq, 0.0f);
  const dilated::TensorView lse = View(&run->lse, {kBatch, kHeads, kSeq});

  absl::Status status =
      (*attention)
          ->Forward(View(q, shape), View(k, shape), View(v, shape),
                    View(&run->out, shape), dilated::ForwardOptions(), &lse);
  if (status.ok()) {
    status =
        (*attention)
            ->Backward(View(q, shape), View(k, shape), View(v, shape),
                       View(&run->out, shape), lse, View(grad_out, shape),
                       View(&run->grad_q, shape), View(&run->grad_k, shape),
                       View(&run->grad_v, shape));
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), status.ToString().c_str());
    return false;
  }
  return true;
}

// Returns the largest |a - b|, or infinity if an element of either is NaN or
// only one of a pair is infinite. Equal infinities (lse of an unselected row)
// count as equal.
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    const double diff = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!std::isfinite(diff)) return INFINITY;
    if (diff > worst) worst = diff;
  }
  return worst;
}

bool AllFinite(const std::vector<float>& values) {
  for (float x : values) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const size_t elements = kBatch * kSeq * kHeads * kHeadDim;
  std::vector<float> q(elements), k(elements), v(elements), grad_out(elements);
  for (std::vector<float>* tensor : {&q, &k, &v, &grad_out}) {
    for (float& x : *tensor) x = normal(rng);
  }

  Run improved, standard;
  if (!RunImplementation("improved", &q, &k, &v, &grad_out, &improved) ||
      !RunImplementation("standard", &q, &k, &v, &grad_out, &standard)) {
    return 1;
  }

  bool ok = true;
  const struct {
    const char* name;
    const std::vector<float>& improved;
    const std::vector<float>& standard;
  } checks[] = {
      {"out", improved.out, standard.out},
      {"lse", improved.lse, standard.lse},
      {"grad_q", improved.grad_q, standard.grad_q},
      {"grad_k", improved.grad_k, standard.grad_k},
      {"grad_v", improved.grad_v, standard.grad_v},
  };
  for (const auto& check : checks) {
    const double diff = MaxAbsDiff(check.improved, check.standard);
    const bool pass = diff < kTolerance;
    std::printf("%-7s max |improved - standard| = %.3g %s\n", check.name, diff,
                pass ? "ok" : "FAIL");
    ok = ok && pass;
  }
  for (const std::vector<float>* grad :
       {&improved.grad_q, &improved.grad_k, &improved.grad_v}) {
    if (!AllFinite(*grad)) {
      std::printf("improved: a gradient is not finite: FAIL\n");
      ok = false;
    }
  }
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
