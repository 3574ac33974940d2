#!/usr/bin/env bash
# What a person sees on a terminal: runs `crmkpi pipeline` inside a detached tmux session of a
# fixed size, captures the pane (scrollback included) into target/terminal-capture.txt and
# checks it: no INFO lines, no byte-style bars (` B/s`, `0 B/0 B`), the ingest and compute
# summaries present, each warning line at most once.
#
# Builds nothing: give the binary as the first argument (default target/debug/crmkpi).
# Extra arguments are passed to `crmkpi pipeline` (default: the bundled data-samples).
#
#   scripts/terminal-check.sh [BINARY] [PIPELINE ARGS...]
#
# With FRAMES=1 it also saves a pane capture every 0.3 s while the run lasts, under
# target/terminal-frames/, to look at the bars mid-run.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${1:-target/debug/crmkpi}")
shift || true
[ -x "$bin" ] || { echo "terminal-check: no crmkpi binary at $bin (build it first)" >&2; exit 1; }
if ! command -v tmux > /dev/null; then
    echo "terminal-check: installing tmux"
    apt-get update -qq && apt-get install -y -qq tmux > /dev/null
fi

work=$(mktemp -d)
session="crmkpi-terminal-check-$$"
trap 'tmux kill-session -t "$session" 2> /dev/null || true; rm -rf "$work"' EXIT
capture=target/terminal-capture.txt
mkdir -p target

# The run writes its exit code to a file when it ends; the pane then stays open to be captured.
{
    printf '%q ' "$bin" pipeline --lake "$work/lake" --out "$work/out" "$@"
    printf '\necho $? > %q\nsleep 600\n' "$work/exit-code"
} > "$work/run.sh"
tmux new-session -d -s "$session" -x 120 -y 40 -c "$PWD" "bash $work/run.sh"

frame=0
if [ "${FRAMES:-0}" = 1 ]; then
    rm -rf target/terminal-frames
    mkdir -p target/terminal-frames
fi
for _ in $(seq 1 6000); do
    [ -f "$work/exit-code" ] && break
    if [ "${FRAMES:-0}" = 1 ]; then
        tmux capture-pane -p -t "$session" > "target/terminal-frames/$(printf '%04d' "$frame").txt"
        frame=$((frame + 1))
    fi
    sleep 0.3
done
[ -f "$work/exit-code" ] || { echo "terminal-check: crmkpi did not finish within 30 minutes" >&2; exit 1; }
# Give the terminal a moment to show the last output before the capture.
sleep 0.5
# The pane as shown, without the empty lines below the last output.
tmux capture-pane -p -S - -t "$session" | awk 'NF { while (blank > 0) { print ""; blank-- } print; next } { blank++ }' > "$capture"

failures=()
exit_code=$(cat "$work/exit-code")
[ "$exit_code" = 0 ] || failures+=("crmkpi pipeline exited with $exit_code")
grep -q 'INFO' "$capture" && failures+=("INFO lines on the terminal at default verbosity")
grep -q ' B/s' "$capture" && failures+=("a byte-style bar (' B/s')")
grep -q '0 B/0 B' "$capture" && failures+=("a byte-style bar ('0 B/0 B')")
grep -q '^ingested [0-9]* records from [0-9]* files' "$capture" || failures+=("no ingest summary")
grep -q '^computed [0-9]* tables as of ' "$capture" || failures+=("no compute summary")
repeated=$(grep -E 'WARN|warning' "$capture" | sort | uniq -d || true)
[ -z "$repeated" ] || failures+=("warnings shown more than once: $repeated")

echo "terminal-check: pane saved in $capture"
if [ "${#failures[@]}" -gt 0 ]; then
    cat "$capture"
    for failure in "${failures[@]}"; do
        echo "terminal-check: FAILED: $failure" >&2
    done
    exit 1
fi
echo "terminal-check: ok ($(wc -l < "$capture") lines, $(grep -c -E 'WARN|warning' "$capture" || true) warnings)"
