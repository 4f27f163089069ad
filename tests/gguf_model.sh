#!/bin/sh
# phi -m FILE.gguf and quant FILE.gguf OUT (model/gguf_model.c) from the command line: the phi
# file quant writes gives bit-identical logits to the GGUF run directly, for every GGUF of
# ../shared/data/phi3-gguf; bad inputs are refused with one line.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/gguf_model
DATA=${PHI_DATA:-../shared/data}
G=$DATA/phi3-gguf
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

if [ ! -f "$G/README.md" ]; then
    echo "SKIP gguf_model_cli: no $G"
    exit 0
fi

ids=1,2860,1438,2712,278,1734,310,278,365,25593,2996
for f in trained-tiny-Q8_0 trained-tiny-Q4_K_M longrope-f16 phi4ish-f16; do
    if "$QUANT" "$G/$f.gguf" "$TMP/$f.phi" 2> "$TMP/$f.quant.err" &&
        "$PHI" -m "$G/$f.gguf" --ids $ids -n 4 --temp 0 --logits "$TMP/$f.a" > "$TMP/$f.a.ids" 2> "$TMP/$f.a.err" &&
        "$PHI" -m "$TMP/$f.phi" --ids $ids -n 4 --temp 0 --logits "$TMP/$f.b" > "$TMP/$f.b.ids" 2> "$TMP/$f.b.err" &&
        [ -s "$TMP/$f.a" ] && cmp -s "$TMP/$f.a" "$TMP/$f.b" && cmp -s "$TMP/$f.a.ids" "$TMP/$f.b.ids"; then
        pass "gguf_quant_same_logits_$f" "$(wc -c < "$TMP/$f.a") bytes of logits, ids $(cat "$TMP/$f.a.ids")"
    else
        fail "gguf_quant_same_logits_$f" "$(cat "$TMP/$f.quant.err" "$TMP/$f.a.err" "$TMP/$f.b.err" | head -c 400)"
    fi
done

# the direct run says once that quant makes an mmap-ready file
n=$(grep -c "loads in place" "$TMP/phi4ish-f16.a.err")
if [ "$n" -eq 1 ] && ! grep -q "loads in place" "$TMP/phi4ish-f16.b.err"; then
    pass gguf_note_once "$(grep "loads in place" "$TMP/phi4ish-f16.a.err")"
else
    fail gguf_note_once "$n notes"
fi
# types stored differently are noted, one line per GGUF type (Q4_K, Q5_K, Q6_K while this build
# has no K types; none once it has)
k=$(grep -c "matri" "$TMP/trained-tiny-Q4_K_M.a.err")
if [ "$k" -le 3 ] && [ "$(grep -c "Q4_K matri" "$TMP/trained-tiny-Q4_K_M.a.err")" -le 1 ]; then
    pass gguf_type_notes "$(grep -c . "$TMP/trained-tiny-Q4_K_M.a.err") stderr lines"
else
    fail gguf_type_notes "$(cat "$TMP/trained-tiny-Q4_K_M.a.err")"
fi

# a text prompt: the GGUF's tokenizer gives the reference ids (SentencePiece, BOS first) of the
# first prompt of phi3-trained-tiny/reference/prompts.json
text="After these things the word of the LORD came unto Abram in a vision, saying, Fear not, Abram: I am thy shield, and thy exceeding great reward."
a=$("$PHI" -m "$G/trained-tiny-Q8_0.gguf" --tokenize --bos -p "$text" 2> /dev/null)
b=$(tr -d ' \n[]' < "$G/reference/Q8_0/p0/ids.json")
if [ -n "$a" ] && [ "$a" = "$b" ]; then pass gguf_tokenize "$a"; else fail gguf_tokenize "'$a' vs '$b'"; fi

expect_error gguf_wrong_arch "$PHI" -m "$G/gguf-types.gguf" -p hi -n 1
expect_error gguf_quant_wrong_arch "$QUANT" "$G/gguf-types.gguf" "$TMP/types.phi"
[ -e "$TMP/types.phi" ] && fail gguf_quant_no_output "left $TMP/types.phi" || pass gguf_quant_no_output
expect_error gguf_quant_refuses_q "$QUANT" -q q4 "$G/phi4ish-f16.gguf" "$TMP/q.phi"
cp "$G/phi4ish-f16.gguf" "$TMP/self.gguf"
expect_error gguf_quant_output_is_input "$QUANT" "$TMP/self.gguf" "$TMP/self.gguf"
if cmp -s "$G/phi4ish-f16.gguf" "$TMP/self.gguf"; then pass gguf_quant_input_untouched; else fail gguf_quant_input_untouched; fi
head -c 100000 "$G/phi4ish-f16.gguf" > "$TMP/cut.gguf"
expect_error gguf_truncated "$PHI" -m "$TMP/cut.gguf" -p hi -n 1
