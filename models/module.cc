#include "models/module.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dilated {
namespace models {

Parameter Parameter::Filled(std::vector<int64_t> shape, float value) {
  Parameter parameter;
  parameter.shape = std::move(shape);
  parameter.values.assign(parameter.NumElements(), value);
  return parameter;
}

int64_t Parameter::NumElements() const {
  int64_t product = 1;
  for (int64_t extent : shape) product *= extent;
  return product;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::vector<NamedParameter> Module::Parameters() {
  std::vector<NamedParameter> parameters;
  AppendParameters("", &parameters);
  return parameters;
}

}  // namespace models
}  // namespace dilated
