#include "models/safetensors_io.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"
#include "kernels/numeric.h"

namespace dilated {
namespace models {
namespace {

absl::Status WithFile(const std::string& path, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat("'", path, "': ", status.message()));
}

}  // namespace

SafetensorsParameterSource::SafetensorsParameterSource(
    const io::SafetensorsFile* file)
    : file_(file) {
  for (const io::SafetensorsTensor& t : file_->tensors()) index_[t.name] = &t;
}

absl::StatusOr<const io::SafetensorsTensor*> SafetensorsParameterSource::Find(
    absl::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("'", file_->path(), "' has no tensor '", name, "'"));
  }
  return it->second;
}

std::vector<std::string> SafetensorsParameterSource::Names() const {
  std::vector<std::string> names;
  for (const io::SafetensorsTensor& t : file_->tensors()) {
    names.push_back(t.name);
  }
  return names;
}

absl::StatusOr<std::vector<int64_t>> SafetensorsParameterSource::Shape(
    absl::string_view name) const {
  DA_ASSIGN_OR_RETURN(const io::SafetensorsTensor* tensor, Find(name));
  return tensor->shape;
}

absl::Status SafetensorsParameterSource::Read(absl::string_view name,
                                              float* dst) const {
  DA_ASSIGN_OR_RETURN(const io::SafetensorsTensor* tensor, Find(name));
  const int64_t count = tensor->NumElements();
  switch (tensor->dtype) {
    case io::SafetensorsDType::kF64: {
      const double* src = static_cast<const double*>(tensor->data);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(src[i]);
      break;
    }
    case io::SafetensorsDType::kF32:
      std::memcpy(dst, tensor->data, count * sizeof(float));
      break;
    case io::SafetensorsDType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(tensor->data);
      for (int64_t i = 0; i < count; ++i) dst[i] = kernels::HalfToFloat(src[i]);
      break;
    }
    case io::SafetensorsDType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(tensor->data);
      for (int64_t i = 0; i < count; ++i) {
        dst[i] = kernels::BFloat16ToFloat(src[i]);
      }
      break;
    }
    case io::SafetensorsDType::kI64:
    case io::SafetensorsDType::kI32:
    case io::SafetensorsDType::kBool:
    case io::SafetensorsDType::kU8:
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", name, "' has dtype ",
                       io::SafetensorsDTypeName(tensor->dtype),
                       "; expected a floating-point type"));
  }
  return absl::OkStatus();
}

absl::Status LoadSafetensorsStateDict(const std::string& path, Module* module,
                                      const LoadOptions& options) {
  DA_ASSIGN_OR_RETURN(io::SafetensorsFile file, io::ReadSafetensors(path));
  const SafetensorsParameterSource source(&file);
  return WithFile(path, LoadStateDict(source, module, options));
}

absl::Status SaveSafetensorsStateDict(
    const std::string& path, Module* module,
    const std::map<std::string, std::string>& metadata) {
  std::vector<io::NamedTensor> tensors;
  for (const NamedParameter& p : module->Parameters()) {
    tensors.push_back({p.name, io::SafetensorsDType::kF32, p.parameter->shape,
                       p.parameter->values.data()});
  }
  return io::WriteSafetensors(path, tensors, metadata);
}

absl::StatusOr<Tensor> ReadTensor(const io::SafetensorsFile& file,
                                  absl::string_view name) {
  DA_ASSIGN_OR_RETURN(const TensorView view, file.View(name));
  return Tensor::CopyOf(view);
}

absl::Status WriteTensors(
    const std::string& path,
    const std::vector<std::pair<std::string, const Tensor*>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  std::vector<io::NamedTensor> named;
  for (const auto& [name, tensor] : tensors) {
    named.push_back({name, io::ToSafetensorsDType(tensor->dtype()),
                     tensor->shape(), tensor->data()});
  }
  return io::WriteSafetensors(path, named, metadata);
}

}  // namespace models
}  // namespace dilated
