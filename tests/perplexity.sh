#!/bin/sh
# phi --perplexity from the command line, on a random tiny model (no data needed): the output
# lines, a save / compare round trip (KL 0 against itself), and every error path of the new flags:
# one clear line on stderr, a non-zero exit, no crash, no partial logits file.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/perplexity-sh
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

M="$TMP/tiny.phi"
if ! $QUANT --random tiny -q q8 "$M" 2> "$TMP/err"; then
    fail ppl_model "$(cat "$TMP/err")"
    exit 1
fi
i=0
while [ $i -lt 40 ]; do echo "The quick brown fox jumps over the lazy dog, again and again."; i=$((i + 1)); done > "$TMP/text.txt"

# --- a run, then the same run against its own saved logits ---
$PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --save-logits "$TMP/base.logits" > "$TMP/out" 2> "$TMP/err"
if [ $? -eq 0 ] && grep -Eq '^perplexity: [0-9.]+ \+/- [0-9.]+$' "$TMP/out" && grep -q '^mean NLL: ' "$TMP/out" &&
    grep -q 'perplexity [0-9]* tok in' "$TMP/err" && [ -s "$TMP/base.logits" ]; then
    pass ppl_cli_output "$(grep '^perplexity' "$TMP/out") | $(cat "$TMP/err")"
else
    fail ppl_cli_output "$(cat "$TMP/out" "$TMP/err")"
fi
$PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --kl-base "$TMP/base.logits" > "$TMP/out" 2> "$TMP/err"
if [ $? -eq 0 ] && grep -q '^KL divergence: mean 0 ' "$TMP/out" && grep -q '^top-1 agreement: 1.0000$' "$TMP/out"; then
    pass ppl_cli_kl_self "$(grep '^KL' "$TMP/out")"
else
    fail ppl_cli_kl_self "$(cat "$TMP/out" "$TMP/err")"
fi
$PHI -m "$M" --perplexity "$TMP/text.txt" -c 32 --ppl-all --chunks 3 > "$TMP/out" 2> "$TMP/err"
if [ $? -eq 0 ] && grep -q '^scored: 96 tokens$' "$TMP/out"; then
    pass ppl_cli_all_chunks "$(grep '^method' "$TMP/out")"
else
    fail ppl_cli_all_chunks "$(cat "$TMP/out" "$TMP/err")"
fi
$PHI --help > "$TMP/out" 2>&1
if grep -q -- '--perplexity' "$TMP/out" && grep -q -- '--kl-base' "$TMP/out"; then pass ppl_help; else fail ppl_help; fi

# --- error paths ---
expect_error ppl_missing_text $PHI -m "$M" --perplexity "$TMP/nope.txt"
: > "$TMP/empty.txt"
expect_error ppl_empty_text $PHI -m "$M" --perplexity "$TMP/empty.txt"
printf 'bad \377\376 utf8' > "$TMP/bad-utf8.txt"
expect_error ppl_invalid_utf8 $PHI -m "$M" --perplexity "$TMP/bad-utf8.txt"
expect_error ppl_ctx_too_small $PHI -m "$M" --perplexity "$TMP/text.txt" -c 2
expect_error ppl_ctx_over_model $PHI -m "$M" --perplexity "$TMP/text.txt" -c 100000
echo "just a few words" > "$TMP/short.txt"
expect_error ppl_text_shorter_than_window $PHI -m "$M" --perplexity "$TMP/short.txt" -c 128
expect_error ppl_bad_chunks $PHI -m "$M" --perplexity "$TMP/text.txt" --chunks 0
expect_error ppl_flag_without_perplexity $PHI -m "$M" -p hi --kl-base "$TMP/base.logits"
expect_error ppl_with_prompt $PHI -m "$M" -p hi --perplexity "$TMP/text.txt"
expect_error ppl_kl_base_missing $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --kl-base "$TMP/nope.logits"
expect_error ppl_kl_base_not_logits $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --kl-base "$M"
head -c 1000 "$TMP/base.logits" > "$TMP/trunc.logits"
expect_error ppl_kl_base_truncated $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --kl-base "$TMP/trunc.logits"
expect_error ppl_kl_base_other_ctx $PHI -m "$M" --perplexity "$TMP/text.txt" -c 32 --kl-base "$TMP/base.logits"
expect_error ppl_kl_base_other_method $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --ppl-all --kl-base "$TMP/base.logits"
sed 's/fox/cat/' "$TMP/text.txt" > "$TMP/text2.txt"
expect_error ppl_kl_base_other_tokens $PHI -m "$M" --perplexity "$TMP/text2.txt" -c 64 --kl-base "$TMP/base.logits"
expect_error ppl_save_unwritable $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --save-logits "$TMP/no/such/dir/l.logits"
expect_error ppl_failed_run_saves_nothing $PHI -m "$M" --perplexity "$TMP/text.txt" -c 32 --kl-base "$TMP/base.logits" --save-logits "$TMP/new.logits"
if [ -e "$TMP/new.logits" ]; then fail ppl_no_partial_logits_file; else pass ppl_no_partial_logits_file; fi
if [ -c /dev/full ]; then
    expect_error ppl_save_disk_full $PHI -m "$M" --perplexity "$TMP/text.txt" -c 64 --save-logits /dev/full
fi

# --- quant --calib (needs a Hugging Face folder) ---
DATA=${PHI_DATA:-../shared/data}
HF="$DATA/phi3-tiny-ref/mha"
if [ -d "$HF" ]; then
    expect_error quant_calib_missing_text $QUANT -q q4 --calib "$TMP/nope.txt" "$HF" "$TMP/c.phi"
    expect_error quant_calib_empty_text $QUANT -q q4 --calib "$TMP/empty.txt" "$HF" "$TMP/c.phi"
    expect_error quant_calib_not_q4 $QUANT -q q8 --calib "$TMP/text.txt" "$HF" "$TMP/c.phi"
    expect_error quant_calib_random $QUANT --random tiny -q q4 --calib "$TMP/text.txt" "$TMP/c.phi"
    if ls "$TMP"/c.phi* > /dev/null 2>&1; then fail quant_calib_leaves_nothing "$(ls "$TMP")"; else pass quant_calib_leaves_nothing; fi
    if $QUANT -q q4 --calib "$TMP/text.txt" "$HF" "$TMP/c1.phi" 2> "$TMP/err" &&
        $QUANT -q q4 --calib "$TMP/text.txt" "$HF" "$TMP/c2.phi" 2>> "$TMP/err" &&
        $QUANT -q q4 "$HF" "$TMP/plain.phi" 2>> "$TMP/err" && cmp -s "$TMP/c1.phi" "$TMP/c2.phi" &&
        ! cmp -s "$TMP/c1.phi" "$TMP/plain.phi" && [ -z "$(ls -d "$TMP"/*.tmp "$TMP"/*.tmp.* 2> /dev/null)" ]; then
        pass quant_calib_deterministic "same bytes twice, differs from plain q4, no temporary left"
    else
        fail quant_calib_deterministic "$(cat "$TMP/err")"
    fi
else
    echo "SKIP quant_calib: $HF is absent"
fi
rm -rf "$TMP"
