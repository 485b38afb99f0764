"""torch_configure: LibTorch's stable-ABI headers from an installed PyTorch.

The op library of the PyTorch package (//python) compiles against the headers
that ship inside the torch wheel (torch/include) and links the libraries that
export the stable C shim (libtorch_cpu.so, libtorch_cuda.so) by their
version-free sonames: when torch loads the op library they are already in the
process, so no path to them is recorded. The Python
interpreter is DA_PYTHON if set (the package build backend sets it to the
interpreter it runs under), else python3 on PATH. Without torch the repository
is empty and defs.bzl says so; //python's targets are then skipped.
"""

_FIND_TORCH = """
import importlib.metadata, importlib.util, sys
spec = importlib.util.find_spec("torch")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
print(spec.submodule_search_locations[0])
print(importlib.metadata.version("torch"))
"""

_FOUND_BUILD = """
package(default_visibility = ["//visibility:public"])

# Only the stable ABI: the C shim, the header-only C++ library and its
# wrappers. Anything else from torch/include would tie the build to one torch.
cc_library(
    name = "stable_headers",
    hdrs = glob([
        "include/torch/csrc/stable/**",
        "include/torch/csrc/inductor/aoti_torch/c/**",
        "include/torch/csrc/inductor/aoti_torch/generated/c_shim_aten.h",
        "include/torch/headeronly/**",
    ]),
    includes = ["include"],
)

# The stable C shim's functions (aoti_torch_*, torch_*).
cc_library(
    name = "torch_cpu",
    linkopts = ["-L{lib}", "-Wl,-rpath-link,{lib}", "-ltorch_cpu"],
)

# Its CUDA functions (aoti_torch_get_current_cuda_stream, ...).
cc_library(
    name = "torch_cuda",
    linkopts = ["-L{lib}", "-Wl,-rpath-link,{lib}", "-ltorch_cuda"],
)
"""

_MISSING_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "stable_headers")

cc_library(name = "torch_cpu")

cc_library(name = "torch_cuda")
"""

def _torch_configure_impl(repository_ctx):
    python = repository_ctx.os.environ.get("DA_PYTHON") or repository_ctx.which("python3")
    result = None
    if python:
        result = repository_ctx.execute([python, "-c", _FIND_TORCH])
    if result == None or result.return_code != 0:
        repository_ctx.file("BUILD.bazel", _MISSING_BUILD)
        repository_ctx.file("defs.bzl", "TORCH_FOUND = False\nTORCH_VERSION = None\n")
        return
    torch_dir, version = result.stdout.strip().split("\n")
    repository_ctx.symlink(torch_dir + "/include", "include")
    repository_ctx.file("BUILD.bazel", _FOUND_BUILD.format(lib = torch_dir + "/lib"))
    repository_ctx.file(
        "defs.bzl",
        "TORCH_FOUND = True\nTORCH_VERSION = \"{}\"\n".format(version),
    )

torch_configure = repository_rule(
    implementation = _torch_configure_impl,
    environ = ["DA_PYTHON", "PATH"],
    local = True,
)
