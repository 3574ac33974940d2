# crmkpi recipes: every recipe is a plain crmkpi or cargo call.
# Install just with `cargo install just`.

bin := "target/release/crmkpi"

# Build the release binary.
build:
    cargo build --release -p crmkpi -p crmkpi-benches --bins --benches

# Ingest then compute. No arguments: the bundled data-samples into lake/ and out/.
pipeline *ARGS: build
    {{bin}} pipeline {{ARGS}}

# Ingest dumps into a lake: just ingest dumps/2024-11-24 lake
ingest INPUT LAKE="lake": build
    {{bin}} ingest {{INPUT}} --lake {{LAKE}}

# Compute every table from a lake: just compute lake out 2024-11-24
compute LAKE="lake" OUT="out" AS_OF="": build
    {{bin}} compute --lake {{LAKE}} --out {{OUT}} {{ if AS_OF != "" { "--as-of " + AS_OF } else { "" } }}

# Merge each lake partition's small files into large ones (atomic, safe beside a compute).
compact LAKE="lake": build
    {{bin}} compact --lake {{LAKE}}

# Check dumps without writing anything.
validate +INPUTS: build
    {{bin}} validate {{INPUTS}}

# Write a synthetic dump: just generate 1000000 dumps/generated
generate EVENTS="1000000" OUT="dumps/generated": build
    {{bin}} generate --events {{EVENTS}} --seed 1 --out {{OUT}} --format ndjson,csv --compress none,gz,zst --dirty-rate 0.002

# The test suite (what CI runs, without fmt and clippy): cargo's tests and the Python package's.
test:
    bash scripts/test.sh

# The ingest fuzz test at length (CI runs 48 cases): just fuzz 20000
fuzz CASES="20000":
    CRMKPI_FUZZ_CASES={{CASES}} cargo test --release -p crmkpi-ingest --test it fuzz

# Rewrite the golden outputs of the sample run after an intended change (review the diff).
golden:
    CRMKPI_UPDATE_GOLDEN=1 cargo test -p crmkpi --test it golden

# Everything CI runs.
ci:
    bash .ci/run

# Benchmarks on a generated dump (default 10 million events): timings and peak RSS, then the
# ingest benchmark (the ratio to DuckDB's conversion, throughput per kind, the memory curve).
bench EVENTS="10000000":
    bash scripts/bench.sh {{EVENTS}}

# The compute benchmark: time and peak RSS of compute on lakes of 10 and 40 million events
# (SIZES="10 40 100" for more; OLD_BIN=... adds an older binary, outputs compared byte for byte).
bench-compute:
    bash scripts/bench-compute.sh

# The ingest benchmark: crmkpi vs DuckDB's bare conversion in one run, throughput per input
# kind, and the memory curve over lake sizes (CURVE=0 skips it; OLD_BIN=... adds an older binary).
bench-ingest EVENTS="10000000":
    bash scripts/bench-ingest.sh {{EVENTS}}

# Where ingest's CPU goes, by stage (perf with call graphs; needs Debian's linux-perf):
# just profile-ingest bench-data/dump-10000000
profile-ingest DUMP HZ="199":
    bash scripts/profile-ingest.sh {{DUMP}} {{HZ}}

# Instructions of one ingest under callgrind (deterministic to ~1%; compares binaries on a
# noisy machine): just count-ingest small.ndjson target/release/crmkpi /path/to/older/crmkpi
count-ingest DUMP *BINS:
    bash scripts/count-ingest.sh {{DUMP}} {{BINS}}

# Compute with Spark: just spark lake out --master 'local[2]' --buckets 8 (the Python package
# and pyspark installed: scripts/test.sh's .venv has both).
spark LAKE="lake" OUT="out" *ARGS:
    .venv/bin/python -m crmkpi.spark --lake {{LAKE}} --out {{OUT}} {{ARGS}}

# The Spark job in local mode against crmkpi compute on one lake, in one run (time, peak memory
# of each process, outputs compared): just bench-spark bench-data/lake10 crmkpi.toml 2 8 32
bench-spark LAKE CONFIG *BUCKETS: build
    bash scripts/bench-spark.sh {{LAKE}} {{CONFIG}} {{BUCKETS}}

# Regenerate the committed data-samples dump.
samples: build
    bash scripts/make-samples.sh
