#!/usr/bin/env bash
# LongNet forward on the CPU, side by side in one run: our model
# (//benchmarks:longnet_benchmark, "improved"/"auto" core) and the Python
# library's LongNet from PyPI (benchmarks/longnet_torch_peer.py), at each
# float32 matmul precision, same threads, same model, n = 32768.
# Prints the medians and the ratios of process CPU time (all threads) and of
# wall time.
#
#   ./bazelw build -c opt //benchmarks:longnet_benchmark
#   benchmarks/longnet_cpu_compare.sh [threads] [repetitions]
set -euo pipefail

threads="${1:-2}"
repetitions="${2:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${root}/bazel-bin/benchmarks/longnet_benchmark"
if [[ ! -x "${binary}" ]]; then
  echo "longnet_cpu_compare: build it first: ./bazelw build -c opt //benchmarks:longnet_benchmark" >&2
  exit 1
fi

ours() {  # filter -> "wall_s cpu_s"
  OMP_NUM_THREADS="${threads}" "${binary}" --benchmark_filter="$1" \
    --benchmark_min_time=0.01 --benchmark_repetitions="${repetitions}" \
    --benchmark_report_aggregates_only=true 2>/dev/null |
    awk '/_median/ {print $2, $4; exit}'
}

peer() {  # precision -> "wall_s cpu_s"
  python3 "${root}/benchmarks/longnet_torch_peer.py" --threads "${threads}" \
    --repeats "${repetitions}" --precision "$1" 2>/dev/null |
    awk '/median/ {print $4, $7; exit}'
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads ${threads}; medians of ${repetitions}"
printf '%-10s %-26s %-26s %-12s %-12s\n' precision "ours wall/cpu (s)" \
  "Python library wall/cpu (s)" "cpu ratio" "wall ratio"
for precision in highest high medium; do
  if [[ "${precision}" == highest ]]; then
    filter='^LongNet/improved/n:32768/'
  else
    filter="^LongNet/auto/matmul:${precision}/"
  fi
  read -r our_wall our_cpu <<<"$(ours "${filter}")"
  if [[ -z "${our_wall:-}" ]]; then
    echo "${precision}: not registered here (needs AMX)"
    continue
  fi
  read -r peer_wall peer_cpu <<<"$(peer "${precision}")"
  awk -v p="${precision}" -v ow="${our_wall}" -v oc="${our_cpu}" \
    -v pw="${peer_wall}" -v pc="${peer_cpu}" 'BEGIN {
      printf "%-10s %-26s %-26s %-12.2f %-12.2f\n", p, ow " / " oc,
        pw " / " pc, pc / oc, pw / ow }'
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
