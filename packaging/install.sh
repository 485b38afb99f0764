#!/usr/bin/env bash
# Installs the library under a prefix, for programs built with CMake,
# pkg-config or a plain compiler command:
#
#   PREFIX/include/dilated_attention/...   the public headers (include root)
#   PREFIX/lib/libdilated_attention.so[.0]
#   PREFIX/lib/cmake/DilatedAttention/      find_package(DilatedAttention)
#   PREFIX/lib/pkgconfig/dilated_attention.pc
#
# Only through `bazel run`, which starts it in its runfiles tree and passes
# the files to install before "--":
#   ./bazelw run -c opt //:install -- PREFIX
#   ./bazelw run -c opt --config=cuda //:install -- PREFIX   (CUDA kernels too)
# A relative PREFIX is taken from the directory bazel was run in.
set -euo pipefail

usage="usage: ./bazelw run -c opt [--config=cuda] //:install -- PREFIX"
if (($# < 4)); then
  echo "install: run me with ${usage#usage: }" >&2
  exit 2
fi

library=$1
cmake_config=$2
cmake_version=$3
pkgconfig=$4
shift 4
headers=()
while (($# > 0)) && [[ "$1" != "--" ]]; do
  headers+=("$1")
  shift
done
if (($# != 2)); then
  echo "install: give exactly one PREFIX. ${usage}" >&2
  exit 2
fi
prefix=$2
if [[ -z "${prefix}" ]]; then
  echo "install: PREFIX is empty. ${usage}" >&2
  exit 2
fi
if [[ "${prefix}" != /* ]]; then
  prefix="${BUILD_WORKING_DIRECTORY:-${PWD}}/${prefix}"
fi

include_dir="${prefix}/include/dilated_attention"
lib_dir="${prefix}/lib"
cmake_dir="${lib_dir}/cmake/DilatedAttention"
pkgconfig_dir="${lib_dir}/pkgconfig"

# Headers from an earlier install could include one that no longer exists.
rm -rf "${include_dir}"
mkdir -p "${include_dir}" "${cmake_dir}" "${pkgconfig_dir}"

for header in "${headers[@]}"; do
  install -D -m 0644 "${header}" "${include_dir}/${header}"
done

install -m 0755 "${library}" "${lib_dir}/libdilated_attention.so.0"
ln -sf libdilated_attention.so.0 "${lib_dir}/libdilated_attention.so"

install -m 0644 "${cmake_config}" "${cmake_dir}/DilatedAttentionConfig.cmake"
install -m 0644 "${cmake_version}" \
  "${cmake_dir}/DilatedAttentionConfigVersion.cmake"
install -m 0644 "${pkgconfig}" "${pkgconfig_dir}/dilated_attention.pc"

echo "installed ${#headers[@]} headers, libdilated_attention.so, the CMake" \
  "package and dilated_attention.pc under ${prefix}"
