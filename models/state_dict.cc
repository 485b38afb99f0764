#include "models/state_dict.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {
namespace {

// Errors list this many problems, then count the rest: a checkpoint of another
// model would otherwise yield hundreds.
constexpr size_t kMaxReportedProblems = 8;

bool IsIgnored(const std::string& name, const LoadOptions& options) {
  for (const std::string& prefix : options.ignored_prefixes) {
    if (absl::StartsWith(name, prefix)) return true;
  }
  return false;
}

}  // namespace

void ParameterMap::Set(const std::string& name, Parameter tensor) {
  tensors_[name] = std::move(tensor);
}

bool ParameterMap::Erase(const std::string& name) {
  return tensors_.erase(name) > 0;
}

const Parameter* ParameterMap::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Parameter* ParameterMap::FindMutable(absl::string_view name) {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> ParameterMap::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& entry : tensors_) names.push_back(entry.first);
  return names;
}

absl::StatusOr<std::vector<int64_t>> ParameterMap::Shape(
    absl::string_view name) const {
  const Parameter* tensor = Find(name);
  if (tensor == nullptr) {
    return absl::NotFoundError(absl::StrCat("no tensor named '", name, "'"));
  }
  return tensor->shape;
}

absl::Status ParameterMap::Read(absl::string_view name, float* dst) const {
  const Parameter* tensor = Find(name);
  if (tensor == nullptr) {
    return absl::NotFoundError(absl::StrCat("no tensor named '", name, "'"));
  }
  std::copy(tensor->values.begin(), tensor->values.end(), dst);
  return absl::OkStatus();
}

absl::Status LoadStateDict(const ParameterSource& source, Module* module,
                           const LoadOptions& options) {
  const std::vector<NamedParameter> parameters = module->Parameters();
  std::vector<std::string> problems;
  std::vector<std::string> expected_names;
  for (const NamedParameter& p : parameters) {
    expected_names.push_back(p.name);
    absl::StatusOr<std::vector<int64_t>> shape = source.Shape(p.name);
    if (!shape.ok()) {
      problems.push_back(absl::StrCat("missing tensor '", p.name,
                                      "' (the module expects shape ",
                                      ShapeString(p.parameter->shape), ")"));
    } else if (*shape != p.parameter->shape) {
      problems.push_back(absl::StrCat(
          "tensor '", p.name, "' has shape ", ShapeString(*shape),
          " but the module expects ", ShapeString(p.parameter->shape)));
    }
  }
  std::sort(expected_names.begin(), expected_names.end());
  for (const std::string& name : source.Names()) {
    if (IsIgnored(name, options)) continue;
    if (!std::binary_search(expected_names.begin(), expected_names.end(),
                            name)) {
      absl::StatusOr<std::vector<int64_t>> shape = source.Shape(name);
      problems.push_back(absl::StrCat(
          "unexpected tensor '", name, "' (shape ",
          shape.ok() ? ShapeString(*shape) : std::string("unknown"), ")"));
    }
  }
  if (!problems.empty()) {
    const size_t total = problems.size();
    if (total > kMaxReportedProblems) {
      problems.resize(kMaxReportedProblems);
      problems.push_back(
          absl::StrCat("and ", total - kMaxReportedProblems, " more"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the state dict does not match the module: ",
                     absl::StrJoin(problems, "; ")));
  }
  for (const NamedParameter& p : parameters) {
    DA_RETURN_IF_ERROR(source.Read(p.name, p.parameter->values.data()));
  }
  return absl::OkStatus();
}

ParameterMap ExportStateDict(Module* module) {
  ParameterMap map;
  for (const NamedParameter& p : module->Parameters()) {
    map.Set(p.name, *p.parameter);
  }
  return map;
}

}  // namespace models
}  // namespace dilated
