#!/bin/bash
# Runs on the GPU machine: two builds of cuda_attention_benchmark, A and B,
# alternately on the same cases (A, B, A, B, ...), so that a change is
# measured against its baseline in one call on one card. Prints one line per
# run and case; logs go to $OUT (or /tmp).
#
#   [B_ENV='NAME=VALUE ...'] bash ab.sh A_BINARY B_BINARY [FILTER] [ROUNDS]
# FILTER defaults to config A at n = 1M, forward and forward + backward.
# B_ENV sets variables for the B runs only (one binary with and without a
# switch such as DA_FUSED_BACKWARD=1).
set -u
a=$1
b=$2
filter=${3:-'^improved/A/n:1048576/(fwd|fwdbwd)(/causal)?/m'}
rounds=${4:-3}
out=${OUT:-/tmp}
for round in $(seq "$rounds"); do
  for side in A B; do
    binary=$a
    side_env=()
    if [ "$side" = B ]; then
      binary=$b
      read -r -a side_env <<< "${B_ENV:-}"
    fi
    env "${side_env[@]}" "$binary" --benchmark_filter="$filter" \
      > "$out/ab_${side}_${round}.log" 2>&1
    awk -v side="$side" -v round="$round" \
      '/^improved|^standard/ {print side, round, $1, $2, $3}' \
      "$out/ab_${side}_${round}.log"
  done
done
