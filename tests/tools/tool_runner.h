// File: tool_runner.h
//
// Runs a command-line tool of the project as a subprocess, the way a user
// would, and checks the one-line error contract of the tools.

#ifndef TESTS_TOOLS_TOOL_RUNNER_H_
#define TESTS_TOOLS_TOOL_RUNNER_H_

#include <string>
#include <vector>

namespace dilated {
namespace tools_testing {

struct ToolResult {
  int exit_code = -1;
  std::string error;  // Everything the tool wrote to stderr.
};

// Returns `name` inside the test's temporary directory.
std::string TempPath(const std::string& name);

// Returns the contents of the file at `path` ("" if unreadable).
std::string ReadAll(const std::string& path);

// Runs `binary` with `args` (each quoted for the shell) and returns its exit
// code and stderr; stdout is discarded.
ToolResult RunTool(const std::string& binary,
                   const std::vector<std::string>& args);

// Expects a failed run whose stderr is exactly one line starting with
// "<tool>: " and containing every one of `parts`.
void ExpectOneLineError(const ToolResult& result, const std::string& tool,
                        const std::vector<std::string>& parts);

}  // namespace tools_testing
}  // namespace dilated

#endif  // TESTS_TOOLS_TOOL_RUNNER_H_
