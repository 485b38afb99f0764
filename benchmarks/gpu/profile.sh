#!/bin/bash
# Runs on the GPU machine, from the folder benchmarks/gpu/stage.sh fills:
# Nsight Compute on the fused "improved" kernels of one benchmark case (by
# default config A, n = 128K, forward + backward: the forward, dQ and dK/dV
# kernels once each), with the clocks left as found. Prints the headline
# numbers of every kernel (duration, pipe use, L2 and memory throughput,
# warp stall reasons) and keeps the whole report in $OUT (or /tmp).
#
#   bash .gpu/profile.sh ['^improved/A/n:131072/fwdbwd/m']
set -u
dir=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp}
filter=${1:-'^improved/A/n:131072/fwdbwd/m'}
export LD_LIBRARY_PATH=$dir:${LD_LIBRARY_PATH:-}
# Skip the warm-up call's kernels; profile the first timed iteration's.
ncu --clock-control none --set full -k 'regex:Wgmma|Flash' \
  --launch-skip 3 --launch-count 3 -o "$out/profile" -f \
  "$dir/cuda_attention_benchmark" --benchmark_filter="$filter" \
  > "$out/profile.log" 2>&1
echo "ncu: exit $?"
tail -3 "$out/profile.log"
ncu -i "$out/profile.ncu-rep" --page details --csv > "$out/profile.csv" 2>&1
ncu -i "$out/profile.ncu-rep" --page raw --csv \
  --metrics gpu__time_duration.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum.per_second,lts__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_issued.avg.pct_of_peak_sustained_active,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active \
  > "$out/profile_headline.csv" 2>&1
cat "$out/profile_headline.csv"
# Warp stall reasons, largest first, per kernel.
grep -E '"Warp State Statistics"|Stall' "$out/profile.csv" | head -60 \
  > "$out/profile_stalls.txt"
python3 - "$out/profile.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
try:
    k, sec, name, unit, val = (head.index(c) for c in
        ("Kernel Name", "Section Name", "Metric Name", "Metric Unit", "Metric Value"))
except ValueError:
    print("\n".join(",".join(r) for r in rows[:20])); sys.exit()
for r in rows[1:]:
    if len(r) <= val:
        continue
    if r[sec] in ("GPU Speed Of Light Throughput", "Compute Workload Analysis",
                  "Memory Workload Analysis", "Warp State Statistics", "Occupancy",
                  "Launch Statistics", "Scheduler Statistics"):
        print(r[k][:40], "|", r[sec][:24], "|", r[name], "=", r[val], r[unit])
EOF
