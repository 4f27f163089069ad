#!/bin/sh
# The WebAssembly leg: build phi with Debian's emscripten (make wasm, and make wasm WASM_SIMD=1
# for SIMD128), run the bundled demo model under node, and compare its greedy text with the native
# binary's scalar kernels (the same C code; wasm32 is also a 32-bit target). Skips with a message
# when emcc or node is absent. Prints PASS/FAIL/SKIP lines and a closing count line.
#   sh scripts/wasm-test.sh        (make wasm-test; needs ./phi built natively: make)
set -u
if ! command -v emcc >/dev/null || ! command -v node >/dev/null; then
    echo "SKIP wasm: emcc or node is not installed (Debian: emscripten nodejs)"
    exit 0
fi
PHI=${PHI:-./phi}
MODEL=models/phi3-trained-tiny-q4.phi
PROMPT="And it came to pass"
FLAGS="-n 32 --temp 0 --repeat-penalty 1.15 -t 1"
pass=0 fail=0
check() { # check NAME OK DETAIL
    if [ "$2" = 1 ]; then echo "PASS $1: $3"; pass=$((pass + 1)); else echo "FAIL $1: $3"; fail=$((fail + 1)); fi
}
mkdir -p build-wasm
tmp=build-wasm/test
mkdir -p "$tmp"
# shellcheck disable=SC2086
PHI_ISA=scalar "$PHI" -m "$MODEL" -p "$PROMPT" $FLAGS > "$tmp/native.txt" 2> "$tmp/native.err"
for simd in 0 1; do
    tag=wasm; [ "$simd" = 1 ] && tag=wasm-simd128
    dir=build-wasm; [ "$simd" = 1 ] && dir=build-wasm-simd
    if ! make -s -j2 wasm WASM_SIMD=$simd > "$tmp/build-$tag.log" 2>&1; then
        check "${tag}_build" 0 "$(tail -5 "$tmp/build-$tag.log" | tr '\n' ' ')"
        continue
    fi
    check "${tag}_build" 1 "$dir/phi.js + $dir/phi.wasm ($(wc -c < "$dir/phi.wasm") bytes)"
    # shellcheck disable=SC2086
    node "$dir/phi.js" -m "$MODEL" -p "$PROMPT" $FLAGS > "$tmp/$tag.txt" 2> "$tmp/$tag.err"
    rc=$?
    words=$(tr -cs 'A-Za-z' '\n' < "$tmp/$tag.txt" | grep -c '[a-z]')
    stats=$(grep '^phi: ' "$tmp/$tag.err" | tail -1)
    check "${tag}_demo_text" "$([ $rc = 0 ] && [ "$words" -ge 10 ] && echo 1)" \
        "exit $rc, $words words: $(head -c 80 "$tmp/$tag.txt" | tr '\n' ' ')... ($stats)"
    check "${tag}_matches_native_scalar" "$(cmp -s "$tmp/$tag.txt" "$tmp/native.txt" && echo 1)" \
        "32 greedy tokens identical to PHI_ISA=scalar $PHI"
    # Bad input under wasm too: one line, non-zero exit, no crash.
    node "$dir/phi.js" -m "$tmp/no-such-model.phi" -p x -n 1 > /dev/null 2> "$tmp/$tag-bad.err"
    rc=$?
    lines=$(grep -c . "$tmp/$tag-bad.err")
    check "${tag}_missing_model" "$([ $rc != 0 ] && [ $rc -lt 128 ] && [ "$lines" = 1 ] && echo 1)" \
        "exit $rc: $(head -1 "$tmp/$tag-bad.err")"
done
echo "wasm: $pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ]
