"""Finds the CUDA toolkit on this machine and exposes it as a repository.

The toolkit is located through the CUDA_PATH environment variable, else through
`nvcc` on PATH, else /usr/local/cuda if it holds bin/nvcc. When none is found
the repository still loads (so CPU-only builds work); its targets then fail with
a clear message if a CUDA build asks for them.
"""

def _find_cuda(repository_ctx):
    cuda_path = repository_ctx.os.environ.get("CUDA_PATH", "")
    if cuda_path and repository_ctx.path(cuda_path + "/bin/nvcc").exists:
        return cuda_path
    nvcc = repository_ctx.which("nvcc")
    if nvcc:
        return str(nvcc.realpath.dirname.dirname)
    if repository_ctx.path("/usr/local/cuda/bin/nvcc").exists:
        return "/usr/local/cuda"
    return None

_FOUND_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cuda_headers",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "cudart",
    linkopts = [
        "-L{lib}",
        "-Wl,-rpath,{lib}",
        "-lcudart_static",
        "-ldl",
        "-lrt",
        "-lpthread",
    ],
    deps = [":cuda_headers"],
)

cc_library(
    name = "cublas",
    linkopts = [
        "-L{lib}",
        "-Wl,-rpath,{lib}",
        "-lcublas",
        "-lcublasLt",
    ],
    deps = [":cudart"],
)

# NCCL as shipped in the toolkit's include/ and lib64/ (nccl.h, libnccl.so).
cc_library(
    name = "nccl",
    linkopts = [
        "-L{lib}",
        "-Wl,-rpath,{lib}",
        "-lnccl",
    ],
    deps = [":cudart"],
)
"""

_MISSING_BUILD = """
package(default_visibility = ["//visibility:public"])

genrule(
    name = "missing",
    outs = ["missing.h"],
    cmd = "echo 'CUDA toolkit not found: set CUDA_PATH or put nvcc on PATH' >&2; exit 1",
)

cc_library(name = "cuda_headers", hdrs = [":missing"])

cc_library(name = "cudart", deps = [":cuda_headers"])

cc_library(name = "cublas", deps = [":cuda_headers"])

cc_library(name = "nccl", deps = [":cuda_headers"])
"""

def _cuda_configure_impl(repository_ctx):
    cuda_path = _find_cuda(repository_ctx)
    if cuda_path == None:
        repository_ctx.file("BUILD.bazel", _MISSING_BUILD)
        repository_ctx.file("defs.bzl", "NVCC = None\nCUDA_PATH = None\n")
        return
    lib = cuda_path + "/lib64"
    if not repository_ctx.path(lib).exists:
        lib = cuda_path + "/lib"
    repository_ctx.symlink(cuda_path + "/include", "include")
    repository_ctx.file("BUILD.bazel", _FOUND_BUILD.format(lib = lib))
    repository_ctx.file(
        "defs.bzl",
        "NVCC = \"{}/bin/nvcc\"\nCUDA_PATH = \"{}\"\n".format(cuda_path, cuda_path),
    )

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH", "PATH"],
    local = True,
)
