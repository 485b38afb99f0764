// File: throw_status.h
//
// How the operators report the library's errors to PyTorch: a C++ exception,
// which torch turns into a Python RuntimeError carrying its message, the
// status code first ("INVALID_ARGUMENT: ..."). The package's Python side
// translates that prefix into ValueError and friends.

#ifndef DILATED_PYTHON_OPS_THROW_STATUS_H_
#define DILATED_PYTHON_OPS_THROW_STATUS_H_

#include "absl/status/status.h"

namespace dilated {
namespace torch_ops {

// Throws std::runtime_error("<CODE>: <message>") unless status is OK.
void ThrowIfError(const absl::Status& status);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_THROW_STATUS_H_
