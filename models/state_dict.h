// File: state_dict.h
//
// Loading parameters by PyTorch state-dict name. A ParameterSource is any
// collection of named tensors (an in-memory ParameterMap, a safetensors file
// through its adapter); LoadStateDict copies it into a Module and insists on
// an exact match, the way torch.nn.Module.load_state_dict(strict=True) does.
//
//   dilated::models::ParameterMap state = ...;
//   absl::Status status = dilated::models::LoadStateDict(state, module.get());
//   // InvalidArgument: "... missing tensor 'encoder.layers.0.norm1.weight'
//   //   (the module expects shape [768]) ..."

#ifndef MODELS_STATE_DICT_H_
#define MODELS_STATE_DICT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/module.h"

namespace dilated {
namespace models {

// Named tensors that parameters are read from.
class ParameterSource {
 public:
  virtual ~ParameterSource() = default;

  // Returns the names of every tensor, sorted.
  virtual std::vector<std::string> Names() const = 0;

  // Returns the shape of the tensor `name`, or NotFound.
  virtual absl::StatusOr<std::vector<int64_t>> Shape(
      absl::string_view name) const = 0;

  // Writes the elements of tensor `name`, converted to float32, row-major, to
  // `dst`; NotFound for an unknown name, InvalidArgument for an element type
  // that cannot be converted.
  // REQUIRES: `dst` has room for the product of Shape(name).
  virtual absl::Status Read(absl::string_view name, float* dst) const = 0;
};

// An in-memory state dict: name -> float32 tensor.
class ParameterMap : public ParameterSource {
 public:
  // Stores `tensor` under `name`, replacing any tensor of that name.
  void Set(const std::string& name, Parameter tensor);
  // Removes `name`; returns whether it was there.
  bool Erase(const std::string& name);
  // Returns the tensor `name`, or null.
  const Parameter* Find(absl::string_view name) const;
  Parameter* FindMutable(absl::string_view name);

  using Map = std::map<std::string, Parameter, std::less<>>;
  const Map& tensors() const { return tensors_; }

  std::vector<std::string> Names() const override;
  absl::StatusOr<std::vector<int64_t>> Shape(
      absl::string_view name) const override;
  absl::Status Read(absl::string_view name, float* dst) const override;

 private:
  Map tensors_;
};

struct LoadOptions {
  // Tensors whose names start with one of these prefixes are skipped, neither
  // loaded nor reported as unexpected (e.g. "input." when a file holds a
  // model's weights and its inputs).
  std::vector<std::string> ignored_prefixes;
};

// Copies every parameter of `module` from the tensor of the same name in
// `source`. Returns InvalidArgument, naming the tensors at fault (the first
// eight, then a count) with their shapes and the shapes the module expects,
// when `source` lacks a parameter
// (missing), holds a tensor the module does not have (unexpected) or holds a
// parameter with a different shape (mis-shaped); `module` is then unchanged.
// Errors of `source` while reading (e.g. an element type it cannot convert)
// are returned as they are, and may leave `module` partly loaded.
absl::Status LoadStateDict(const ParameterSource& source, Module* module,
                           const LoadOptions& options = {});

// Returns a copy of every parameter of `module` under its state-dict name.
ParameterMap ExportStateDict(Module* module);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_STATE_DICT_H_
