#!/usr/bin/env python3
"""Turns Google Benchmark JSON of the allocator benchmarks into Markdown.

Usage:
  allocator_report.py host RESULTS.json      # //benchmarks:allocator_benchmark
  allocator_report.py cuda RESULTS.json      # //benchmarks:cuda_allocator_benchmark
  allocator_report.py attention RESULTS.json # the /pool pairs of
      //benchmarks:attention_benchmark or //benchmarks:cuda_attention_benchmark

Reads the median aggregates (run with --benchmark_repetitions=N). Host times
are CPU time per allocate+free pair per thread; device times are host wall
time per pair. Ratios compare allocators measured in the same run.
"""
import json
import sys


def medians(path, field):
    with open(path) as f:
        data = json.load(f)
    result = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        # pair/pooled/4096/real_time/threads:2 -> ("pair", "pooled", 4096, 2)
        parts = b["run_name"].split("/")
        threads = 1
        for p in parts:
            if p.startswith("threads:"):
                threads = int(p.split(":")[1])
        result[(parts[0], parts[1], int(parts[2]), threads)] = b[field]
    return data["context"], result


def size_name(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return "%d %s" % (n // scale, unit)
    return "%d B" % n


def ns(t):
    return "%.0f" % t if t >= 100 else "%.1f" % t


def host(path):
    context, m = medians(path, "cpu_time")
    print("%d CPUs at %d MHz, %s" % (context["num_cpus"], context["mhz_per_cpu"],
                                    context.get("date", "")))
    for shape in ("pair", "trace"):
        for threads in (1, 2):
            sizes = sorted({k[2] for k in m if k[0] == shape and k[3] == threads})
            if not sizes:
                continue
            print()
            what = "size" if shape == "pair" else "largest size"
            print("%s, %d thread%s (ns per pair per thread)" %
                  (shape, threads, "s" if threads > 1 else ""))
            print()
            print("| %s | malloc | direct | pooled | pooled / malloc |" % what)
            print("|---|---|---|---|---|")
            for s in sizes:
                row = [m.get((shape, k, s, threads)) for k in
                       ("malloc", "direct", "pooled")]
                if None in row:
                    continue
                print("| %s | %s | %s | %s | %.2f |" % (
                    size_name(s), ns(row[0]), ns(row[1]), ns(row[2]),
                    row[2] / row[0]))


def cuda(path):
    context, m = medians(path, "real_time")
    print("%d CPUs at %d MHz, %s" % (context["num_cpus"], context["mhz_per_cpu"],
                                    context.get("date", "")))
    print()
    print("| size | cuda_direct (ns) | cuda_async (ns) | cuda_pooled (ns) |"
          " direct / pooled | async / pooled |")
    print("|---|---|---|---|---|---|")
    for s in sorted({k[2] for k in m}):
        d, a, p = (m[("pair", k, s, 1)] for k in
                   ("cuda_direct", "cuda_async", "cuda_pooled"))
        print("| %s | %s | %s | %s | %.0fx | %.0fx |" % (
            size_name(s), ns(d), ns(a), ns(p), d / p, a / p))


def case_name(run_name):
    """improved/A/n:8192/full/fwd/pool/min_time:0.200/real_time -> without
    the options Google Benchmark appends."""
    options = ("min_time:", "real_time", "manual_time", "threads:",
               "repeats:")
    return "/".join(p for p in run_name.split("/")
                    if not p.startswith(options))


def attention(path):
    with open(path) as f:
        data = json.load(f)
    median = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            median[case_name(b["run_name"])] = b
    print("| case | direct ms | pool ms | pool / direct | workspace MiB |"
          " pool peak reserved / peak in use |")
    print("|---|---|---|---|---|---|")
    for name in sorted(median):
        if not name.endswith("/pool"):
            continue
        base = name[:-len("/pool")]
        # CUDA pairs name their other half /direct, CPU ones leave it bare.
        direct = median.get(base + "/direct") or median.get(base)
        pool = median[name]
        if direct is None:
            continue
        unit = 1e-6 if pool["time_unit"] == "ns" else (
            1e-3 if pool["time_unit"] == "us" else 1.0)
        d, p = direct["real_time"] * unit, pool["real_time"] * unit
        workspace = pool.get("workspace_MiB")
        ratio = pool.get("reserved_over_in_use")
        print("| %s | %.3g | %.3g | %.2f | %s | %s |" % (
            base, d, p, p / d,
            "-" if workspace is None else "%.2f" % workspace,
            "-" if ratio is None else "%.2f" % ratio))


if __name__ == "__main__":
    modes = {"host": host, "cuda": cuda, "attention": attention}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    modes[sys.argv[1]](sys.argv[2])
