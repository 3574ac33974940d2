#!/usr/bin/env bash
# The Spark job in local mode against `crmkpi compute` on the same lake, in one run: wall time
# and peak memory of each process (the binary; Spark's JVM driver and executor, the Python
# driver, the Python workers running the tasks), sampled every 0.2 s from /proc. Outputs are
# compared: the tables the driver writes byte for byte, the per-entity tables the tasks write in
# parts by their CSV lines.
#
#   scripts/bench-spark.sh LAKE CONFIG [BUCKETS...]
#
# Needs a release build of the binary (target/release/crmkpi) and a Python environment with
# the release wheel and pyspark ($SPARK_VENV, default bench-data/spark-venv):
#   maturin build --release --manifest-path crates/py/Cargo.toml --out WHEELS
#   python -m venv bench-data/spark-venv && bench-data/spark-venv/bin/pip install \
#       pyarrow==26.0.1 py4j==0.10.9.9 pyspark==4.3.0 WHEELS/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
lake=$1 config=$2
shift 2
bucket_counts=("${@:-2}")
venv=${SPARK_VENV:-bench-data/spark-venv}
master=${MASTER:-local[2]}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/crmkpi-bench-spark.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export PYSPARK_PYTHON="$(cd "$venv" && pwd)/bin/python" SPARK_LOCAL_IP=127.0.0.1

# Runs a command, sampling the RSS of every process in its tree; prints the wall time and the
# peak RSS (MiB) of each kind of process: jvm, python driver, python workers (summed), other.
measure() {
    local label=$1
    shift
    local started=$SECONDS
    "$@" > "$scratch/$label.log" 2>&1 &
    local root=$! peaks="$scratch/$label.peaks"
    : > "$peaks"
    while kill -0 "$root" 2> /dev/null; do
        local jvm=0 driver=0 workers=0 other=0
        for pid in $(pstree -pT "$root" | grep -o '([0-9]*)' | tr -d '()'); do
            [ -r "/proc/$pid/status" ] || continue
            local rss cmd
            rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2> /dev/null || echo 0)
            cmd=$(tr "\0" " " 2> /dev/null < "/proc/$pid/cmdline" || true)
            case $cmd in
                *java*) jvm=$((jvm + ${rss:-0})) ;;
                *pyspark.daemon* | *pyspark.worker*) workers=$((workers + ${rss:-0})) ;;
                *crmkpi.spark*) driver=$((driver + ${rss:-0})) ;;
                *) other=$((other + ${rss:-0})) ;;
            esac
        done
        echo "$jvm $driver $workers $other" >> "$peaks"
        sleep 0.2
    done
    wait "$root" || { cat "$scratch/$label.log"; exit 1; }
    awk -v label="$label" -v seconds=$((SECONDS - started)) '
        { for (i = 1; i <= 4; i++) if ($i > max[i]) max[i] = $i; total = $1 + $2 + $3 + $4; if (total > all) all = total }
        END { printf "%-16s %4d s   peak MiB: jvm %5d  python driver %5d  python workers %5d  crmkpi %5d  all at once %5d\n",
              label, seconds, max[1] / 1024, max[2] / 1024, max[3] / 1024, max[4] / 1024, all / 1024 }' "$peaks"
}

measure compute target/release/crmkpi -q --config "$config" compute --lake "$lake" --out "$scratch/compute" --no-report
for buckets in "${bucket_counts[@]}"; do
    measure "spark-$buckets" "$venv/bin/python" -m crmkpi.spark --lake "$lake" --out "$scratch/spark-$buckets" \
        --config "$config" --master "$master" --buckets "$buckets"
    # The driver's tables byte for byte; the per-entity tables (part directories) by their CSV
    # lines.
    for file in "$scratch"/compute/*.parquet "$scratch"/compute/*.csv; do
        spark_file="$scratch/spark-$buckets/$(basename "$file")"
        if [ -d "$spark_file" ]; then
            case $file in
                *.csv) cmp -s <(tail -qn +2 "$file" | sort) <(tail -qn +2 "$spark_file"/*.csv | sort) \
                    || echo "  differs: $(basename "$file")" ;;
            esac
        else
            cmp -s "$file" "$spark_file" || echo "  differs: $(basename "$file")"
        fi
    done
    "$venv/bin/python" -c "import json, sys; m = json.load(open(sys.argv[1])); print('  stages:', {k: round(v, 1) for k, v in m['stage_seconds'].items() if v >= 0.3})" \
        "$scratch/spark-$buckets/manifest.json"
done
