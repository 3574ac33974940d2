#!/usr/bin/env bash
# The compute benchmark: lakes of 10, 40 (and with SIZES=..., more) million events, built by
# ingesting generated 10-million-event dumps of successive seeds (each deleted after its
# ingest), and per lake size `crmkpi compute` of all 12 tables: time and peak RSS, with the
# default memory limit and, when OLD_BIN names an older binary, that binary in the same run
# (outputs compared byte for byte); then the facts/table/family breakdown of the table bench.
# Usage: scripts/bench-compute.sh   (SIZES="10 40 100" OLD_BIN=path RUNS=3 BUCKETS=...)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${BENCH_DIR:-bench-data}
sizes=${SIZES:-10 40}
runs=${RUNS:-1}
bin="$PWD/target/release/crmkpi"
tables_bench=$(scripts/build-bench.sh)
mkdir -p "$data"
config="$data/crmkpi.toml"
printf 'timezone = "Europe/Berlin"\n[fx]\nUSD = 0.92\n' > "$config"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Runs compute with BINARY into OUT and prints "seconds peak_kib".
measure() {
    local binary=$1 lake=$2 out=$3; shift 3
    rm -rf "$out"
    /usr/bin/time -f "%e %M" -o "$data/time.txt" "$binary" -q --config "$config" compute --lake "$lake" \
        --out "$out" --no-report "$@" > /dev/null
    cat "$data/time.txt"
}

lake="$data/lake-compute"
have=0
[ -f "$data/lake-compute.size" ] && have=$(cat "$data/lake-compute.size")
for size in $sizes; do
    if [ "$have" -gt "$size" ]; then
        echo "lake of ${size} million events: skipped, $lake already holds ${have} million (remove it to measure smaller lakes)"
        continue
    fi
    while [ "$have" -lt "$size" ]; do
        seed=$((have / 10 + 1))
        "$bin" -q generate --events 10000000 --seed "$seed" --out "$data/dump-seed-$seed" \
            --events-per-file 2000000 --dirty-rate 0.001 --compress zst
        "$bin" -q --config "$config" ingest "$data/dump-seed-$seed" --lake "$lake" > /dev/null || [ $? -eq 3 ]
        rm -rf "$data/dump-seed-$seed"
        have=$((have + 10))
        echo "$have" > "$data/lake-compute.size"
    done
    echo "lake of ${size} million events ($(du -sh "$lake" | cut -f1)):"
    for label in new old; do
        [ "$label" = old ] && [ -z "${OLD_BIN:-}" ] && continue
        binary=$bin; [ "$label" = old ] && binary=$OLD_BIN
        times=(); peaks=()
        for run in $(seq "$runs"); do
            read -r seconds peak < <(measure "$binary" "$lake" "$data/out-$label" ${BUCKETS:+--buckets "$BUCKETS"})
            times+=("$seconds"); peaks+=("$peak")
        done
        echo "  $label compute: median $(printf '%s\n' "${times[@]}" | median) s, peak RSS $(( $(printf '%s\n' "${peaks[@]}" | median) / 1024 )) MiB"
    done
    if [ -n "${OLD_BIN:-}" ]; then
        for file in "$data"/out-new/*.parquet "$data"/out-new/*.csv; do
            cmp -s "$file" "$data/out-old/$(basename "$file")" || echo "  differs from the old binary: $(basename "$file")"
        done
    fi
    python3 -c "import json, sys; m = json.load(open(sys.argv[1])); print('  stages:', {k: round(v, 1) for k, v in m['stage_seconds'].items() if v >= 0.5})" "$data/out-new/manifest.json"
done
CRMKPI_BENCH_LAKE="$lake" CRMKPI_BENCH_RUNS="$runs" "$tables_bench"
