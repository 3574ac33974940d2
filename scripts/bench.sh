#!/usr/bin/env bash
# End-to-end benchmark on a generated dump: generate, ingest (peak RSS via /usr/bin/time -v),
# compute per table (median of runs), then scripts/bench-ingest.sh: ingest against DuckDB's
# conversion of the same dump in one run (the ratio), throughput per input kind and the memory
# curve over lake sizes.
# Usage: scripts/bench.sh [EVENTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000000}
runs=${2:-3}
data=${BENCH_DIR:-bench-data}
dump="$data/dump-$events"
bin="$PWD/target/release/crmkpi"
tables_bench=$(scripts/build-bench.sh)

mkdir -p "$data"
config="$data/crmkpi.toml"
printf 'timezone = "Europe/Berlin"\n[fx]\nUSD = 0.92\n' > "$config"
if [ ! -d "$dump" ]; then
    /usr/bin/time -f "generate: %e s, peak RSS %M KiB" \
        "$bin" -q generate --events "$events" --seed 1 --out "$dump" --events-per-file 2000000 --dirty-rate 0.001
fi
bytes=$(du -sb "$dump" | cut -f1)
echo "dump: $events events, $((bytes / 1000000)) MB in $(ls "$dump" | wc -l) files ($(nproc) cores)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ingest_times=(); ingest_rss=()
for run in $(seq "$runs"); do
    rm -rf "$data/lake"
    /usr/bin/time -v "$bin" -q --config "$config" ingest "$dump" --lake "$data/lake" > /dev/null 2> "$data/time.txt"
    ingest_times+=("$(grep 'Elapsed (wall' "$data/time.txt" | awk -F': ' '{print $2}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')")
    ingest_rss+=("$(grep 'Maximum resident' "$data/time.txt" | awk '{print $6}')")
done
ingest_s=$(printf '%s\n' "${ingest_times[@]}" | median)
ingest_kib=$(printf '%s\n' "${ingest_rss[@]}" | median)
echo "ingest: median ${ingest_s} s over $runs runs, peak RSS $((ingest_kib / 1024)) MiB, $(awk -v e="$events" -v s="$ingest_s" 'BEGIN {printf "%.0f", e / s}') events/s, $(awk -v b="$bytes" -v s="$ingest_s" 'BEGIN {printf "%.1f", b / s / 1e6}') MB/s"

compute_times=(); compute_rss=()
for run in $(seq "$runs"); do
    /usr/bin/time -v "$bin" -q --config "$config" compute --lake "$data/lake" --out "$data/out" > /dev/null 2> "$data/time.txt"
    compute_times+=("$(grep 'Elapsed (wall' "$data/time.txt" | awk -F': ' '{print $2}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')")
    compute_rss+=("$(grep 'Maximum resident' "$data/time.txt" | awk '{print $6}')")
done
echo "compute (all tables, incl. export): median $(printf '%s\n' "${compute_times[@]}" | median) s, peak RSS $(( $(printf '%s\n' "${compute_rss[@]}" | median) / 1024 )) MiB"

CRMKPI_BENCH_LAKE="$data/lake" CRMKPI_BENCH_RUNS="$runs" "$tables_bench"

# Ingest against DuckDB's bare conversion of the same dump, interleaved in one run: the ratio,
# throughput per input kind and the memory curve over lake sizes (CURVE=0 skips the curve, which
# fills a lake of 100 million events and ingests a 100-million-event dump: a quarter of an hour).
BIN="$bin" scripts/bench-ingest.sh "$events" "$runs"
