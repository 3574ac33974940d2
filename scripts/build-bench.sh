#!/usr/bin/env bash
# Builds the release binary and the table benchmark together (built separately they would
# unify features differently and compile polars twice) and prints the benchmark's path.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p crmkpi -p crmkpi-benches --benches --bins --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "tables" and message.get("executable"):
        print(message["executable"])'
