#include "tests/testing/compare.h"

#include <cmath>
#include <cstdint>

namespace dilated {
namespace testing {

::testing::AssertionResult AllClose(const std::vector<double>& actual,
                                    const std::vector<double>& expected,
                                    Tolerance tolerance) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected size "
           << expected.size();
  }
  int64_t failures = 0;
  int64_t worst = -1;
  double worst_excess = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i];
    const double e = expected[i];
    if (std::isinf(e) || std::isinf(a)) {
      if (a != e) {
        ++failures;
        if (worst < 0) worst = static_cast<int64_t>(i);
      }
      continue;
    }
    const double allowed =
        tolerance.absolute + tolerance.relative * std::abs(e);
    const double error = std::abs(a - e);
    if (!(error <= allowed)) {  // Also true for NaN.
      ++failures;
      const double excess = std::isnan(error) ? INFINITY : error - allowed;
      if (worst < 0 || excess > worst_excess) {
        worst = static_cast<int64_t>(i);
        worst_excess = excess;
      }
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << failures << " of " << actual.size()
         << " elements differ; worst at index " << worst << ": actual "
         << actual[worst] << ", expected " << expected[worst]
         << " (absolute tolerance " << tolerance.absolute << ", relative "
         << tolerance.relative << ")";
}

Tolerance OutputTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      // float32 accumulation over at most a few hundred terms: ~1e-6
      // relative per operation, well under these bounds.
      return {2e-5, 2e-4};
    case DType::kFloat16:
      // The output is rounded to float16 (relative 2^-11) and GPU kernels
      // also round probabilities to float16 before P.V.
      return {2e-3, 4e-3};
    case DType::kBFloat16:
      // Rounding to bfloat16 is relative 2^-8, for the output and for the
      // probabilities GPU kernels feed to P.V.
      return {1.5e-2, 2e-2};
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return {0, 0};
}

Tolerance GradientTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      // Gradients chain two more float32 GEMMs than the forward pass.
      return {1e-4, 1e-3};
    case DType::kFloat16:
      // dS and dO.V^T pass through float16 operands on GPUs (relative
      // 2^-11 each) and the result is rounded to float16.
      return {1e-2, 1e-2};
    case DType::kBFloat16:
      // As float16, with bfloat16's 2^-8 rounding.
      return {5e-2, 5e-2};
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return {0, 0};
}

}  // namespace testing
}  // namespace dilated
