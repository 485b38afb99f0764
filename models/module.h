// File: module.h
//
// Parameters and the Module interface: every layer of a model owns its
// parameters as float32 tensors and lists them under the names PyTorch's
// state_dict() gives them, so that checkpoints of the reference modules load
// by name (state_dict.h).
//
//   std::vector<dilated::models::NamedParameter> params =
//       layer->Parameters();  // e.g. "self_attn.q_proj.weight", ...

#ifndef MODELS_MODULE_H_
#define MODELS_MODULE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dilated {
namespace models {

// A trainable tensor: float32, row-major.
struct Parameter {
  std::vector<int64_t> shape;
  std::vector<float> values;

  // Returns a parameter of `shape` filled with `value`.
  static Parameter Filled(std::vector<int64_t> shape, float value);

  // Returns the number of elements (the product of the shape).
  int64_t NumElements() const;
};

// One parameter of a module and its full state-dict name.
struct NamedParameter {
  std::string name;
  Parameter* parameter;
};

// Returns "[3, 4]" for shape {3, 4}.
std::string ShapeString(const std::vector<int64_t>& shape);

class Module {
 public:
  virtual ~Module() = default;

  // Appends every parameter of this module and its children, each named
  // `prefix` followed by its state-dict name, in PyTorch's registration order.
  virtual void AppendParameters(const std::string& prefix,
                                std::vector<NamedParameter>* out) = 0;

  // Returns every parameter with its state-dict name (no prefix).
  std::vector<NamedParameter> Parameters();
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_MODULE_H_
