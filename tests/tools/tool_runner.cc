#include "tests/tools/tool_runner.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace tools_testing {
namespace {

std::string ShellQuote(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

}  // namespace

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream),
                     std::istreambuf_iterator<char>());
}

ToolResult RunTool(const std::string& binary,
                   const std::vector<std::string>& args) {
  const std::string stderr_path = TempPath("stderr.txt");
  std::vector<std::string> quoted = {binary};
  for (const std::string& arg : args) quoted.push_back(ShellQuote(arg));
  const std::string command =
      absl::StrCat(absl::StrJoin(quoted, " "), " >/dev/null 2>", stderr_path);
  const int status = std::system(command.c_str());
  ToolResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.error = ReadAll(stderr_path);
  return result;
}

void ExpectOneLineError(const ToolResult& result, const std::string& tool,
                        const std::vector<std::string>& parts) {
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(std::count(result.error.begin(), result.error.end(), '\n'), 1)
      << result.error;
  EXPECT_TRUE(absl::StartsWith(result.error, tool + ": ")) << result.error;
  for (const std::string& part : parts) {
    EXPECT_THAT(result.error, ::testing::HasSubstr(part));
  }
}

}  // namespace tools_testing
}  // namespace dilated
