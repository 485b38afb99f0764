#include "python/ops/throw_status.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace dilated {
namespace torch_ops {

void ThrowIfError(const absl::Status& status) {
  if (status.ok()) return;
  throw std::runtime_error(absl::StrCat(absl::StatusCodeToString(status.code()),
                                        ": ", status.message()));
}

}  // namespace torch_ops
}  // namespace dilated
