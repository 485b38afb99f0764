#include "benchmarks/sequence_length_plot.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"
#include "benchmarks/summary_reporter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using Result = SummaryReporter::Result;

const MemoryCounter kMemory = {"extra_heap_MiB", "heap (MiB)"};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

Result Make(const std::string& implementation, const std::string& shape,
            double ms, double mib) {
  return Result{implementation, shape, ms, {{"extra_heap_MiB", mib}}};
}

TEST(SequenceLengthPanelsTest, OneTimeAndOneMemoryPanelPerFamily) {
  const std::vector<Result> results = {
      Make("standard", "A/n:32768/full/fwd", 40, 9),
      Make("standard", "A/n:8192/full/fwd", 10, 3),
      Make("improved", "A/n:8192/full/fwd", 2, 1),
      Make("improved", "A/n:32768/full/fwd", 8, 1),
      // One length only: nothing to draw a line through.
      Make("improved", "B/n:2048/full/fwd", 1, 1),
      // No length at all.
      Make("improved", "fma_peak", 1, 0),
  };
  const std::vector<plot::Panel> panels =
      SequenceLengthPanels(results, kMemory);
  ASSERT_EQ(panels.size(), 2u);
  EXPECT_EQ(panels[0].title, "A full fwd: time (ms)");
  EXPECT_EQ(panels[1].title, "A full fwd: heap (MiB)");
  EXPECT_EQ(panels[0].x_label, "sequence length n");
  ASSERT_EQ(panels[0].series.size(), 2u);
  EXPECT_EQ(panels[0].series[0].name, "standard");
  // Points in ascending length whatever the order they ran in.
  EXPECT_THAT(panels[0].series[0].points,
              ElementsAre(Pair(8192, 10), Pair(32768, 40)));
  EXPECT_THAT(panels[1].series[1].points,
              ElementsAre(Pair(8192, 1), Pair(32768, 1)));
}

TEST(SequenceLengthPanelsTest, AResultWithoutTheCounterHasNoMemoryPoint) {
  std::vector<Result> results = {Make("standard", "A/n:1024/fwd", 1, 2),
                                 Make("standard", "A/n:2048/fwd", 2, 4),
                                 Result{"auto", "A/n:1024/fwd", 1, {}},
                                 Result{"auto", "A/n:2048/fwd", 2, {}}};
  const std::vector<plot::Panel> panels =
      SequenceLengthPanels(results, kMemory);
  ASSERT_EQ(panels.size(), 2u);
  EXPECT_EQ(panels[0].series.size(), 2u);
  ASSERT_EQ(panels[1].series.size(), 1u);
  EXPECT_EQ(panels[1].series[0].name, "standard");
}

TEST(WriteSequenceLengthPlotTest, WritesAPngFile) {
  const std::string path = TempPath("sequence_length.png");
  ASSERT_TRUE(WriteSequenceLengthPlot({Make("standard", "A/n:1024/fwd", 1, 2),
                                       Make("standard", "A/n:2048/fwd", 2, 4)},
                                      kMemory, "title", path)
                  .ok());
  std::ifstream file(path, std::ios::binary);
  std::string signature(8, '\0');
  file.read(&signature[0], 8);
  EXPECT_EQ(signature, "\x89PNG\r\n\x1a\n");
}

TEST(WriteSequenceLengthPlotTest, NothingToPlotIsAnError) {
  const absl::Status status =
      WriteSequenceLengthPlot({Make("standard", "A/n:1024/fwd", 1, 2)}, kMemory,
                              "title", TempPath("empty.png"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("two or more sequence lengths"));
}

// Runs TakePlotFlag on `args` (the program name first).
std::pair<absl::StatusOr<std::string>, std::vector<std::string>> Take(
    std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(&arg[0]);
  int argc = static_cast<int>(argv.size());
  absl::StatusOr<std::string> path = TakePlotFlag(&argc, argv.data());
  return {path, std::vector<std::string>(argv.begin(), argv.begin() + argc)};
}

TEST(TakePlotFlagTest, RemovesTheFlagAndKeepsTheRest) {
  unsetenv("BUILD_WORKING_DIRECTORY");
  const auto [path, rest] =
      Take({"bench", "--plot=/a/x.png", "--benchmark_filter=y"});
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "/a/x.png");
  EXPECT_THAT(rest, ElementsAre("bench", "--benchmark_filter=y"));
  EXPECT_EQ(*Take({"bench"}).first, "");
}

TEST(TakePlotFlagTest, ARelativeFileIsWhereBazelRanFrom) {
  setenv("BUILD_WORKING_DIRECTORY", "/home/user/project", 1);
  EXPECT_EQ(*Take({"bench", "--plot=out/x.png"}).first,
            "/home/user/project/out/x.png");
  unsetenv("BUILD_WORKING_DIRECTORY");
}

TEST(TakePlotFlagTest, AFlagWithoutAFileIsInvalid) {
  for (const std::string arg : {"--plot", "--plot="}) {
    const absl::StatusOr<std::string> path = Take({"bench", arg}).first;
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument) << arg;
    EXPECT_THAT(path.status().message(), HasSubstr("--plot needs a file"));
  }
}

// A finished iteration run of `name` that took `ms` per iteration.
benchmark::BenchmarkReporter::Run IterationRun(const std::string& name,
                                               double ms, double counter) {
  benchmark::BenchmarkReporter::Run run;
  run.run_name.function_name = name;
  run.iterations = 4;
  run.time_unit = benchmark::kMillisecond;
  run.real_accumulated_time = 4 * ms * 1e-3;  // Seconds, over all iterations.
  run.counters["extra_heap_MiB"] = benchmark::Counter(counter);
  return run;
}

TEST(SummaryReporterTest, ResultsCarryTimesAndCountersAndSkipErrors) {
  SummaryReporter reporter("");
  std::ostringstream sink;
  reporter.SetOutputStream(&sink);
  reporter.SetErrorStream(&sink);
  benchmark::BenchmarkReporter::Run failed =
      IterationRun("improved/A/n:1024/fwd", 1, 1);
  failed.error_occurred = true;
  reporter.ReportRuns({IterationRun("standard/A/n:1024/fwd", 12.5, 3), failed});
  const std::vector<Result> results = reporter.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].implementation, "standard");
  EXPECT_EQ(results[0].shape, "A/n:1024/fwd");
  EXPECT_DOUBLE_EQ(results[0].milliseconds, 12.5);
  EXPECT_THAT(results[0].counters, ElementsAre(Pair("extra_heap_MiB", 3)));
}

}  // namespace
}  // namespace dilated
