#!/usr/bin/env bash
# Regenerates data-samples/dumps: a few thousand events over 18 months, a mix of NDJSON, CSV
# and gzip, with some dirty records. Deterministic (fixed seed).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CRMKPI_BIN:-target/release/crmkpi}
rm -rf data-samples/dumps
"$bin" generate --events 6000 --seed 2024 --out data-samples/dumps \
    --format ndjson,csv,ndjson --compress none,none,gz --events-per-file 2000 --dirty-rate 0.006
