#!/bin/sh
# The corrupt phi-file corpus through the phi program: test_corrupt --write makes every 12th case
# of its phi-file corpus (truncations at section boundaries, crafted header, hyperparameter and
# directory fields, overlapping offsets, NaN data, random damage; see tests/test_corrupt.c) as a
# file, and phi must refuse each with one line and status 1..127, or run it (status 0) — never
# crash (a signal) or hang (10 s per case). The in-process corpus of every format is
# tests/test_corrupt.c; this checks what a user sees.
PHI=${PHI:-./phi}
BUILD=${BUILD:-build}
TMP=${PHI_TMP:-build/tmp}/corrupt
rm -rf "$TMP"
mkdir -p "$TMP/corpus"

. tests/shell_lib.inc

if ! $PHI_EXEC "$BUILD/tests/test_corrupt" --write "$TMP/corpus" 12 > "$TMP/gen.log" 2>&1; then
    fail corrupt_cli_corpus "test_corrupt --write failed: $(tail -n 3 "$TMP/gen.log")"
    exit 1
fi
to=
command -v timeout > /dev/null 2>&1 && to="timeout 10"
rejected=0 ran=0 crashed=0 hung=0 badmsg=0 n=0
for f in "$TMP"/corpus/*.phi; do
    n=$((n + 1))
    $to $PHI -m "$f" -p "hello world" -n 2 -t 1 > /dev/null 2> "$TMP/err" < /dev/null
    rc=$?
    lines=$(wc -l < "$TMP/err")
    if [ $rc -eq 0 ]; then ran=$((ran + 1))
    elif [ $rc -eq 124 ] && [ -n "$to" ]; then hung=$((hung + 1)); echo "hung: $f"
    elif [ $rc -ge 128 ]; then crashed=$((crashed + 1)); echo "crashed ($rc): $f"
    elif [ "$lines" -ne 1 ]; then badmsg=$((badmsg + 1)); echo "$lines lines: $f: $(head -c 200 "$TMP/err")"
    else rejected=$((rejected + 1)); fi
    rm -f "$f"
done
summary="$n files: $rejected rejected with one line, $ran ran, $crashed crashed, $hung hung, $badmsg other"
if [ $n -gt 100 ] && [ $crashed -eq 0 ] && [ $hung -eq 0 ] && [ $badmsg -eq 0 ]; then
    pass corrupt_cli_phi_files "$summary"
else
    fail corrupt_cli_phi_files "$summary"
fi
