#include "benchmarks/sequence_length_plot.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "benchmarks/plot/log_log_chart.h"
#include "benchmarks/plot/png_file.h"
#include "benchmarks/plot/raster_image.h"

namespace dilated {
namespace {

constexpr char kLengthPrefix[] = "n:";

// A shape split into its family and its sequence length; false when the
// shape has no "n:<length>" component.
bool SplitShape(const std::string& shape, std::string* family,
                int64_t* length) {
  std::vector<std::string> rest;
  bool found = false;
  for (const absl::string_view part : absl::StrSplit(shape, '/')) {
    if (!found && absl::StartsWith(part, kLengthPrefix) &&
        absl::SimpleAtoi(part.substr(sizeof(kLengthPrefix) - 1), length)) {
      found = true;
    } else {
      rest.emplace_back(part);
    }
  }
  *family = absl::StrJoin(rest, " ");
  return found;
}

// Adds (x, y) to the series of `name` in `panel`, creating it if needed, and
// keeps the series' points in ascending x.
void AddPoint(plot::Panel* panel, const std::string& name, double x, double y) {
  auto it = std::find_if(
      panel->series.begin(), panel->series.end(),
      [&name](const plot::Series& series) { return series.name == name; });
  if (it == panel->series.end()) {
    panel->series.push_back(plot::Series{name, {}});
    it = panel->series.end() - 1;
  }
  it->points.emplace_back(x, y);
  std::sort(it->points.begin(), it->points.end());
}

}  // namespace

std::vector<plot::Panel> SequenceLengthPanels(
    const std::vector<SummaryReporter::Result>& results,
    const MemoryCounter& memory) {
  struct Family {
    std::string name;
    std::vector<int64_t> lengths;
    plot::Panel time;
    plot::Panel memory;
  };
  std::vector<Family> families;
  for (const SummaryReporter::Result& result : results) {
    std::string name;
    int64_t length = 0;
    if (!SplitShape(result.shape, &name, &length)) continue;
    auto family = std::find_if(
        families.begin(), families.end(),
        [&name](const Family& family) { return family.name == name; });
    if (family == families.end()) {
      families.push_back(Family{name, {}, {}, {}});
      family = families.end() - 1;
      family->time.title = absl::StrCat(name, ": time (ms)");
      family->memory.title = absl::StrCat(name, ": ", memory.label);
      family->time.x_label = family->memory.x_label = "sequence length n";
    }
    if (std::find(family->lengths.begin(), family->lengths.end(), length) ==
        family->lengths.end()) {
      family->lengths.push_back(length);
    }
    const double x = static_cast<double>(length);
    AddPoint(&family->time, result.implementation, x, result.milliseconds);
    const auto counter = result.counters.find(memory.name);
    if (counter != result.counters.end()) {
      AddPoint(&family->memory, result.implementation, x, counter->second);
    }
  }
  std::vector<plot::Panel> panels;
  for (Family& family : families) {
    if (family.lengths.size() < 2) continue;
    panels.push_back(std::move(family.time));
    panels.push_back(std::move(family.memory));
  }
  return panels;
}

absl::Status WriteSequenceLengthPlot(
    const std::vector<SummaryReporter::Result>& results,
    const MemoryCounter& memory, const std::string& title,
    const std::string& path) {
  const std::vector<plot::Panel> panels = SequenceLengthPanels(results, memory);
  if (panels.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--plot=", path,
                     ": no shape ran at two or more sequence lengths (check "
                     "--benchmark_filter), so there is nothing to plot"));
  }
  return plot::WritePng(plot::DrawLogLogPanels(title, panels), path);
}

absl::StatusOr<std::string> TakePlotFlag(int* argc, char** argv) {
  const std::string flag = "--plot";
  std::string path;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == flag || arg.rfind(flag + "=", 0) == 0) {
      path = arg.size() > flag.size() ? arg.substr(flag.size() + 1) : "";
      if (path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", arg,
            "\": --plot needs a file name, e.g. --plot=results.png"));
      }
      continue;
    }
    argv[kept++] = argv[i];
  }
  *argc = kept;
  // `bazel run` starts the binary in its runfiles; a relative name means the
  // directory the user ran bazel in.
  const char* working_directory = std::getenv("BUILD_WORKING_DIRECTORY");
  if (!path.empty() && path[0] != '/' && working_directory != nullptr) {
    path = absl::StrCat(working_directory, "/", path);
  }
  return path;
}

}  // namespace dilated
