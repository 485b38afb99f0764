"""A PEP 517 build backend for dilated_attention_torch.

build_wheel runs ./bazelw to build the operator libraries against the torch
of the interpreter running this backend, then writes a wheel with the Python
modules, the libraries and the Abseil shared libraries they load (found with
ldd; the op libraries look for them in their own directory first). The libraries use LibTorch's stable ABI and no
Python C API, so the wheel is tagged py3-none-<platform> and serves every
torch from 2.10 on.

Environment:
  DA_BAZEL_FLAGS  flags for bazel build (default "-c opt"); add
                  "--config=cuda" for the CUDA kernels (libraries built with
                  nvcc from the CUDA toolkit).
"""

import ast
import base64
import hashlib
import io
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_PACKAGE = "dilated_attention_torch"


def _project():
    """name, version, description, requires-python and dependencies from
    pyproject.toml's [project] table (plain `key = value` lines, values
    written as Python literals, so no TOML parser is needed before 3.11)."""
    with open(os.path.join(_ROOT, "pyproject.toml"), encoding="utf-8") as file:
        text = file.read()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    return {key: ast.literal_eval(value)
            for key, value in re.findall(r"^([\w-]+)\s*=\s*(.+)$", table,
                                         re.MULTILINE)}


def _metadata():
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [f"Requires-Dist: {d}" for d in project["dependencies"]]
    return "\n".join(lines) + "\n"


def _dist_name():
    project = _project()
    return f"{project['name']}-{project['version']}"


def _platform_tag():
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _build_libraries():
    """Runs bazel; returns the paths of the libraries it built."""
    flags = shlex.split(os.environ.get("DA_BAZEL_FLAGS", "-c opt"))
    cuda = "--config=cuda" in flags or any(
        flag == "--config" and value == "cuda"
        for flag, value in zip(flags, flags[1:]))
    libraries = ["_ops_cpu.so", "_ops_mpi.so"] + (["_ops_cuda.so"]
                                                 if cuda else [])
    targets = [f"//python:{_PACKAGE}/{name}" for name in libraries]
    environment = dict(os.environ, DA_PYTHON=sys.executable)
    command = [os.path.join(_ROOT, "bazelw"), "build"] + flags + targets
    print("dilated_attention_build:", " ".join(command), file=sys.stderr)
    subprocess.run(command, cwd=_ROOT, env=environment, check=True,
                   stdout=sys.stderr)
    bin_dir = subprocess.run(
        [os.path.join(_ROOT, "bazelw"), "info", "bazel-bin"] + flags,
        cwd=_ROOT, env=environment, check=True, capture_output=True,
        text=True).stdout.strip()
    built = [os.path.join(bin_dir, "python", _PACKAGE, name)
             for name in libraries]
    for path in built:
        if not os.path.exists(path):
            raise RuntimeError(f"bazel did not produce {path}; is torch "
                               f"installed for {sys.executable}?")
    return built


def _needed(library):
    """The DT_NEEDED sonames of a shared library."""
    dynamic = subprocess.run(["readelf", "-d", library], check=True,
                             capture_output=True, text=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))


def _bundled_libraries(libraries):
    """(file, soname) of the Abseil shared libraries the op libraries load
    (Debian's), which the wheel carries next to them.

    The op libraries' RUNPATH ($ORIGIN) serves only their own dependencies,
    so every Abseil library loaded, indirect ones included, must be one they
    name directly; the build fails otherwise (add it to their linkopts).
    """
    bundled = {}
    for library in libraries:
        listing = subprocess.run(["ldd", library], check=True,
                                 capture_output=True, text=True).stdout
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>" and "libabsl_" in parts[0]:
                bundled[parts[0]] = os.path.realpath(parts[2])
    direct = set().union(*(_needed(library) for library in libraries))
    indirect = sorted(set(bundled) - direct)
    if indirect:
        raise RuntimeError(
            "the op libraries load Abseil libraries they do not name "
            f"directly: {indirect}; add them to _OPS_LINKOPTS in "
            "python/BUILD.bazel")
    return sorted((path, soname) for soname, path in bundled.items())


def _package_files():
    """(path on disk, path in the wheel) of every Python module."""
    source = os.path.join(_ROOT, "python", _PACKAGE)
    for directory, _, names in os.walk(source):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                yield path, os.path.join(
                    _PACKAGE, os.path.relpath(path, source))


def _record_line(archive_path, data):
    digest = base64.urlsafe_b64encode(
        hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{archive_path},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    files = list(_package_files())
    libraries = _build_libraries()
    files += [(path, f"{_PACKAGE}/{os.path.basename(path)}")
              for path in libraries]
    files += [(path, f"{_PACKAGE}/{soname}")
              for path, soname in _bundled_libraries(libraries)]
    dist_info = f"{_dist_name()}.dist-info"
    tag = f"py3-none-{_platform_tag()}"
    wheel_name = f"{_dist_name()}-{tag}.whl"
    generated = {
        f"{dist_info}/METADATA": _metadata().encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: dilated_attention_build\n"
            f"Root-Is-Purelib: false\nTag: {tag}\n").encode(),
        f"{dist_info}/top_level.txt": f"{_PACKAGE}\n".encode(),
    }
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w",
                         zipfile.ZIP_DEFLATED) as wheel:
        for path, archive_path in files:
            with open(path, "rb") as file:
                data = file.read()
            info = zipfile.ZipInfo(archive_path)
            info.external_attr = (0o755 if path.endswith(".so") else
                                  0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
            record.append(_record_line(archive_path, data))
        for archive_path, data in generated.items():
            wheel.writestr(archive_path, data)
            record.append(_record_line(archive_path, data))
        record.append(f"{dist_info}/RECORD,,")
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    """The files git tracks, with PKG-INFO."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=_ROOT, check=True,
                             capture_output=True).stdout.decode().split("\0")
    name = _dist_name()
    archive = f"{name}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, archive), "w:gz") as tar:
        for path in filter(None, tracked):
            tar.add(os.path.join(_ROOT, path), arcname=f"{name}/{path}",
                    recursive=False)
        info = tarfile.TarInfo(f"{name}/PKG-INFO")
        data = _metadata().encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive
