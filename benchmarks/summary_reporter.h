// A console reporter that also keeps every run it prints, so that a short
// table comparing the implementations shape by shape can follow the usual
// Google Benchmark output.

#ifndef DILATED_BENCHMARKS_SUMMARY_REPORTER_H_
#define DILATED_BENCHMARKS_SUMMARY_REPORTER_H_

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

namespace dilated {

// Prints what benchmark::ConsoleReporter prints and records, per benchmark,
// its real time per iteration in milliseconds.
//
// Benchmark names must read "<implementation>/<shape>", e.g.
// "improved/A/n:8192/full/fwd" or "standard/B/n:2048/full/fwd/pool": the
// first path component names the implementation and the rest the shape.
// Implementations are compared against the one named "standard".
//
// With --benchmark_repetitions, the median aggregate is used where it is
// reported, otherwise the mean of the repetitions.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  // `header_note` is printed under the summary's title, e.g. to say where
  // the comparisons that this binary does not make are found.
  explicit SummaryReporter(std::string header_note,
                           OutputOptions options = OO_None);

  void ReportRuns(const std::vector<Run>& reports) override;

  // Writes the table: one block per shape, in the order the shapes first
  // ran, with one line per implementation giving its time (ms), the ratio
  // standard time / its time (> 1: faster than standard; "-" where standard
  // did not run or failed) and, when the fastest is not standard, the
  // fastest's name. Failed runs read "error". Writes nothing but a line
  // saying so when no run was recorded.
  void PrintSummary(std::ostream& out) const;

  // One benchmark that ran without error: its time (as in the summary) and
  // the user counters of the run the time comes from (the median aggregate,
  // or the last iteration run).
  struct Result {
    std::string implementation;
    std::string shape;
    double milliseconds = 0.0;
    std::map<std::string, double> counters;
  };

  // Every benchmark with a time, in the order they first ran.
  std::vector<Result> Results() const;

 private:
  struct Entry {
    std::string implementation;
    std::string shape;
    bool error = false;
    double iteration_ms_sum = 0.0;  // Over the iteration runs recorded.
    int iteration_count = 0;
    bool has_median = false;
    double median_ms = 0.0;
    std::map<std::string, double> counters;

    // The time to report, in ms; meaningful only when !error and a run was
    // recorded.
    double Milliseconds() const;
    bool HasTime() const;
  };

  // Returns the entry for (implementation, shape), creating it if needed.
  Entry& Find(const std::string& implementation, const std::string& shape);

  std::string header_note_;
  std::vector<Entry> entries_;  // In the order first seen.
};

// The console options the library's own reporter would use for these
// arguments (color when --benchmark_color is true, or "auto" and stdout is a
// terminal; tabular counters with --benchmark_counters_tabular=true). Call it
// before benchmark::Initialize, which removes the flags it recognises: a
// reporter passed to RunSpecifiedBenchmarks otherwise keeps its own options.
benchmark::ConsoleReporter::OutputOptions ConsoleOptionsFromFlags(int argc,
                                                                  char** argv);

}  // namespace dilated

#endif  // DILATED_BENCHMARKS_SUMMARY_REPORTER_H_
