// The main job's plot: every implementation's time and memory against the
// sequence length, one pair of log-log panels per shape family, written as a
// PNG (--plot=FILE).

#ifndef DILATED_BENCHMARKS_SEQUENCE_LENGTH_PLOT_H_
#define DILATED_BENCHMARKS_SEQUENCE_LENGTH_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "benchmarks/plot/log_log_chart.h"
#include "benchmarks/summary_reporter.h"

namespace dilated {

// Which counter of a result holds its memory, and how to label it.
struct MemoryCounter {
  std::string name;   // e.g. "extra_heap_MiB"
  std::string label;  // e.g. "peak extra heap (MiB)"
};

// Groups results whose shape reads "<a>/n:<length>/<b>..." by the shape with
// the length left out (the family "<a> <b> ..."), in the order families first
// appear. A family measured at two or more lengths gets two panels: time
// (ms) and the memory counter, each with one series per implementation and
// the length on x. Results without a "n:" component, or without the
// counter (memory panel only), are left out.
std::vector<plot::Panel> SequenceLengthPanels(
    const std::vector<SummaryReporter::Result>& results,
    const MemoryCounter& memory);

// Draws SequenceLengthPanels under `title` and writes the PNG to `path`.
// FailedPrecondition when no family was measured at two lengths.
absl::Status WriteSequenceLengthPlot(
    const std::vector<SummaryReporter::Result>& results,
    const MemoryCounter& memory, const std::string& title,
    const std::string& path);

// Removes every "--plot=FILE" from argv (so that Google Benchmark does not
// see it) and returns the last FILE, "" when there is none. Under `bazel
// run`, a relative FILE is taken from the directory bazel was started in.
// InvalidArgument for "--plot" without a file or with an empty one.
absl::StatusOr<std::string> TakePlotFlag(int* argc, char** argv);

}  // namespace dilated

#endif  // DILATED_BENCHMARKS_SEQUENCE_LENGTH_PLOT_H_
