#!/usr/bin/env bash
# Browser check of the HTML report: renders REPORT (an out dir's report.html) in headless
# chromium and checks that the screenshot is not blank (many distinct colours, ink in every
# band of its height). Installs Debian's chromium with apt-get when no chromium is found.
# The screenshot stays at PNG (default target/report-screenshot.png) for a person to look at.
#
# Usage: scripts/report-screenshot.sh REPORT [PNG]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 REPORT [PNG]" >&2; exit 2; }
report=$(realpath "$1")
png=${2:-target/report-screenshot.png}
[ -f "$report" ] || { echo "no report at $report" >&2; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "== installing chromium (apt-get install chromium)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium > /dev/null
    browser=$(command -v chromium)
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$png")"
rm -f "$png"
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --hide-scrollbars --user-data-dir="$profile" --window-size=1280,4000 \
    --screenshot="$(realpath -m "$png")" "file://$report" > /dev/null 2>&1
[ -s "$png" ] || { echo "chromium wrote no screenshot at $png" >&2; exit 1; }

python3 - "$png" <<'PY'
"""Decodes the PNG with the standard library only and checks that it is not blank."""
import struct, sys, zlib

path = sys.argv[1]
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
position, idat, header = 8, [], None
while position < len(data):
    length, kind = struct.unpack(">I4s", data[position:position + 8])
    body = data[position + 8:position + 8 + length]
    if kind == b"IHDR":
        header = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat.append(body)
    position += 12 + length
width, height, depth, colour_type, _, _, interlace = header
assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
channels = 3 if colour_type == 2 else 4
stride = width * channels
raw = zlib.decompress(b"".join(idat))
previous = bytearray(stride)
colours, bands = set(), [0, 0, 0, 0]
for row in range(height):
    start = row * (stride + 1)
    kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
    if kind == 1:
        for i in range(channels, stride):
            line[i] = (line[i] + line[i - channels]) & 0xFF
    elif kind == 2:
        line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
    elif kind == 3:
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    previous = line
    if row % 4 == 0:
        for x in range(0, stride, channels * 4):
            pixel = bytes(line[x:x + 3])
            colours.add(pixel)
            if pixel != b"\xff\xff\xff":
                bands[row * 4 // height] += 1
print(f"{path}: {width}x{height}, {len(colours)} distinct colours (sampled), non-white samples per quarter {bands}")
assert len(colours) > 16, "the screenshot is (nearly) blank"
assert all(count > 100 for count in bands), "a quarter of the screenshot is blank"
PY
