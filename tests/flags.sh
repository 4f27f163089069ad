#!/bin/sh
# llama.cpp-style flags of ./phi: long aliases give the same output as the short forms, the
# sampler flags are accepted and validated, --version, the clock seed is printed, options a mode
# would ignore are refused; and make install / uninstall into a temporary DESTDIR.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/flags
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

$QUANT --random tiny -q q8 "$TMP/tiny.phi" 2> /dev/null || fail flags_model "quant --random failed"
M="$TMP/tiny.phi"

# aliases: the same seeded sampled run, spelled short and long
$PHI -m "$M" -p "hello world" -n 6 -c 64 -t 1 -s 5 --temp 0.9 > "$TMP/a" 2> /dev/null
$PHI --model "$M" --prompt "hello world" --n-predict 6 --ctx-size 64 --threads 1 --seed 5 --temp 0.9 > "$TMP/b" 2> /dev/null
if [ -s "$TMP/a" ] && cmp -s "$TMP/a" "$TMP/b"; then pass flags_long_aliases "$(tr '\n' ' ' < "$TMP/a")"
else fail flags_long_aliases "$(cat "$TMP/a") vs $(cat "$TMP/b")"; fi
printf 'hello world' > "$TMP/prompt.txt"
$PHI --model "$M" --file "$TMP/prompt.txt" --n-predict 6 --ctx-size 64 --threads 1 --seed 5 --temp 0.9 > "$TMP/c" 2> /dev/null
if cmp -s "$TMP/a" "$TMP/c"; then pass flags_file_alias; else fail flags_file_alias; fi

# the seed: printed on stderr when it comes from the clock, and that seed repeats the run
$PHI -m "$M" -p "hello world" -n 6 --temp 0.9 > "$TMP/d" 2> "$TMP/err"
seed=$(sed -n 's/^phi: seed \([0-9][0-9]*\)$/\1/p' "$TMP/err")
if [ -n "$seed" ]; then
    $PHI -m "$M" -p "hello world" -n 6 --temp 0.9 -s "$seed" > "$TMP/e" 2> "$TMP/err2"
    if cmp -s "$TMP/d" "$TMP/e" && ! grep -q '^phi: seed' "$TMP/err2"; then pass flags_clock_seed_printed "seed $seed"
    else fail flags_clock_seed_printed "the printed seed $seed did not repeat the run"; fi
else
    fail flags_clock_seed_printed "no 'phi: seed N' line: $(cat "$TMP/err")"
fi

# sampler flags: accepted; a strong repeat penalty with greedy decoding changes a looping output
$PHI -m "$M" --ids 1,2,3 -n 24 --temp 0 --ignore-eos > "$TMP/g0" 2> /dev/null
$PHI -m "$M" --ids 1,2,3 -n 24 --temp 0 --ignore-eos --repeat-penalty 50 --repeat-last-n 24 > "$TMP/g1" 2> /dev/null
if [ -s "$TMP/g1" ] && ! cmp -s "$TMP/g0" "$TMP/g1"; then
    # with penalty 50 over the last 24 tokens, no generated id repeats (random logits are O(1))
    dup=$(tr ',' '\n' < "$TMP/g1" | sort | uniq -d | wc -l)
    [ "$dup" -eq 0 ] && pass flags_repeat_penalty "$(cat "$TMP/g0") -> $(cat "$TMP/g1")" \
        || fail flags_repeat_penalty "repeated ids with --repeat-penalty 50: $(cat "$TMP/g1")"
else
    fail flags_repeat_penalty "output unchanged: $(cat "$TMP/g1")"
fi
$PHI -m "$M" -p hi -n 4 --min-p 0.1 --presence-penalty 0.5 --frequency-penalty 0.5 --seed 1 > /dev/null 2> "$TMP/err"
[ $? -eq 0 ] && pass flags_sampler_accepted || fail flags_sampler_accepted "$(cat "$TMP/err")"
expect_error flags_bad_min_p $PHI -m "$M" -p hi --min-p 2
expect_error flags_bad_repeat_penalty $PHI -m "$M" -p hi --repeat-penalty 0
expect_error flags_bad_repeat_last_n $PHI -m "$M" -p hi --repeat-last-n -2
expect_error flags_bad_seed $PHI -m "$M" -p hi -s -1

# --verbose-prompt: the token count and one line per token on stderr
$PHI -m "$M" --ids 1,2,3 -n 1 --temp 0 --verbose-prompt > /dev/null 2> "$TMP/err"
if grep -q '^phi: prompt: 3 tokens' "$TMP/err" && [ "$(grep -c -- "-> '" "$TMP/err")" -eq 3 ]; then
    pass flags_verbose_prompt; else fail flags_verbose_prompt "$(cat "$TMP/err")"; fi

# --special / -sp (llama.cpp's): ids of special tokens decode to their text, as Hugging Face's
# decode with skip_special_tokens=False. The expected strings are the "content" of the ids in
# phi3-trained-tiny's tokenizer.json: 1 <s>, 0 <unk>, 32007 <|end|>, 32001 <|assistant|>,
# 32000 <|endoftext|>; 2 (</s>) is not special there and prints either way.
DATA=${PHI_DATA:-../shared/data}
if [ -d "$DATA/phi3-trained-tiny" ] && $QUANT -q q8 "$DATA/phi3-trained-tiny" "$TMP/trained.phi" 2> /dev/null; then
    T="$TMP/trained.phi"
    out=$($PHI -m "$T" --detokenize -p 1,0,2,32007,32001 --special 2> "$TMP/err")
    [ "$out" = "<s><unk></s><|end|><|assistant|>" ] && pass flags_special_detokenize "$out" \
        || fail flags_special_detokenize "'$out' $(cat "$TMP/err")"
    out=$($PHI -m "$T" --detokenize -p 1,0,2,32007,32001 2> "$TMP/err")
    [ "$out" = "</s>" ] && pass flags_special_off "$out" || fail flags_special_off "'$out'"
    # SentencePiece spacing around them (HF: the pieces <s> _The <|end|> _The give "<s> The<|end|> The")
    ids=$($PHI -m "$T" --tokenize -p "The" 2> /dev/null)
    out=$($PHI -m "$T" --detokenize -sp -p "1,$ids,32007,$ids" 2> /dev/null)
    [ "$out" = "<s> The<|end|> The" ] && pass flags_special_spacing "$out ($ids)" || fail flags_special_spacing "'$out' ($ids)"
    # generation: greedy past the stop ids, the generated ids hold 32000 then 1; the text has
    # "<|endoftext|><s>" with --special and neither without
    P=$(printf '<|user|>\nHi<|end|>\n<|assistant|>\n')
    gen=$($PHI -m "$T" --ids "$($PHI -m "$T" --tokenize -p "$P")" -n 40 --temp 0 --ignore-eos 2> /dev/null)
    with=$($PHI -m "$T" -p "$P" --no-bos -n 40 --temp 0 --ignore-eos --special 2> /dev/null)
    without=$($PHI -m "$T" -p "$P" --no-bos -n 40 --temp 0 --ignore-eos 2> /dev/null)
    case ",$gen," in *,32000,1,*)
        case "$with" in *"<|endoftext|><s>"*)
            case "$without" in *"<|endoftext|>"*|*"<s>"*) fail flags_special_generation "without: $without" ;;
            *) pass flags_special_generation "$with" ;; esac ;;
        *) fail flags_special_generation "with: $with" ;; esac ;;
    *) echo "SKIP flags_special_generation: the greedy ids ($gen) have no 32000,1" ;;
    esac
else
    echo "SKIP flags_special: no $DATA/phi3-trained-tiny"
fi

# --perf (llama.cpp's): a stats line per chat reply; --no-perf: no stats line after a one-shot run
printf 'hi\nhello\n' | $PHI -m "$M" -i -n 4 --temp 0 --perf > /dev/null 2> "$TMP/err"
n=$(grep -c 'phi: prompt [0-9]* tok, [0-9.]* tok/s | gen [0-9]* tok, [0-9.]* tok/s$' "$TMP/err")
[ "$n" -eq 2 ] && pass flags_perf_chat "$(grep 'phi: prompt' "$TMP/err" | tr '\n' ' ')" || fail flags_perf_chat "$(cat "$TMP/err")"
printf 'hi\nhello\n' | $PHI -m "$M" -i -n 4 --temp 0 > /dev/null 2> "$TMP/err"
! grep -q 'phi: prompt [0-9]' "$TMP/err" && pass flags_perf_off_by_default || fail flags_perf_off_by_default "$(cat "$TMP/err")"
$PHI -m "$M" -p hi -n 4 --temp 0 > /dev/null 2> "$TMP/err"
$PHI -m "$M" -p hi -n 4 --temp 0 --no-perf > /dev/null 2> "$TMP/err2"
if grep -q '| gen 4 tok, ' "$TMP/err" && ! grep -q 'tok/s' "$TMP/err2"; then pass flags_no_perf_one_shot
else fail flags_no_perf_one_shot "$(cat "$TMP/err") / $(cat "$TMP/err2")"; fi

# options a mode would ignore are refused
expect_error flags_system_without_chat $PHI -m "$M" -p hi --system "Be brief."
expect_error flags_verbose_prompt_tokenize $PHI -m "$M" --tokenize -p hi --verbose-prompt

# --version: the version line, the build flags and the kernels of this CPU
$PHI --version > "$TMP/out" 2>&1
if [ $? -eq 0 ] && grep -q '^phi ' "$TMP/out" && grep -q '^built with' "$TMP/out" && grep -q '^kernels on this CPU: ' "$TMP/out"
then pass flags_version "$(tr '\n' '|' < "$TMP/out")"; else fail flags_version "$(cat "$TMP/out")"; fi

# make install into a temporary DESTDIR: the installed phi runs; uninstall leaves no file behind.
# Only for the plain build (./phi): the sanitizer and cross runs use other build folders.
if [ "$PHI" = ./phi ] && [ -f Makefile ] && command -v make > /dev/null; then
    D="$(pwd)/$TMP/destdir"
    if make -s --no-print-directory install DESTDIR="$D" PREFIX=/opt/phi > "$TMP/inst.log" 2>&1 &&
        "$D/opt/phi/bin/phi" -m "$M" -p hi -n 2 --temp 0 > /dev/null 2>&1 &&
        [ -f "$D/opt/phi/share/man/man1/phi.1" ] && [ -x "$D/opt/phi/bin/quant" ]; then
        pass make_install "$(cd "$D" && find . -type f | sort | tr '\n' ' ')"
    else
        fail make_install "$(tail -5 "$TMP/inst.log")"
    fi
    make -s --no-print-directory uninstall DESTDIR="$D" PREFIX=/opt/phi > /dev/null 2>&1
    left=$(find "$D" -type f | wc -l)
    [ "$left" -eq 0 ] && pass make_uninstall || fail make_uninstall "$left files left: $(find "$D" -type f)"
else
    echo "SKIP make_install: not the plain build (PHI=$PHI)"
fi
# KV cache types (llama.cpp's -ctk/-ctv): the long and short spellings give the same output; the
# bad values, a missing value and q8_0 on a head size of 16 (the random tiny shape) are refused in
# one line; --kv-f32 equals -ctk f32 -ctv f32
TM=models/phi3-trained-tiny-q4.phi
$PHI -m "$TM" --ids 1,450,3186 -n 8 --temp 0 --ignore-eos -t 1 -ctk q8_0 -ctv q8_0 > "$TMP/k1" 2> /dev/null
$PHI -m "$TM" --ids 1,450,3186 -n 8 --temp 0 --ignore-eos -t 1 --cache-type-k q8_0 --cache-type-v q8_0 > "$TMP/k2" 2> /dev/null
if [ -s "$TMP/k1" ] && cmp -s "$TMP/k1" "$TMP/k2"; then pass flags_cache_type_aliases "$(cat "$TMP/k1")"
else fail flags_cache_type_aliases "$(cat "$TMP/k1") vs $(cat "$TMP/k2")"; fi
$PHI -m "$TM" --ids 1,450,3186 -n 8 --temp 0 --ignore-eos -t 1 --kv-f32 > "$TMP/k3" 2> /dev/null
$PHI -m "$TM" --ids 1,450,3186 -n 8 --temp 0 --ignore-eos -t 1 -ctk f32 -ctv f32 > "$TMP/k4" 2> /dev/null
if [ -s "$TMP/k3" ] && cmp -s "$TMP/k3" "$TMP/k4"; then pass flags_cache_type_f32_is_kv_f32
else fail flags_cache_type_f32_is_kv_f32 "$(cat "$TMP/k3") vs $(cat "$TMP/k4")"; fi
expect_error flags_cache_type_k_bad $PHI -m "$TM" -p hi -n 1 -ctk q4_0
expect_error flags_cache_type_v_bad $PHI -m "$TM" -p hi -n 1 --cache-type-v Q8_0
expect_error flags_cache_type_missing $PHI -m "$TM" -p hi -n 1 -ctv
expect_error flags_cache_type_head_size $PHI -m "$M" -p hi -n 1 -ctk q8_0
grep -q 'multiple of 32' "$TMP/err" && pass flags_cache_type_head_size_says_why || fail flags_cache_type_head_size_says_why "$(cat "$TMP/err")"
$PHI --help | grep -q -- '-ctk, --cache-type-k' && pass flags_cache_type_help || fail flags_cache_type_help

rm -rf "$TMP"
