#!/usr/bin/env bash
# Instructions one `crmkpi ingest` of DUMP into an empty lake executes, counted by callgrind:
# the same to about 1% from run to run, where wall and CPU times on a shared machine drift by
# 30%, so two binaries are compared by one run each. Keep DUMP small (100,000 records take
# about 10 s under callgrind). Prints each binary's count and, with two, their ratio.
# Usage: scripts/count-ingest.sh DUMP [BIN...]   (default BIN: target/release/crmkpi; needs
# valgrind: Debian's valgrind)
set -euo pipefail
dump=$(realpath "${1:?usage: scripts/count-ingest.sh DUMP [BIN...]}")
shift
bins=()
for bin in "$@"; do
    bins+=("$(realpath "$bin")")
done
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "valgrind not found (Debian: apt-get install valgrind)" >&2; exit 1; }
if [ ${#bins[@]} -eq 0 ]; then
    cargo build --release -q -p crmkpi
    bins=(target/release/crmkpi)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'timezone = "Europe/Berlin"\n[fx]\nUSD = 0.92\n' > "$work/crmkpi.toml"
counts=()
for bin in "${bins[@]}"; do
    rm -rf "$work/lake"
    count=$(valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$bin" -q \
        --config "$work/crmkpi.toml" ingest "$dump" --lake "$work/lake" 2>&1 > /dev/null \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    [ -n "$count" ] || { echo "$bin: callgrind reported no count" >&2; exit 1; }
    counts+=("$count")
    printf '%-40s %15s instructions\n' "$bin" "$count"
done
if [ ${#counts[@]} -eq 2 ]; then
    python3 -c "import sys; print(f'ratio second / first: {int(sys.argv[2]) / int(sys.argv[1]):.3f}')" "${counts[@]}"
fi
