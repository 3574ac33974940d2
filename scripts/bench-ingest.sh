#!/usr/bin/env bash
# Ingest benchmark (issue "ingest at any lake size"), everything measured side by side in one
# run on this machine:
#   1. crmkpi ingest vs DuckDB's bare JSON-to-Parquet conversion of the same dump (SET threads
#      to the core count), interleaved, median of RUNS, with peak RSS and the ratio; with
#      OLD_BIN=path/to/older/crmkpi the older binary too;
#   2. throughput per input kind: NDJSON, CSV, .gz, .zst (MB/s of the files, events/s);
#   3. the memory curve: peak RSS of the 10M dump into lakes of 0, 30M and 100M events (and the
#      time and peak RSS of each 10M zstd chunk that fills them), and of a 100M-event dump
#      (zstd) into an empty lake (CURVE=0 skips it: it takes a while).
# Usage: scripts/bench-ingest.sh [EVENTS] [RUNS]     (data under bench-data/, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000000}
runs=${2:-3}
data=${BENCH_DIR:-bench-data}
# BIN=path/to/crmkpi benchmarks that binary as it is (scripts/bench.sh passes the one it built
# with the table benchmark); else the release binary is built first.
if [ -n "${BIN:-}" ]; then
    bin=$(realpath "$BIN")
else
    bin="$PWD/target/release/crmkpi"
    cargo build --release -q -p crmkpi
fi
mkdir -p "$data"
config="$data/crmkpi.toml"
printf 'timezone = "Europe/Berlin"\n[fx]\nUSD = 0.92\n' > "$config"
venv="$data/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q duckdb==2.0.1
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Runs a command under /usr/bin/time; prints "seconds peak_kib".
measure() {
    /usr/bin/time -f "%e %M" -o "$data/time.txt" "$@" > /dev/null 2> "$data/stderr.txt" || {
        cat "$data/stderr.txt" >&2
        return 1
    }
    cat "$data/time.txt"
}
generate() { # events seed out [extra generate args]
    local n=$1 seed=$2 out=$3
    shift 3
    [ -d "$out" ] || "$bin" -q generate --events "$n" --seed "$seed" --out "$out" --events-per-file 2000000 --dirty-rate 0.001 "$@"
}

dump="$data/dump-$events"
generate "$events" 1 "$dump"
bytes=$(du -sb "$dump" | cut -f1)
echo "dump: $events events, $((bytes / 1000000)) MB NDJSON in $(ls "$dump" | wc -l) files, $(nproc) cores"

# 1. crmkpi vs DuckDB (vs the older binary), interleaved.
declare -A times rss
contenders=(crmkpi duckdb)
[ -n "${OLD_BIN:-}" ] && contenders+=(old)
# Round 0 warms up and is not counted: it reads the dump, the binaries and DuckDB's library
# from the disk into the page cache, which would otherwise slow whoever runs first (crmkpi
# took 26 s instead of 4 once, the dump evicted; 7.9 s with only its binary to read).
for run in $(seq 0 "$runs"); do
    # Each contender takes each place in the round in turn, and follows each of the others:
    # the rounds go through the rotations of the contenders, then through those of their
    # reversed order (with three, the six orders). A place's own luck is shared out instead
    # of going to one contender: the one right after DuckDB was faster in most script runs,
    # whichever binary it was, and rotations alone always put the same one there.
    count=${#contenders[@]}
    # Round 1 is the first rotation (the warm-up round 0 the last reversed one).
    turn=$((run + 2 * count - 1))
    shift_by=$((turn % count))
    order=("${contenders[@]:shift_by}" "${contenders[@]:0:shift_by}")
    if [ $((turn / count % 2)) = 1 ]; then
        for ((i = 0; i < count; i++)); do reversed[i]=${order[count - 1 - i]}; done
        order=("${reversed[@]}")
    fi
    for contender in "${order[@]}"; do
        rm -rf "$data/lake-bench" "$data/duckdb.parquet"
        # Every run starts with nothing left to write back: DuckDB does not sync its output,
        # which the kernel would otherwise write back during a later contender's run.
        sync
        case $contender in
            crmkpi) result=$(measure "$bin" -q --config "$config" ingest "$dump" --lake "$data/lake-bench") ;;
            old) result=$(measure "$OLD_BIN" -q --config "$config" ingest "$dump" --lake "$data/lake-bench") ;;
            duckdb) result=$(measure "$venv/bin/python" -c "
import duckdb
duckdb.sql('SET threads=$(nproc)')
duckdb.sql(\"COPY (SELECT * FROM read_json_auto('$dump/*.ndjson', format='newline_delimited', ignore_errors=true)) TO '$data/duckdb.parquet' (FORMAT parquet)\")") ;;
        esac
        if [ "$run" = 0 ]; then
            echo "  warm-up $contender: ${result% *} s (not counted)"
            continue
        fi
        times[$contender]+="${result% *} "
        rss[$contender]+="${result#* } "
        echo "  run $run $contender: ${result% *} s, peak RSS $(( ${result#* } / 1024 )) MiB"
    done
done
for contender in "${contenders[@]}"; do
    t=$(echo "${times[$contender]}" | tr ' ' '\n' | grep . | median)
    m=$(echo "${rss[$contender]}" | tr ' ' '\n' | grep . | median)
    printf '%-7s median %6.1f s  peak RSS %5d MiB  %6.0f events/s  %6.1f MB/s\n' "$contender" "$t" $((m / 1024)) \
        "$(awk -v e="$events" -v s="$t" 'BEGIN {print e / s}')" "$(awk -v b="$bytes" -v s="$t" 'BEGIN {print b / s / 1e6}')"
    declare "median_$contender=$t"
done
echo "ratio crmkpi / duckdb: $(awk -v a="$median_crmkpi" -v b="$median_duckdb" 'BEGIN {printf "%.2f", a / b}')"

# 2. Throughput per input kind, on a fifth of the events.
part=$((events / 5))
for kind in ndjson csv ndjson.gz ndjson.zst; do
    format=${kind%%.*}
    compress=none
    case $kind in *.gz) compress=gz ;; *.zst) compress=zst ;; esac
    kind_dump="$data/kind-$part-$kind"
    generate "$part" 7 "$kind_dump" --format "$format" --compress "$compress"
    kind_bytes=$(du -sb "$kind_dump" | cut -f1)
    # As in the rounds above: nothing of an earlier run (DuckDB's unsynced output, the last
    # lake) left for the kernel to write back during this one, and the dump read once into
    # the page cache first (read from the disk, the 2M NDJSON took 2.6 s instead of 1.2 once).
    rm -rf "$data/lake-kind" "$data/lake-bench" "$data/duckdb.parquet"
    sync
    cat "$kind_dump"/* > /dev/null
    result=$(measure "$bin" -q --config "$config" ingest "$kind_dump" --lake "$data/lake-kind")
    t=${result% *}
    printf 'throughput %-10s %6d MB  %5.1f s  %6.1f MB/s  %7.0f events/s  peak RSS %5d MiB\n' "$kind" \
        $((kind_bytes / 1000000)) "$t" "$(awk -v b="$kind_bytes" -v s="$t" 'BEGIN {print b / s / 1e6}')" \
        "$(awk -v e="$part" -v s="$t" 'BEGIN {print e / s}')" $((${result#* } / 1024))
done

# 3. The memory curve.
[ "${CURVE:-1}" = 1 ] || exit 0
lake="$data/lake-curve"
rm -rf "$lake"
filled=0
# One seed per chunk over the whole curve: a seed used again would give ids the lake holds.
seed=100
for target in 0 30000000 100000000; do
    while [ "$filled" -lt "$target" ]; do
        seed=$((seed + 1))
        chunk="$data/fill-$seed"
        generate 10000000 "$seed" "$chunk" --compress zst
        result=$(measure "$bin" -q --config "$config" ingest "$chunk" --lake "$lake")
        rm -rf "$chunk"
        filled=$((filled + 10000000))
        # A nightly run's time as the lake grows (zstd input: slower to read than the dump).
        echo "curve: 10000000-event zstd chunk into a lake of $((filled - 10000000)) events: ${result% *} s, peak RSS $((${result#* } / 1024)) MiB"
    done
    rm -rf "$data/lake-try"
    # A copy of hard links: an ingest only adds files and links (committed files are never
    # written again), so the filled lake stays as it is for the next size.
    cp -al "$lake" "$data/lake-try" 2> /dev/null || mkdir -p "$data/lake-try"
    [ "$target" = 0 ] && rm -rf "$data/lake-try"
    result=$(measure "$bin" -q --config "$config" ingest "$dump" --lake "$data/lake-try")
    echo "curve: $events-event dump into a lake of $target events: ${result% *} s, peak RSS $((${result#* } / 1024)) MiB"
done
big="$data/dump-100000000-zst"
generate 100000000 2 "$big" --compress zst
rm -rf "$data/lake-try"
result=$(measure "$bin" -q --config "$config" ingest "$big" --lake "$data/lake-try")
echo "curve: 100000000-event zstd dump into an empty lake: ${result% *} s, peak RSS $((${result#* } / 1024)) MiB"
rm -rf "$data/lake-try"
