// File: status_macros.h
//
// DA_RETURN_IF_ERROR and DA_ASSIGN_OR_RETURN propagate absl::Status (the Abseil
// release we build against has no macros of its own), and DA_CHECK reports a
// broken invariant and aborts, in debug and release builds alike.
//
//   absl::StatusOr<int> Parse(absl::string_view s);
//   absl::Status Run(absl::string_view s) {
//     DA_ASSIGN_OR_RETURN(int value, Parse(s));
//     DA_RETURN_IF_ERROR(Use(value));
//     return absl::OkStatus();
//   }

#ifndef FACTORY_STATUS_MACROS_H_
#define FACTORY_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DA_INTERNAL_CONCAT_INNER(a, b) a##b
#define DA_INTERNAL_CONCAT(a, b) DA_INTERNAL_CONCAT_INNER(a, b)

// Returns the status of `expr` from the enclosing function if it is not OK.
#define DA_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    const ::absl::Status da_internal_status = (expr); \
    if (!da_internal_status.ok()) {                   \
      return da_internal_status;                      \
    }                                                 \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status if not OK,
// otherwise moves its value into `lhs` (a declaration or an lvalue).
#define DA_ASSIGN_OR_RETURN(lhs, rexpr) \
  DA_INTERNAL_ASSIGN_OR_RETURN(         \
      DA_INTERNAL_CONCAT(da_internal_statusor_, __LINE__), lhs, rexpr)

#define DA_INTERNAL_ASSIGN_OR_RETURN(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) {                                    \
    return std::move(statusor).status();                   \
  }                                                        \
  lhs = *std::move(statusor)

// Aborts with file, line and the failed condition if `cond` is false. For
// programming errors only; bad input gets an absl::Status instead.
#define DA_CHECK(cond, message)                                       \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, \
                   __LINE__, #cond, message);                         \
      std::abort();                                                   \
    }                                                                 \
  } while (false)

#endif  // FACTORY_STATUS_MACROS_H_
