#!/bin/sh
# Compile-time checks of the header's options (a misconfiguration is refused with a message), and
# that the banner names the version.
# Usage: sh tests/compile_checks.sh CC "CFLAGS" BUILD_DIR. Prints one line per check, "N passed, N failed" last.
CC=$1; CFLAGS=$2; B=${3:-build}
pass=0; fail=0

# refuses NAME PATTERN DEFINES...: a file with these #defines and the implementation does not compile,
# and the compiler prints PATTERN
refuses() {
    name=$1; pattern=$2; shift 2
    src="$B/compile_check.c"
    : > "$src"
    for d in "$@"; do printf '#define %s\n' "$d" >> "$src"; done
    printf '#include <stdlib.h>\n#define L2C_IMPLEMENTATION\n#include "learn2confuse.h"\n' >> "$src"
    if $CC $CFLAGS -c "$src" -o "$B/compile_check.o" > "$B/compile_check.log" 2>&1; then
        fail=$((fail + 1)); echo "FAIL $name (it compiled)"
    elif grep -q -- "$pattern" "$B/compile_check.log"; then
        pass=$((pass + 1)); echo "ok   $name"
    else
        fail=$((fail + 1)); echo "FAIL $name (no '$pattern' in: $(head -c 300 "$B/compile_check.log" | tr '\n' ' '))"
    fi
    rm -f "$src" "$B/compile_check.o" "$B/compile_check.log"
}

refuses "L2C_MALLOC alone is refused" "all or none of L2C_MALLOC" "L2C_MALLOC(n) malloc(n)"
refuses "L2C_FREE alone is refused" "all or none of L2C_MALLOC" "L2C_FREE(p) free(p)"
refuses "L2C_MALLOC and L2C_FREE without L2C_REALLOC are refused" "all or none of L2C_MALLOC" \
        "L2C_MALLOC(n) malloc(n)" "L2C_FREE(p) free(p)"
# The banner's version (first line) is the one L2C_VERSION says.
version=$(sed -n 's/^#define L2C_VERSION "\(.*\)"$/\1/p' learn2confuse.h)
if [ -n "$version" ] && head -n 1 learn2confuse.h | grep -q -- "- v$version -"; then
    pass=$((pass + 1)); echo "ok   the banner names version $version"
else
    fail=$((fail + 1)); echo "FAIL the banner ($(head -n 1 learn2confuse.h | cut -c 1-40)) does not name L2C_VERSION ($version)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
