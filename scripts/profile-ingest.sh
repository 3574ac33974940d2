#!/usr/bin/env bash
# Where `crmkpi ingest` spends its CPU, by stage: perf samples with call graphs over one ingest
# of DUMP into an empty lake. A sample of the reader thread is reading (or CSV parsing); any
# other goes to the stage of its innermost frame that names one (JSON or CSV parsing,
# validation, deduplication, filling the columns, Parquet encoding, zstd, the commit, and the
# read loop around them). The samples include the worker threads' spinning and the kernel's
# work (page faults, copies from the page cache) on behalf of a stage.
# Usage: scripts/profile-ingest.sh DUMP [HZ]     (needs perf: Debian's linux-perf; as another
# user than root, kernel.perf_event_paranoid at most 1)
set -euo pipefail
dump=$(realpath "${1:?usage: scripts/profile-ingest.sh DUMP [HZ]}")
hz=${2:-199}
cd "$(dirname "$0")/.."
command -v perf > /dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
cargo build --release -q -p crmkpi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'timezone = "Europe/Berlin"\n[fx]\nUSD = 0.92\n' > "$work/crmkpi.toml"
perf record -q -F "$hz" --call-graph dwarf,16384 -o "$work/perf.data" \
    target/release/crmkpi -q --config "$work/crmkpi.toml" ingest "$dump" --lake "$work/lake" > /dev/null
perf script -i "$work/perf.data" -F comm,tid,ip,sym 2> /dev/null | python3 -c '
import collections, sys

# The reader thread: it reads, decompresses, hashes and splits the dump (CSV records with
# csv-core, which is CSV parsing).
READER = ("split_ndjson", "split_csv")
CSV_SPLITTING = ("csv_records", "csv_core")
# (stage, a part of a frame name) for the other threads; a sample goes to the first rule that
# matches its innermost frame, then the frame that called it, and so on.
RULES = [
    ("UTF-8 checks", "utf8_validation"),
    ("CSV parsing", "csv_records"),
    ("CSV parsing", "csv_core"),
    ("CSV parsing", "CsvHeader"),
    ("JSON parsing", "flat_json"),
    ("JSON parsing", "serde_json"),
    ("JSON parsing", "parse_json_line"),
    ("JSON parsing", "record::Value"),
    ("filling the columns", "IdColumn"),
    ("validation", "validate::"),
    ("validation", "content_hash"),
    ("validation", "parse_occurred_at"),
    ("validation", "parse_timestamp"),
    ("validation", "parse_amount"),
    ("validation", "parse_score"),
    ("zstd compression", "ZSTD_"),
    ("zstd compression", "HUF_"),
    ("zstd compression", "compress_page"),
    ("Parquet encoding", "polars_parquet"),
    ("Parquet encoding", "column_pages"),
    ("Parquet encoding", "EventColumns::finish"),
    ("Parquet encoding", "write_chunk"),
    ("filling the columns", "ColumnPart"),
    ("filling the columns", "TextColumn"),
    ("filling the columns", "add_events"),
    ("deduplication", "seen_filter"),
    ("deduplication", "classify"),
    ("deduplication", "write_keys"),
    ("deduplication", "dedup::"),
    ("deduplication", "id_index"),
    ("commit", "commit::"),
    # What is left of the read loop: parsed records moved into their batch, taken in order and
    # dropped, and the allocation and copies no stage above names.
    ("the read loop around them", "read::"),
    ("the read loop around them", "run::"),
    ("waiting (rayon)", "rayon_core"),
]
stages, samples, frames = collections.Counter(), 0, []

def close():
    global samples
    if not frames:
        return
    samples += 1
    if any(part in frame for frame in frames for part in READER):
        splitting = any(part in frame for frame in frames for part in CSV_SPLITTING)
        stages["CSV parsing" if splitting else "reading and decompression"] += 1
        return
    for frame in frames:
        for stage, part in RULES:
            if part in frame:
                stages[stage] += 1
                return
    stages["other (start-up, allocator, kernel)"] += 1

for line in sys.stdin:
    if not line.strip():
        close()
        frames = []
    elif line[0] in " \t":
        parts = line.split(None, 1)
        frames.append(parts[1] if len(parts) > 1 else "")
    else:
        frames = []
close()
print(f"{samples} samples")
for stage, count in stages.most_common():
    print(f"{100 * count / max(samples, 1):5.1f}%  {count:6d}  {stage}")
'
