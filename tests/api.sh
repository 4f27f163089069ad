#!/bin/sh
# The library (phi.h, libphi.a) through examples/simple.c: its greedy chat reply equals the phi
# CLI's for the same message (the trained tiny Phi-3 from ../shared/data), and its errors are one
# line from phi_last_error().
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
BUILD=${BUILD:-build}
SIMPLE=$BUILD/examples/simple
TMP=${PHI_TMP:-build/tmp}/api
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"
. tests/shell_lib.inc

if [ ! -x "$SIMPLE" ]; then echo "SKIP api_example: no $SIMPLE (make examples)"; exit 0; fi
expect_error api_example_missing_model $PHI_EXEC "$SIMPLE" "$TMP/none.phi" "hi"
$QUANT --random tiny -q q8 "$TMP/tiny.phi" 2> /dev/null
out=$($PHI_EXEC "$SIMPLE" "$TMP/tiny.phi" "hello" 5 2> "$TMP/err")
[ $? -eq 0 ] && grep -q "^5 tokens, finish length" "$TMP/err" && pass api_example_random_tiny "$(cat "$TMP/err")" \
    || fail api_example_random_tiny "$(cat "$TMP/err")"
if [ -d "$DATA/phi3-trained-tiny" ] && $QUANT -q q8 "$DATA/phi3-trained-tiny" "$TMP/trained.phi" 2> /dev/null; then
    want=$($PHI -m "$TMP/trained.phi" --chat -p "Who is the LORD?" -n 16 --temp 0 2> /dev/null)
    got=$($PHI_EXEC "$SIMPLE" "$TMP/trained.phi" "Who is the LORD?" 16 2> /dev/null)
    [ -n "$got" ] && [ "$got" = "$want" ] && pass api_example_equals_cli_chat "$got" \
        || fail api_example_equals_cli_chat "got '$got' want '$want'"
else
    echo "SKIP api_example_equals_cli_chat: no $DATA/phi3-trained-tiny"
fi
