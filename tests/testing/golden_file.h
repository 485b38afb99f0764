// File: golden_file.h
//
// Runs an Attention on the inputs of a golden file (tools/make_golden.py,
// tools/make_golden_sparse.py) and compares its results with the file's
// float64 expectations: out and lse of Forward, grad_q, grad_k and grad_v of
// Backward, with the dtype's tolerances (compare.h). A file holds q, k, v,
// grad_out in the dtype under test, optionally key_padding_mask or
// cu_seqlens (then the tensors are [total, h, d] and lse [h, total]), and
// the expected tensors in F64.
//
//   for (const std::string& path : GoldenFiles("tests/data/golden")) ...
//   CheckGoldenFile(*attention, *file, is_causal, device);

#ifndef TESTS_TESTING_GOLDEN_FILE_H_
#define TESTS_TESTING_GOLDEN_FILE_H_

#include <string>
#include <vector>

#include "attention/attention.h"
#include "io/safetensors.h"
#include "tests/testing/test_device.h"

namespace dilated {
namespace testing {

// Returns the .safetensors files of `dir` (relative to the runfiles root),
// sorted.
std::vector<std::string> GoldenFiles(const std::string& dir);

// Runs Forward (with lse) and Backward of `attention` on `device` and adds a
// gtest failure for every result that differs from the file's. On a device
// other than the CPU, a Forward that is Unimplemented skips the test (a
// device backend may refuse a layout; the CPU must run every file).
void CheckGoldenFile(Attention& attention, const io::SafetensorsFile& file,
                     bool is_causal, TestDevice* device);

}  // namespace testing
}  // namespace dilated

#endif  // TESTS_TESTING_GOLDEN_FILE_H_
