// File: compare.h
//
// Element-wise comparison with an absolute plus relative tolerance, as a
// gtest assertion that reports the worst element.

#ifndef TESTS_TESTING_COMPARE_H_
#define TESTS_TESTING_COMPARE_H_

#include <vector>

#include "attention/tensor.h"
#include "gtest/gtest.h"

namespace dilated {
namespace testing {

struct Tolerance {
  double absolute;
  double relative;
};

// Succeeds when |actual - expected| <= absolute + relative * |expected| for
// every element; infinities must match exactly, NaN never passes.
::testing::AssertionResult AllClose(const std::vector<double>& actual,
                                    const std::vector<double>& expected,
                                    Tolerance tolerance);

// Tolerance for attention outputs stored in `dtype`, compared with a float64
// oracle fed the same (rounded) inputs.
Tolerance OutputTolerance(DType dtype);

// Tolerance for gradients stored in `dtype`.
Tolerance GradientTolerance(DType dtype);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_COMPARE_H_
