#!/bin/sh
# --prompt-cache FILE (llama.cpp's flag): a run that loads the saved KV cache prints exactly what a
# run without it prints (greedy, the same kernels: bit for bit); a prompt that diverges reuses only
# the common prefix; a damaged, truncated, foreign or mismatched file is reported in one line and
# not used (the run goes on, and rewrites the file); --prompt-cache-ro never writes; the file is
# never written over something that is not a regular file, nor over the model.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/prompt_cache
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

$QUANT --random tiny -q q8 "$TMP/tiny.phi" 2> /dev/null || fail pc_model "quant --random failed"
$QUANT --random tiny -q q8 --seed 2 "$TMP/other.phi" 2> /dev/null || fail pc_model "quant --random failed"
M="$TMP/tiny.phi"
C="$TMP/cache"
# prompts as ids (no BOS added), so the shared prefixes are counted by hand: A has 10 ids; B is A
# with its 7th id changed (6 shared); L is A and 4 more (10 shared)
A=1,100,101,102,103,104,105,106,107,108
B=1,100,101,102,103,104,299,106,107,108
L=$A,109,110,111,112
run() { # run NAME IDS [flags]: the generated ids to $TMP/NAME, stderr to $TMP/NAME.err
    name=$1 ids=$2
    shift 2
    $PHI -m "$M" --ids "$ids" -n 24 --temp 0 --ignore-eos -t 1 "$@" > "$TMP/$name" 2> "$TMP/$name.err"
}
reused() { sed -n 's/^phi: prompt cache: \([0-9]*\) of [0-9]* prompt tokens reused$/\1/p' "$TMP/$1.err"; }
same() { # same TEST NAME REF WANT_REUSED
    if [ -s "$TMP/$2" ] && cmp -s "$TMP/$2" "$TMP/$3" && [ "$(reused "$2")" = "$4" ]; then
        pass "$1" "$(reused "$2") reused; $(cat "$TMP/$2")"
    else
        fail "$1" "reused '$(reused "$2")' (want $4); $(cat "$TMP/$2") vs $(cat "$TMP/$3"); $(cat "$TMP/$2.err")"
    fi
}

run refA "$A"
run refB "$B"
run refL "$L"
run first "$A" --prompt-cache "$C"
same pc_first_run_writes first refA 0
# header 64 bytes, 10 ids of 4 bytes, then keys and values
[ -f "$C" ] && [ "$(head -c 8 "$C")" = PHIPCACH ] && pass pc_file_written "$(wc -c < "$C") bytes" \
    || fail pc_file_written "$(ls -la "$C" 2>&1)"
run again "$A" --prompt-cache "$C"
same pc_same_prompt_equal again refA 9 # the last id is evaluated again for its logits
run diverge "$B" --prompt-cache "$C" --prompt-cache-ro
same pc_diverging_prompt_prefix_only diverge refB 6
run longer "$L" --prompt-cache "$C" --prompt-cache-ro
same pc_longer_prompt_equal longer refL 10
cp "$C" "$TMP/before"
run longer2 "$L" --prompt-cache "$C" --prompt-cache-ro
cmp -s "$C" "$TMP/before" && pass pc_read_only_not_written || fail pc_read_only_not_written
run longer3 "$L" --prompt-cache "$C" # now the file holds L's 14 ids
run longer4 "$L" --prompt-cache "$C"
same pc_rewritten_with_longer_prompt longer4 refL 13
# the F32 KV cache and the reference kernels: equal too
$PHI -m "$M" --ids "$A" -n 24 --temp 0 --ignore-eos --kv-f32 > "$TMP/refF" 2> /dev/null
run f1 "$A" --kv-f32 --prompt-cache "$TMP/cf"
run f2 "$B" --kv-f32 --prompt-cache "$TMP/cf"
$PHI -m "$M" --ids "$B" -n 24 --temp 0 --ignore-eos --kv-f32 > "$TMP/refFB" 2> /dev/null
same pc_kv_f32_equal f2 refFB 6

# the q8_0 cache (-ctk/-ctv; the bundled model: head size 32, a multiple of q8_0's block): a loaded
# cache gives the same output as none, and a file of another cache type is refused in one line
TM=models/phi3-trained-tiny-q4.phi
q8run() { # q8run NAME IDS [flags]
    name=$1 ids=$2
    shift 2
    $PHI -m "$TM" --ids "$ids" -n 24 --temp 0 --ignore-eos -t 1 "$@" > "$TMP/$name" 2> "$TMP/$name.err"
}
q8run q8ref "$B" -ctk q8_0 -ctv q8_0
q8run q8a "$A" -ctk q8_0 -ctv q8_0 --prompt-cache "$TMP/cq"
q8run q8b "$B" -ctk q8_0 -ctv q8_0 --prompt-cache "$TMP/cq" --prompt-cache-ro
same pc_q8_0_equal q8b q8ref 6
q8run q8kref "$B" -ctk q8_0
q8run q8k1 "$A" -ctk q8_0 --prompt-cache "$TMP/ck"
q8run q8k2 "$B" -ctk q8_0 --prompt-cache "$TMP/ck" --prompt-cache-ro
same pc_q8_0_keys_only_equal q8k2 q8kref 6
q8run q8mix "$B" -ctv q8_0 --prompt-cache "$TMP/cq" --prompt-cache-ro
if [ "$(grep -c 'prompt-cache' "$TMP/q8mix.err")" -eq 1 ] &&
    grep -q 'another KV cache type (keys q8_0, values q8_0; this run: keys f16, values q8_0' "$TMP/q8mix.err" &&
    [ "$(reused q8mix)" = 0 ]; then pass pc_q8_0_mismatch_refused "$(grep prompt-cache "$TMP/q8mix.err")"
else fail pc_q8_0_mismatch_refused "$(cat "$TMP/q8mix.err")"; fi

# files that are not used: one line each, the output unchanged, exit status 0
bad() { # bad TEST PATTERN [flags]
    name=$1 pat=$2
    shift 2
    run "$name" "$A" --prompt-cache "$C" "$@"
    rc=$?
    n=$(grep -c 'prompt-cache' "$TMP/$name.err")
    if [ $rc -eq 0 ] && [ "$n" -eq 1 ] && grep -q "$pat" "$TMP/$name.err" && [ "$(reused "$name")" = 0 ] &&
        { cmp -s "$TMP/$name" "$TMP/refA" || [ $# -gt 0 ]; }; then
        pass "$name" "$(grep 'prompt-cache' "$TMP/$name.err")"
    else
        fail "$name" "exit $rc: $(cat "$TMP/$name.err")"
    fi
}
rm -f "$C"; run mk "$A" --prompt-cache "$C"; cp "$C" "$TMP/good"
# a byte of the keys changed: the checksum
cp "$TMP/good" "$C"; printf 'XXXXXXXX' | dd of="$C" bs=1 seek=300 conv=notrunc 2> /dev/null
bad pc_corrupt_payload "checksum does not match"
# the run rewrote it: the next one reuses it
run fixed "$A" --prompt-cache "$C"
same pc_corrupt_file_replaced fixed refA 9
head -c 1000 "$TMP/good" > "$C"
bad pc_truncated 'truncated or damaged'
cp "$TMP/good" "$C"; printf '\377' | dd of="$C" bs=1 seek=12 conv=notrunc 2> /dev/null # n_tokens
bad pc_header_count 'truncated or damaged'
head -c 5000 "$M" > "$C"
bad pc_foreign_file 'not a phi prompt cache'
: > "$C"
bad pc_empty_file 'not a phi prompt cache'
cp "$TMP/good" "$C"; printf '\003' | dd of="$C" bs=1 seek=8 conv=notrunc 2> /dev/null
bad pc_unknown_version 'unknown version'
cp "$TMP/good" "$C"
bad pc_other_context 'another context size' -c 128
cp "$TMP/good" "$C"
bad pc_kv_type 'another KV cache type (keys f16, values f16; this run: keys f32, values f32' --kv-f32
cp "$TMP/good" "$C"
$PHI -m "$TMP/other.phi" --ids "$A" -n 24 --temp 0 --ignore-eos --prompt-cache "$C" > /dev/null 2> "$TMP/o.err"
[ $? -eq 0 ] && [ "$(grep -c 'prompt-cache' "$TMP/o.err")" -eq 1 ] && grep -q 'another model' "$TMP/o.err" \
    && pass pc_other_model "$(grep prompt-cache "$TMP/o.err")" || fail pc_other_model "$(cat "$TMP/o.err")"

# never over a non-regular file, never over the model
mkdir "$TMP/dir"
run dirrun "$A" --prompt-cache "$TMP/dir"
if [ -d "$TMP/dir" ] && grep -q 'not a regular file; not used' "$TMP/dirrun.err" && grep -q 'not written' "$TMP/dirrun.err" &&
    cmp -s "$TMP/dirrun" "$TMP/refA"; then pass pc_directory_untouched "$(tr '\n' ' ' < "$TMP/dirrun.err")"
else fail pc_directory_untouched "$(cat "$TMP/dirrun.err")"; fi
if command -v mkfifo > /dev/null && mkfifo "$TMP/fifo"; then
    run fiforun "$A" --prompt-cache "$TMP/fifo"
    [ -p "$TMP/fifo" ] && grep -q 'not written' "$TMP/fiforun.err" && pass pc_fifo_untouched || fail pc_fifo_untouched "$(cat "$TMP/fiforun.err")"
fi
cp "$M" "$TMP/model.bak"
expect_error pc_model_file_refused $PHI -m "$M" --ids "$A" -n 4 --prompt-cache "$M"
cmp -s "$M" "$TMP/model.bak" && pass pc_model_file_untouched || fail pc_model_file_untouched
expect_error pc_ro_without_file $PHI -m "$M" --ids "$A" -n 4 --prompt-cache-ro
expect_error pc_not_in_bench $PHI -m "$M" --bench --prompt-cache "$C"
expect_error pc_not_with_logits $PHI -m "$M" --ids "$A" -n 4 --prompt-cache "$C" --logits "$TMP/lg"
# chat: the first prompt (system prompt and first message) is cached; a later chat with the same
# system prompt and another question reuses the system part and answers exactly as without it
D=models/phi3-trained-tiny-q4.phi
SYS="You are a scribe of the old books. Answer in their words, briefly, and name the book and the chapter when you can."
chat() { # chat NAME QUESTION [flags]
    name=$1 q=$2
    shift 2
    $PHI -m "$D" --chat --system "$SYS" -p "$q" -n 16 --temp 0 -t 1 --no-perf "$@" > "$TMP/$name" 2> "$TMP/$name.err"
}
if [ -f "$D" ]; then
    chat cref1 "Who is the LORD?"
    chat cref2 "And what of Moses?"
    chat cc1 "Who is the LORD?" --prompt-cache "$TMP/chat.cache"
    same pc_chat_first_run_writes cc1 cref1 0
    chat cc2 "And what of Moses?" --prompt-cache "$TMP/chat.cache"
    n2=$(reused cc2)
    if [ -s "$TMP/cc2" ] && cmp -s "$TMP/cc2" "$TMP/cref2" && [ "${n2:-0}" -gt 20 ]; then
        pass pc_chat_system_prompt_reused "$n2 reused; $(cat "$TMP/cc2")"
    else
        fail pc_chat_system_prompt_reused "reused '$n2'; $(cat "$TMP/cc2") vs $(cat "$TMP/cref2"); $(cat "$TMP/cc2.err")"
    fi
else
    echo "SKIP pc_chat: the bundled model $D is absent"
fi
ls "$TMP"/*.tmp.* > /dev/null 2>&1 && fail pc_no_temp_files_left "$(ls "$TMP"/*.tmp.*)" || pass pc_no_temp_files_left
rm -rf "$TMP"
