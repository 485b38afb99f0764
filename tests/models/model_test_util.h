// File: model_test_util.h
//
// Helpers of the model tests: random tensors and conversions for comparison.

#ifndef TESTS_MODELS_MODEL_TEST_UTIL_H_
#define TESTS_MODELS_MODEL_TEST_UTIL_H_

#include <cstdint>
#include <vector>

#include "models/tensor.h"

namespace dilated {
namespace models {
namespace testing {

// Returns a tensor of `shape` with elements uniform in [-1, 1], rounded to
// `dtype`, from `seed`.
Tensor RandomTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed);

// Returns the elements of `t` as doubles, row-major.
std::vector<double> ToDoubles(const Tensor& t);

}  // namespace testing
}  // namespace models
}  // namespace dilated

#endif  // TESTS_MODELS_MODEL_TEST_UTIL_H_
