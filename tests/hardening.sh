#!/bin/sh
# phi's outputs, inputs and limits (issue 16): every mode's standard output is checked (a full
# disk: one line and a non-zero exit; a closed pipe: ended quietly at the next write by SIGPIPE, as
# cat is, or one line when SIGPIPE is ignored); one vocabulary rule for --ids and --detokenize;
# NaN/Inf weights refused; endless inputs and contexts past the address space refused with one line.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
BUILD=${BUILD:-build}
TMP=${PHI_TMP:-build/tmp}/hardening
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

$QUANT --random tiny -q q8 "$TMP/tiny.phi" 2> /dev/null || fail hardening_model "quant --random tiny failed"
M="$TMP/tiny.phi"
i=0
while [ $i -lt 40 ]; do echo "The quick brown fox jumps over the lazy dog, again and again."; i=$((i + 1)); done > "$TMP/text.txt"

# --- standard output on a full disk: /dev/full (Linux) ---
# full NAME ARGS...: phi ARGS > /dev/full exits 1..127 with one line saying it cannot write
full() {
    name=$1
    shift
    "$PHI" "$@" > /dev/full 2> "$TMP/err" < /dev/null
    rc=$?
    lines=$(wc -l < "$TMP/err")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ] && grep -q "cannot write" "$TMP/err"; then
        pass "$name" "$(cat "$TMP/err")"
    else
        fail "$name" "exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err")"
    fi
}
if [ -c /dev/full ]; then
    full stdout_full_generate -m "$M" -p hello -n 8
    full stdout_full_ids -m "$M" --ids 1,2,3 -n 4
    full stdout_full_tokenize -m "$M" --tokenize -p "hello world"
    full stdout_full_detokenize -m "$M" --detokenize -p 10,20,30
    full stdout_full_perplexity -m "$M" --perplexity "$TMP/text.txt" -c 16 --chunks 2
    full stdout_full_bench -m "$M" --bench --pp 4 --tg 2 --reps 1
    full stdout_full_chat -m "$M" --chat -p hello -n 4
else
    echo "SKIP stdout_full: /dev/full is absent"
fi

# --- a closed pipe: phi ... | head -c1 ---
# Generation flushes every token; with SIGPIPE at its default the first write after the reader
# has gone ends phi (status 128 + 13), silently. -n -1 with a 4096-token context would print
# thousands of tokens: phi must not get there (its stats line on stderr would say so).
{ $PHI -m "$M" -p hello -n -1 --ignore-eos --temp 1 2> "$TMP/err"; echo $? > "$TMP/rc"; } | head -c 1 > /dev/null
rc=$(cat "$TMP/rc")
if [ "$rc" -eq 141 ] && ! [ -s "$TMP/err" ]; then pass closed_pipe_quiet "killed by SIGPIPE, nothing on stderr"
else fail closed_pipe_quiet "exit $rc, stderr: $(head -c 200 "$TMP/err")"; fi
# with SIGPIPE ignored (inherited from a parent), the write fails with EPIPE: one line, status 1
( trap '' PIPE
  { $PHI -m "$M" -p hello -n -1 --ignore-eos --temp 1 2> "$TMP/err"; echo $? > "$TMP/rc"; } | head -c 1 > /dev/null )
rc=$(cat "$TMP/rc")
if [ "$rc" -eq 1 ] && [ "$(wc -l < "$TMP/err")" -eq 1 ] && grep -q "Broken pipe" "$TMP/err"; then
    pass closed_pipe_sigpipe_ignored "$(cat "$TMP/err")"
else
    fail closed_pipe_sigpipe_ignored "exit $rc, stderr: $(head -c 200 "$TMP/err")"
fi

# --- one vocabulary rule: ids the tokenizer names (Phi-3: 0..32010; rows 32011..32063 are padding) ---
if [ -d "$DATA/phi3-tiny-ref/mha" ]; then
    $QUANT -q q8 "$DATA/phi3-tiny-ref/mha" "$TMP/mha.phi" 2> /dev/null
    expect_error vocab_ids_padding_refused $PHI -m "$TMP/mha.phi" --ids 1,32011 -n 1
    msg1=$(cat "$TMP/err")
    expect_error vocab_detokenize_padding_refused $PHI -m "$TMP/mha.phi" --detokenize -p 32011
    msg2=$(cat "$TMP/err")
    [ "$msg1" = "$msg2" ] && pass vocab_same_message "$msg1" || fail vocab_same_message "'$msg1' vs '$msg2'"
    expect_error vocab_ids_past_rows_refused $PHI -m "$TMP/mha.phi" --ids 1,32064 -n 1
    if $PHI -m "$TMP/mha.phi" --ids 1,32010 -n 1 > /dev/null 2>&1 &&
        $PHI -m "$TMP/mha.phi" --detokenize -p 32010 > /dev/null 2>&1; then pass vocab_last_named_id_accepted
    else fail vocab_last_named_id_accepted; fi
else
    echo "SKIP vocab_rule: $DATA/phi3-tiny-ref is absent"
fi

# --- NaN and infinite weights ---
# test_corrupt --nan writes tiny models with a NaN/Inf final norm, a NaN-scaled matrix, a NaN
# embedding (refused at load, naming the tensor) and an F16 model with one NaN matrix value
# (caught in the logits: float activations carry it there).
if $PHI_EXEC "$BUILD/tests/test_corrupt" --nan "$TMP"; then
    for f in nan-norm inf-norm nan-matrix nan-embed; do
        expect_error "nan_weights_${f}_refused" $PHI -m "$TMP/$f.phi" -p hello -n 4
        grep -q "NaN or infinite" "$TMP/err" || fail "nan_weights_${f}_message" "$(cat "$TMP/err")"
    done
    expect_error nan_f16_matrix_generate $PHI -m "$TMP/nan-f16-matrix.phi" -p hello -n 4
    grep -q "NaN or infinite logits" "$TMP/err" && pass nan_f16_matrix_generate_message ||
        fail nan_f16_matrix_generate_message "$(cat "$TMP/err")"
    expect_error nan_f16_matrix_perplexity $PHI -m "$TMP/nan-f16-matrix.phi" --perplexity "$TMP/text.txt" -c 16
    grep -q "NaN or infinite logits" "$TMP/err" && pass nan_f16_matrix_perplexity_message ||
        fail nan_f16_matrix_perplexity_message "$(cat "$TMP/err")"
    expect_error nan_f16_matrix_chat $PHI -m "$TMP/nan-f16-matrix.phi" --chat -p hello -n 4
    expect_error nan_f16_matrix_ref $PHI -m "$TMP/nan-f16-matrix.phi" --ref -p hello -n 4
else
    fail nan_weights "test_corrupt --nan failed"
fi
# K-quant matrices keep their scales inside each super-block: an infinite d in one row of a
# q4_kp, q5_kp and q6_kp matrix (converted from the Q4_K_M fixture) is refused at load too.
KQM=$DATA/phi3-gguf/trained-tiny-Q4_K_M.gguf
if [ -f "$KQM" ]; then
    if $QUANT "$KQM" "$TMP/kqm.phi" 2> /dev/null && $PHI_EXEC "$BUILD/tests/test_corrupt" --nan-k "$TMP/kqm.phi" "$TMP"; then
        for t in q4_kp q5_kp q6_kp; do
            expect_error "nan_weights_${t}_refused" $PHI -m "$TMP/nan-$t.phi" -p hello -n 4
            grep -q "NaN or infinite" "$TMP/err" || fail "nan_weights_${t}_message" "$(cat "$TMP/err")"
        done
    else
        fail nan_weights_k "quant or test_corrupt --nan-k failed"
    fi
    # IQ4_XS: d alone is a half (its scales_h beside it may look like anything: not checked)
    if $QUANT -q iq4_xs "$DATA/phi3-trained-tiny" "$TMP/iq4.phi" 2> /dev/null &&
        $PHI -m "$TMP/iq4.phi" -p hello -n 1 > /dev/null 2>&1 &&
        $PHI_EXEC "$BUILD/tests/test_corrupt" --nan-k "$TMP/iq4.phi" "$TMP"; then
        expect_error nan_weights_iq4_xs_refused $PHI -m "$TMP/nan-iq4_xs.phi" -p hello -n 4
        grep -q "NaN or infinite" "$TMP/err" || fail nan_weights_iq4_xs_message "$(cat "$TMP/err")"
    else
        fail nan_weights_iq4_xs "quant -q iq4_xs, its run or test_corrupt --nan-k failed"
    fi
else
    echo "SKIP nan_weights_k: $KQM is absent"
fi

# --- limits: endless inputs, contexts ---
if [ -c /dev/zero ]; then
    expect_error endless_prompt_file $PHI -m "$M" -f /dev/zero -n 1
    grep -q "too large" "$TMP/err" || fail endless_prompt_file_message "$(cat "$TMP/err")"
fi
expect_error context_past_model $PHI -m "$M" -p hello -c 16777216
expect_error context_flag_range $PHI -m "$M" -p hello -c 16777217
expect_error threads_flag_range $PHI -m "$M" -p hello -t 1025
# --ignore-eos and a fixed seed: the point is -n INT_MAX meeting the context, not where a stop id falls
if $PHI -m "$M" -p hello -n 2147483647 -c 64 --ignore-eos -s 1 > /dev/null 2> "$TMP/err" && grep -q "context full" "$TMP/err"; then
    pass huge_n_stops_at_context "$(cat "$TMP/err")"
else
    fail huge_n_stops_at_context "$(cat "$TMP/err")"
fi

# --- a --kl-base file with a NaN logit: refused, not a NaN divergence ---
if $PHI -m "$M" --perplexity "$TMP/text.txt" -c 16 --chunks 2 --save-logits "$TMP/base.logits" > /dev/null 2>&1; then
    printf '\377\377\377\177' | dd of="$TMP/base.logits" bs=1 seek=100 conv=notrunc 2> /dev/null
    expect_error kl_base_nan_refused $PHI -m "$M" --perplexity "$TMP/text.txt" -c 16 --chunks 2 --kl-base "$TMP/base.logits"
    grep -q "NaN" "$TMP/err" || fail kl_base_nan_message "$(cat "$TMP/err")"
else
    fail kl_base_nan_refused "--save-logits failed"
fi
