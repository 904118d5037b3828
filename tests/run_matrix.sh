#!/bin/sh
# Builds and runs the test suite under every supported configuration. Run from the repository root:
#   sh tests/run_matrix.sh [filter]
# Binaries go to ${OUT:-/tmp/l2c-test-matrix}. Exit status: number of failing configurations.
OUT=${OUT:-/tmp/l2c-test-matrix}
INC=${INC:-.}   # directory holding learn2confuse.h
mkdir -p "$OUT"
WARN="-std=c99 -Wall -Wextra -Wpedantic -Werror"
SAN="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
fails=0
run() {
    name=$1; shift
    if ! "$@" -o "$OUT/$name" > "$OUT/$name.build.log" 2>&1; then
        echo "BUILD FAILED  $name"; cat "$OUT/$name.build.log"; fails=$((fails + 1)); return
    fi
    start=$(date +%s.%N)
    "$OUT/$name" $FILTER > "$OUT/$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    printf '%-22s %-28s exit %d  %5.1fs\n' "$name" "$(tail -n 1 "$OUT/$name.log")" $rc "$(echo "$end - $start" | bc)"
    [ $rc -eq 0 ] || fails=$((fails + 1))
}
FILTER=$1
for cc in gcc clang; do
    run $cc-O2          $cc $WARN -O2 -I$INC tests/test_main.c -lm
    run $cc-O3-native   $cc $WARN -O3 -march=native -I$INC tests/test_main.c -lm
    run $cc-omp         $cc $WARN -O3 -march=native -fopenmp -I$INC tests/test_main.c -lm
    export OMP_NUM_THREADS=1; run $cc-omp-1thread $cc $WARN -O2 -fopenmp -I$INC tests/test_main.c -lm; unset OMP_NUM_THREADS
    run $cc-san         $cc $WARN $SAN -I$INC tests/test_main.c -lm
    run $cc-san-omp     $cc $WARN $SAN -fopenmp -I$INC tests/test_main.c -lm
done
run tcc tcc -I$INC tests/test_main.c -lm
exit $fails
