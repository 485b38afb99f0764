#include "benchmarks/summary_reporter.h"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace dilated {
namespace {

constexpr char kBaseline[] = "standard";

// Splits "<implementation>/<shape>" at the first '/'; a name without one is
// all implementation and an empty shape.
std::pair<std::string, std::string> SplitName(const std::string& name) {
  const size_t slash = name.find('/');
  if (slash == std::string::npos) return {name, ""};
  return {name.substr(0, slash), name.substr(slash + 1)};
}

// Real time per iteration in milliseconds, whatever unit the run used.
double RealMilliseconds(const benchmark::BenchmarkReporter::Run& run) {
  return run.GetAdjustedRealTime() /
         benchmark::GetTimeUnitMultiplier(run.time_unit) * 1e3;
}

// The value of "--<flag>=<value>" ("--<flag>" alone reads "true"), or
// `fallback` when the flag is absent; the last occurrence wins.
std::string FlagValue(int argc, char** argv, const std::string& flag,
                      const std::string& fallback) {
  std::string value = fallback;
  const std::string prefix = "--" + flag;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == prefix) {
      value = "true";
    } else if (arg.rfind(prefix + "=", 0) == 0) {
      value = arg.substr(prefix.size() + 1);
    }
  }
  return value;
}

bool IsTrue(const std::string& value) {
  return value == "true" || value == "yes" || value == "1" || value == "on";
}

// The user counters of a run, as the console prints them.
std::map<std::string, double> CounterValues(
    const benchmark::BenchmarkReporter::Run& run) {
  std::map<std::string, double> values;
  for (const auto& [name, counter] : run.counters) values[name] = counter.value;
  return values;
}

}  // namespace

benchmark::ConsoleReporter::OutputOptions ConsoleOptionsFromFlags(int argc,
                                                                  char** argv) {
  const std::string color = FlagValue(argc, argv, "benchmark_color", "auto");
  const bool use_color = color == "auto" || color == "Auto"
                             ? isatty(STDOUT_FILENO) != 0
                             : IsTrue(color) || color == "force";
  const bool tabular =
      IsTrue(FlagValue(argc, argv, "benchmark_counters_tabular", "false"));
  int options = benchmark::ConsoleReporter::OO_None;
  if (use_color) options |= benchmark::ConsoleReporter::OO_Color;
  if (tabular) options |= benchmark::ConsoleReporter::OO_Tabular;
  return static_cast<benchmark::ConsoleReporter::OutputOptions>(options);
}

SummaryReporter::SummaryReporter(std::string header_note, OutputOptions options)
    : benchmark::ConsoleReporter(options),
      header_note_(std::move(header_note)) {}

bool SummaryReporter::Entry::HasTime() const {
  return !error && (has_median || iteration_count > 0);
}

double SummaryReporter::Entry::Milliseconds() const {
  if (has_median) return median_ms;
  return iteration_count > 0 ? iteration_ms_sum / iteration_count : 0.0;
}

SummaryReporter::Entry& SummaryReporter::Find(const std::string& implementation,
                                              const std::string& shape) {
  for (Entry& entry : entries_) {
    if (entry.implementation == implementation && entry.shape == shape) {
      return entry;
    }
  }
  Entry entry;
  entry.implementation = implementation;
  entry.shape = shape;
  entries_.push_back(std::move(entry));
  return entries_.back();
}

void SummaryReporter::ReportRuns(const std::vector<Run>& reports) {
  for (const Run& run : reports) {
    // function_name is the registered name, without the "/min_time:..." or
    // "/real_time" suffixes that run_name.str() adds.
    const auto [implementation, shape] = SplitName(run.run_name.function_name);
    Entry& entry = Find(implementation, shape);
    if (run.error_occurred) {
      entry.error = true;
    } else if (run.run_type == Run::RT_Aggregate) {
      // Only the median stands for the run; mean, stddev and cv are skipped.
      if (run.aggregate_name == "median") {
        entry.has_median = true;
        entry.median_ms = RealMilliseconds(run);
        entry.counters = CounterValues(run);
      }
    } else {
      entry.iteration_ms_sum += RealMilliseconds(run);
      ++entry.iteration_count;
      if (!entry.has_median) entry.counters = CounterValues(run);
    }
  }
  benchmark::ConsoleReporter::ReportRuns(reports);
}

std::vector<SummaryReporter::Result> SummaryReporter::Results() const {
  std::vector<Result> results;
  for (const Entry& entry : entries_) {
    if (!entry.HasTime()) continue;
    results.push_back(Result{entry.implementation, entry.shape,
                             entry.Milliseconds(), entry.counters});
  }
  return results;
}

void SummaryReporter::PrintSummary(std::ostream& out) const {
  out << "\n=== Summary: real time per iteration (ms); (Nx) = standard time / "
         "its time, > 1 is faster than standard ===\n";
  if (!header_note_.empty()) out << header_note_ << "\n";
  if (entries_.empty()) {
    out << "(no benchmark ran)\n";
    return;
  }

  // Shapes and implementations in the order they first ran, standard first
  // among the implementations so that the baseline column leads.
  std::vector<std::string> shapes;
  std::vector<std::string> implementations;
  for (const Entry& entry : entries_) {
    if (std::find(shapes.begin(), shapes.end(), entry.shape) == shapes.end()) {
      shapes.push_back(entry.shape);
    }
    if (std::find(implementations.begin(), implementations.end(),
                  entry.implementation) == implementations.end()) {
      implementations.push_back(entry.implementation);
    }
  }
  std::stable_partition(
      implementations.begin(), implementations.end(),
      [](const std::string& name) { return name == kBaseline; });

  auto lookup = [this](const std::string& implementation,
                       const std::string& shape) -> const Entry* {
    for (const Entry& entry : entries_) {
      if (entry.implementation == implementation && entry.shape == shape) {
        return &entry;
      }
    }
    return nullptr;
  };

  // Cells first, then widths, so that every column lines up.
  const size_t columns = implementations.size() + 2;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"shape"};
  for (const std::string& name : implementations) header.push_back(name);
  header.push_back("fastest (if not standard)");
  rows.push_back(header);
  for (const std::string& shape : shapes) {
    const Entry* baseline = lookup(kBaseline, shape);
    const bool has_baseline = baseline != nullptr && baseline->HasTime();
    std::vector<std::string> row = {shape};
    const Entry* fastest = nullptr;
    for (const std::string& name : implementations) {
      const Entry* entry = lookup(name, shape);
      if (entry == nullptr) {
        row.push_back("");
      } else if (!entry->HasTime()) {
        row.push_back(entry->error ? "error" : "");
      } else {
        const double ms = entry->Milliseconds();
        std::string cell = absl::StrFormat("%.3f", ms);
        if (has_baseline && name != kBaseline) {
          cell += ms > 0.0 ? absl::StrFormat(" (%.2fx)",
                                             baseline->Milliseconds() / ms)
                           : " (-)";
        }
        row.push_back(cell);
        if (fastest == nullptr || ms < fastest->Milliseconds()) {
          fastest = entry;
        }
      }
    }
    row.push_back(fastest != nullptr && fastest->implementation != kBaseline
                      ? fastest->implementation
                      : "");
    rows.push_back(row);
  }

  std::vector<size_t> widths(columns, 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < columns; ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      // The shape and the name of the fastest read left to right; the
      // numbers are right-aligned so that their decimal points line up.
      const bool left = c == 0 || c + 1 == columns;
      line += left
                  ? absl::StrFormat("%-*s", static_cast<int>(widths[c]), row[c])
                  : absl::StrFormat("%*s", static_cast<int>(widths[c]), row[c]);
      if (c + 1 < columns) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}

}  // namespace dilated
