#!/bin/bash
# Runs on the GPU machine: two builds of cuda_attention_benchmark, A and B,
# alternately on the same cases (A, B, A, B, ...), so that a change is
# measured against its baseline in one call on one card. Prints one line per
# run and case; logs go to $OUT (or /tmp).
#
#   bash ab.sh A_BINARY B_BINARY [FILTER] [ROUNDS]
# FILTER defaults to config A at n = 1M, forward and forward + backward.
set -u
a=$1
b=$2
filter=${3:-'^improved/A/n:1048576/(fwd|fwdbwd)(/causal)?/m'}
rounds=${4:-3}
out=${OUT:-/tmp}
for round in $(seq "$rounds"); do
  for side in A B; do
    binary=$a
    [ "$side" = B ] && binary=$b
    "$binary" --benchmark_filter="$filter" > "$out/ab_${side}_${round}.log" 2>&1
    awk -v side="$side" -v round="$round" \
      '/^improved|^standard/ {print side, round, $1, $2, $3}' \
      "$out/ab_${side}_${round}.log"
  done
done
