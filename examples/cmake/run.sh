#!/usr/bin/env bash
# Installs the library to a temporary prefix, then uses it as a program built
# without Bazel would, and fails if any step does:
#   1. every installed header compiles on its own with only the include root
#      and Debian's default include path (so none needs Eigen, CUDA or MPI
#      headers, nor a header that was not installed);
#   2. the shared library has no undefined symbol;
#   3. CMake finds the package and builds examples/external_workspace/main.cc,
#      which then runs and checks its results;
#   4. the same program builds with the flags of `pkg-config dilated_attention`
#      and runs.
# Usage: examples/cmake/run.sh [bazel flags, e.g. -c opt --config=cuda]
set -euo pipefail
cd "$(dirname "$0")"
readonly example_dir=$PWD
readonly repository=$(cd ../.. && pwd)

# The tools this check uses, from Debian (the library's own packages come
# through bazelw).
needed=()
command -v cmake >/dev/null 2>&1 || needed+=(cmake)
command -v make >/dev/null 2>&1 || needed+=(make)
command -v pkg-config >/dev/null 2>&1 || needed+=(pkg-config)
if ((${#needed[@]} > 0)); then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends "${needed[@]}" ||
    { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y \
      --no-install-recommends "${needed[@]}"; }
fi

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
prefix="${work}/prefix"

"${repository}/bazelw" run "$@" //:install -- "${prefix}"

echo "== every installed header compiles alone"
headers=0
while IFS= read -r header; do
  relative=${header#"${prefix}/include/dilated_attention/"}
  printf '#include "%s"\n' "${relative}" >"${work}/one_header.cc"
  c++ -std=c++17 -fsyntax-only -I"${prefix}/include/dilated_attention" \
    "${work}/one_header.cc" || {
    echo "FAIL: ${relative} does not compile on its own" >&2
    exit 1
  }
  headers=$((headers + 1))
done < <(find "${prefix}/include/dilated_attention" -name '*.h' | sort)
echo "${headers} headers ok"

echo "== no undefined symbol in the shared library"
if ldd -r "${prefix}/lib/libdilated_attention.so" 2>&1 | grep -E "undefined|not found"; then
  echo "FAIL: libdilated_attention.so does not resolve" >&2
  exit 1
fi
echo "ok"

echo "== CMake: find_package(DilatedAttention)"
cmake -S "${example_dir}" -B "${work}/build" -DCMAKE_PREFIX_PATH="${prefix}" \
  -DCMAKE_BUILD_TYPE=Release
cmake --build "${work}/build"
"${work}/build/check_improved"

echo "== pkg-config dilated_attention"
export PKG_CONFIG_PATH="${prefix}/lib/pkgconfig"
# shellcheck disable=SC2046  # pkg-config prints several flags
c++ -o "${work}/check_improved_pkgconfig" ../external_workspace/main.cc \
  $(pkg-config --cflags --libs dilated_attention)
"${work}/check_improved_pkgconfig"
