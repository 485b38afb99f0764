#include "tests/models/model_test_util.h"

#include <random>
#include <utility>

namespace dilated {
namespace models {
namespace testing {

Tensor RandomTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = Tensor::Zeros(dtype, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(t.NumElements());
  for (float& value : values) value = uniform(rng);
  t.AssignFromFloat32(values);
  return t;
}

std::vector<double> ToDoubles(const Tensor& t) {
  const std::vector<float> values = t.ToFloat32();
  return std::vector<double>(values.begin(), values.end());
}

}  // namespace testing
}  // namespace models
}  // namespace dilated
