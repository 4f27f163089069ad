#!/bin/sh
# phi --lookup (prompt-lookup speculative decoding): the same bytes as plain greedy decoding on
# the demo model for a prompt it copies from and one it does not, in one-shot generation, with
# --ids, and in chat; the stats line reports drafts and acceptances; bad uses are one line.
PHI=${PHI:-./phi}
TMP=${PHI_TMP:-build/tmp}/lookup
MODEL=models/phi3-trained-tiny-q4.phi
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

same() { # NAME ARGS...: plain and --lookup outputs identical; the lookup run's stats line
    name=$1
    shift
    "$PHI" -m "$MODEL" --temp 0 -t 2 "$@" > "$TMP/a" 2> "$TMP/a.err"
    ra=$?
    "$PHI" -m "$MODEL" --temp 0 -t 2 --lookup "$@" > "$TMP/b" 2> "$TMP/b.err"
    rb=$?
    stats=$(grep 'lookup:' "$TMP/b.err")
    if [ $ra -eq 0 ] && [ $rb -eq 0 ] && cmp -s "$TMP/a" "$TMP/b" && [ -s "$TMP/a" ]; then
        pass "$name" "$(wc -c < "$TMP/a") bytes identical; ${stats#*| gen }"
    else
        fail "$name" "exit $ra/$rb, outputs $(cmp "$TMP/a" "$TMP/b" 2>&1 | head -1); $(head -c 300 "$TMP/b.err")"
    fi
}
same lookup_cli_copy -p "$passage

Again: And God said, Let there" -n 80
grep -q 'lookup: [0-9]* drafted, [0-9]* accepted' "$TMP/b.err" && ! grep -q 'lookup: 0 drafted' "$TMP/b.err" &&
    pass lookup_cli_stats "$(grep -o 'lookup: .*' "$TMP/b.err")" || fail lookup_cli_stats "$(cat "$TMP/b.err")"
same lookup_cli_fresh -p "Wisdom is" -n 40 --draft-max 7
same lookup_cli_ids --ids 1,450,4799,3543,29892,2803,727,367,3578,29901,322,727,471,3578,29889,1126,4799,3543 -n 40
printf 'Say it again: the light was good, the light was good\n' > "$TMP/chat_in"
"$PHI" -m "$MODEL" --temp 0 -t 2 --chat -p "Say it again: the light was good, the light was good" -n 40 > "$TMP/c1" 2>/dev/null
"$PHI" -m "$MODEL" --temp 0 -t 2 --chat --lookup -p "Say it again: the light was good, the light was good" -n 40 > "$TMP/c2" 2>/dev/null
cmp -s "$TMP/c1" "$TMP/c2" && [ -s "$TMP/c1" ] && pass lookup_chat "identical replies" || fail lookup_chat "replies differ"

# K-quant weights (a GGUF Q4_K_M): lookup runs (every ISA's K kernels give a batch of up to 8 each
# token's bits alone: kernels/isa.h k_exact) with the bytes of plain greedy decoding
KQ=${PHI_DATA:-../shared/data}/phi3-gguf/trained-tiny-Q4_K_M.gguf
if [ -f "$KQ" ]; then
    kp="Wisdom is" # the model loops on it: its drafts are kept
    "$PHI" -m "$KQ" --temp 0 -t 2 -p "$kp" -n 60 > "$TMP/k1" 2>/dev/null
    "$PHI" -m "$KQ" --temp 0 -t 2 -p "$kp" -n 60 --lookup > "$TMP/k2" 2> "$TMP/k2.err"
    look=$(grep -o 'lookup: .*' "$TMP/k2.err")
    isa=$(sed -n 's/^phi: \([a-z0-9]*\) x[0-9]* |.*/\1/p' "$TMP/k2.err" | head -1)
    if ! cmp -s "$TMP/k1" "$TMP/k2" || [ ! -s "$TMP/k1" ]; then
        fail lookup_kquant "outputs differ ($isa kernels; $look)"
    elif printf '%s' "$look" | grep -q '^lookup: [1-9][0-9]* drafted, [1-9][0-9]* accepted'; then
        pass lookup_kquant "$(wc -c < "$TMP/k1") bytes identical ($isa kernels; $look)"
    else
        fail lookup_kquant "$isa kernels: $look"
    fi
else
    echo "SKIP lookup_kquant: no $KQ"
fi

expect_error lookup_needs_greedy "$PHI" -m "$MODEL" -p hi --lookup
expect_error lookup_draft_range "$PHI" -m "$MODEL" -p hi --temp 0 --draft-max 8
expect_error lookup_draft_zero "$PHI" -m "$MODEL" -p hi --temp 0 --draft 0
expect_error lookup_not_bench "$PHI" -m "$MODEL" --bench --lookup --temp 0
"$PHI" --help | grep -q 'llama-lookup' && pass lookup_help || fail lookup_help "--help does not describe --lookup"
rm -rf "$TMP"
