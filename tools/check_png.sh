#!/bin/sh
# Smoke check for the PNG tools: builds idx2png and confusion2png, renders a grid, a
# clean/poisoned/noise comparison and a confusion matrix from tiny synthetic inputs, and checks
# the PNG signature and IHDR fields with od. Needs only a C compiler and POSIX sh tools.
# Usage (from the repository root or anywhere): sh tools/check_png.sh   (CC=clang to switch)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM
fail() { echo "check_png: FAIL: $*" >&2; exit 1; }

for tool in idx2png confusion2png; do
    $CC -std=c99 -O2 -I"$ROOT" "$ROOT/tools/$tool.c" -o "$T/$tool" -lm || fail "cannot build $tool"
done

# bytes N..N+LEN-1 of a file as one unsigned big-endian number
be() { od -An -tu1 -j "$2" -N "$3" "$1" | awk '{for (i = 1; i <= NF; i++) v = v * 256 + $i} END {print v}'; }

# png FILE WIDTH HEIGHT COLOURTYPE: signature, IHDR first, size, depth 8, colour type, IEND last
png() {
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$1: no PNG signature"
    [ "$(od -An -c -j12 -N4 "$1" | tr -d ' \n')" = IHDR ] || fail "$1: IHDR is not the first chunk"
    size="$(be "$1" 16 4)x$(be "$1" 20 4)"
    [ "$size" = "$2x$3" ] || fail "$1: size $size, expected $2x$3"
    [ "$(be "$1" 24 1)/$(be "$1" 25 1)" = "8/$4" ] || fail "$1: bit depth / colour type wrong"
    size=$(wc -c < "$1")
    [ "$(od -An -c -j $((size - 8)) -N4 "$1" | tr -d ' \n')" = IEND ] || fail "$1: does not end in IEND"
}

# IDX header: magic 0x0000080D (D dimensions) then big-endian uint32 sizes
u32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))"; \
        printf "\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
# 6 images of 4 x 5 pixels; the poisoned copy differs by +-40 grey levels; labels 3 1 0 2 1 0
{ u32 2051; u32 6; u32 4; u32 5; } > "$T/clean.idx"
{ u32 2051; u32 6; u32 4; u32 5; } > "$T/pois.idx"
i=0
while [ $i -lt 120 ]; do
    v=$(( (i * 37) % 170 + 45 )); p=$(( i % 2 ? v + 40 : v - 40 ))
    printf "\\$(printf %03o $v)" >> "$T/clean.idx"
    printf "\\$(printf %03o $p)" >> "$T/pois.idx"
    i=$((i + 1))
done
{ u32 2049; u32 6; printf '\003\001\000\002\001\000'; } > "$T/labels.idx"

# tile w*S+2, border 2: 3 columns of 5*2+2 wide + 2; 2 rows of 4*2+2 high + 2
"$T/idx2png" --clean "$T/clean.idx" --out "$T/grid.png" --count 6 --cols 3 --scale 2 || fail "grid"
png "$T/grid.png" 38 22 0
"$T/idx2png" --clean "$T/clean.idx" --poisoned "$T/pois.idx" --out "$T/cmp.png" --count 4 --scale 3 \
    --labels "$T/labels.idx" || fail "comparison"
png "$T/cmp.png" 70 44 0

# the failures must fail, and leave no file behind
"$T/idx2png" --clean "$T/clean.idx" --poisoned "$T/labels.idx" --out "$T/bad.png" 2>/dev/null \
    && fail "mismatched files accepted"
"$T/idx2png" --clean "$T/clean.idx" --count 7 --out "$T/bad.png" 2>/dev/null \
    && fail "count beyond file accepted"
"$T/idx2png" --clean "$T/missing.idx" --out "$T/bad.png" 2>/dev/null && fail "missing input accepted"
"$T/idx2png" --clean "$T/clean.idx" --scale 0 --out "$T/bad.png" 2>/dev/null && fail "scale 0 accepted"
[ ! -e "$T/bad.png" ] || fail "a failed run left an output file"

# 3 classes, cell 24: font 3, margins 3*3+4*3 = 21 left and 9*3 = 27 top, + 1 for the last grid line
printf '3\n50 3 0\n4 40 9\n0 0 0\n' > "$T/cm.txt"
"$T/confusion2png" --in "$T/cm.txt" --out "$T/cm.png" || fail "confusion matrix"
png "$T/cm.png" 94 100 2
printf '3\n1 2 3\n4 5\n6 7 8\n' > "$T/bad.txt"
"$T/confusion2png" --in "$T/bad.txt" --out "$T/bad.png" 2>/dev/null && fail "short row accepted"
printf '2\n1 -2\n3 4\n' > "$T/bad.txt"
"$T/confusion2png" --in "$T/bad.txt" --out "$T/bad.png" 2>/dev/null && fail "negative count accepted"
[ ! -e "$T/bad.png" ] || fail "a failed run left an output file"

echo "check_png: OK"
