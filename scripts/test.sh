#!/usr/bin/env bash
# The test suite: cargo's tests of every crate, then the Python package's pytest suite, which
# compares the package and the Spark job (PySpark in local[2] mode) with the crmkpi binary.
# Needs the Rust toolchain, Python >= 3.11 and Java 17 (for Spark).
#
# Creates its own virtual environment (.venv, or $CRMKPI_VENV) with the pinned requirements of
# crates/py/requirements.txt, builds the extension with maturin in the dev profile (so it reuses
# the crates `cargo test` just compiled, polars included) and installs it there.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${CRMKPI_VENV:-.venv}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "error: $python is older than Python 3.11; set PYTHON to a newer interpreter" >&2; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

echo "== cargo test --workspace"
cargo test --workspace

echo "== python environment ($venv)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r crates/py/requirements.txt

echo "== build and install the crmkpi Python package"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
started=$SECONDS
"$venv/bin/maturin" build --quiet --strip --profile dev --manifest-path crates/py/Cargo.toml \
    --interpreter "$venv/bin/python" --out "$wheels"
echo "built the extension in $((SECONDS - started)) s"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/*.whl

echo "== pytest crates/py/tests"
cargo build --quiet -p crmkpi
# Spark's Python workers must start the venv's interpreter (with pyarrow), and Spark binds to
# the loopback address whatever the machine's hostname resolves to.
CRMKPI_BIN="$target_dir/debug/crmkpi" PYSPARK_PYTHON="$(cd "$venv" && pwd)/bin/python" SPARK_LOCAL_IP=127.0.0.1 \
    "$venv/bin/python" -m pytest crates/py/tests
