#!/bin/sh
# Runs every test program ($BUILD/tests/test_*) and shell test (tests/*.sh but this one), counts the
# PASS/FAIL/SKIP lines they print and ends with 'N passed, N failed, N skipped'.
# PHI_EXEC prefixes every test program (a cross build runs them under qemu-user: PHI_EXEC=qemu-arm).
# PHI_SKIP names tests not to run, with PHI_SKIP_WHY saying why (each prints a SKIP line).
# PHI_ONLY, when set, names the only tests to run (the others are left out silently: a leg that
# covers one part, like zmm-emu-test's kernel-facing programs, says which in its own lines).
BUILD=${BUILD:-build}
export PHI=${PHI:-./phi} QUANT=${QUANT:-./quant} BUILD
export PHI_TMP=${PHI_TMP:-$BUILD/tmp}
mkdir -p "$PHI_TMP"
log="$PHI_TMP/run.log"
: > "$log"
: > "$PHI_TMP/times"
crashed=0
for t in "$BUILD"/tests/test_* tests/*.sh; do
    case "$t" in *.o|*.d|tests/run.sh) continue ;; esac
    [ -f "$t" ] || continue
    name=$(basename "$t")
    if [ -n "${PHI_ONLY:-}" ]; then case " $PHI_ONLY " in *" $name "*) ;; *) continue ;; esac; fi
    case " ${PHI_SKIP:-} " in *" $name "*)
        echo "SKIP $name: ${PHI_SKIP_WHY:-listed in PHI_SKIP}" | tee -a "$log"; continue ;;
    esac
    echo "== $name"
    t_start=$(date +%s)
    case "$t" in
        *.sh) sh "$t" > "$PHI_TMP/$name.out" 2>&1 ;;
        *) $PHI_EXEC "$t" > "$PHI_TMP/$name.out" 2>&1 ;;
    esac
    rc=$?
    echo "$(($(date +%s) - t_start)) $name" >> "$PHI_TMP/times"
    cat "$PHI_TMP/$name.out"
    cat "$PHI_TMP/$name.out" >> "$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$PHI_TMP/$name.out"; then
        echo "FAIL $name: exited with status $rc without reporting a failure"
        echo "FAIL $name: crashed" >> "$log"
    fi
done
passed=$(grep -c '^PASS ' "$log")
failed=$(grep -c '^FAIL ' "$log")
skipped=$(grep -c '^SKIP ' "$log")
echo "slowest (s): $(sort -rn "$PHI_TMP/times" | head -6 | tr "\n" " ")"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
