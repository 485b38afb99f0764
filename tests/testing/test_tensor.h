// File: test_tensor.h
//
// TestTensor: a tensor on a TestDevice, filled from and read back as float64,
// in contiguous or padded (non-contiguous) layouts. Padding is filled with a
// sentinel byte pattern so tests can prove a kernel wrote nothing outside the
// tensor's elements.

#ifndef TESTS_TESTING_TEST_TENSOR_H_
#define TESTS_TESTING_TEST_TENSOR_H_

#include <cstdint>
#include <random>
#include <vector>

#include "attention/tensor.h"
#include "tests/testing/test_device.h"

namespace dilated {
namespace testing {

enum class Layout {
  kContiguous,
  // Gaps after every head, every position and every batch entry.
  kPadded,
};

class TestTensor {
 public:
  // A tensor of `shape` (rank <= 4) on `device`, contents set to the sentinel.
  TestTensor(TestDevice* device, DType dtype, std::vector<int64_t> shape,
             Layout layout = Layout::kContiguous);
  ~TestTensor();
  TestTensor(const TestTensor&) = delete;
  TestTensor& operator=(const TestTensor&) = delete;

  // Writes `values` (row-major logical order), rounded to the dtype.
  void Upload(const std::vector<double>& values);
  // Returns the elements in row-major logical order.
  std::vector<double> Download() const;
  // Returns whether every byte outside the elements still holds the sentinel.
  bool PaddingIntact() const;

  const TensorView& view() const { return view_; }
  int64_t NumElements() const { return view_.NumElements(); }

 private:
  std::vector<int64_t> ElementOffsets() const;

  TestDevice* device_;
  TensorView view_;
  int64_t storage_elements_;
};

// Returns `count` values uniform in [-range, range], rounded to `dtype` so
// the oracle sees exactly what the kernel reads.
std::vector<double> RandomValues(int64_t count, double range, DType dtype,
                                 std::mt19937* rng);

// Returns `value` rounded to `dtype` (round to nearest even).
double RoundTo(DType dtype, double value);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_TEST_TENSOR_H_
