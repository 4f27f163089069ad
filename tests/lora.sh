#!/bin/sh
# LoRA adapters through the command line: phi --lora / --lora-scaled (greedy ids of the float64
# merged-model references of ../shared/data/phi3-lora, prompt 1: the one whose greedy ids the
# adapter changes), quant --lora, chat's /lora, and the
# error paths: one line, a non-zero exit, no crash, the adapter folder untouched.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/lora_cli
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

A=$DATA/phi3-lora/adapter-r8
BASE=$DATA/phi3-trained-tiny
if [ ! -d "$A" ] || [ ! -d "$BASE" ]; then
    echo "SKIP lora_cli: $A or $BASE not present"
    exit 0
fi
$QUANT -q f32 --no-progress "$BASE" "$TMP/base.phi" 2> /dev/null || fail lora_cli_convert
ids=$(tr -d ' \n[]' < "$A/reference-s1/p1/ids.json")
want1=$(tr -d ' \n[]' < "$A/reference-s1/p1/greedy.json")
want05=$(tr -d ' \n[]' < "$A/reference-s0.5/p1/greedy.json")
base=$($PHI -m "$TMP/base.phi" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)

check_ids() { # NAME WANT GOT
    if [ "$2" = "$3" ]; then pass "$1" "16 greedy ids equal the reference"; else fail "$1" "got $3, want $2"; fi
}
check_ids lora_cli_scale1 "$want1" "$($PHI -m "$TMP/base.phi" --lora "$A" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
check_ids lora_cli_scaled_0.5 "$want05" "$($PHI -m "$TMP/base.phi" --lora-scaled "$A" 0.5 --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
check_ids lora_cli_two_halves "$want1" "$($PHI -m "$TMP/base.phi" --lora-scaled "$A" 0.5 --lora-scaled "$A" 0.5 --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
check_ids lora_cli_ref_path "$want1" "$($PHI -m "$TMP/base.phi" --ref --lora "$A" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
check_ids lora_cli_scale0_is_base "$base" "$($PHI -m "$TMP/base.phi" --lora-scaled "$A" 0 --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
if [ "$base" != "$want1" ]; then pass lora_cli_adapter_changes_ids; else fail lora_cli_adapter_changes_ids "the base gives the adapter's ids"; fi

if $QUANT -q f32 --no-progress --lora "$A" "$BASE" "$TMP/merged.phi" 2> "$TMP/err"; then
    check_ids lora_cli_quant_merged "$want1" "$($PHI -m "$TMP/merged.phi" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
else
    fail lora_cli_quant_merged "$(cat "$TMP/err")"
fi
$QUANT -q f32 --no-progress --lora-scaled "$A" 0.5 "$BASE" "$TMP/merged05.phi" 2> /dev/null
check_ids lora_cli_quant_merged_0.5 "$want05" "$($PHI -m "$TMP/merged05.phi" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"

# chat: /lora off, /lora DIR S, a bad /lora (one line, the chat goes on)
printf 'Hello\n/lora off\nHello\n/lora %s 0.5\nHi\n/lora /nonexistent\nBye\n' "$A" |
    $PHI -m "$TMP/base.phi" --lora "$A" -i -n 4 --temp 0 > "$TMP/chat.out" 2> "$TMP/chat.err"
rc=$?
if [ $rc -eq 0 ] && grep -q "detached" "$TMP/chat.err" && grep -q "attached LoRA adapter" "$TMP/chat.err" &&
    grep -q "no such file" "$TMP/chat.err"; then
    pass lora_cli_chat_command "/lora off, /lora DIR 0.5 and a bad /lora in one session"
else
    fail lora_cli_chat_command "exit $rc: $(tr '\n' '|' < "$TMP/chat.err" | head -c 400)"
fi

# errors
mkdir -p "$TMP/dora"
cp "$A/adapter_model.safetensors" "$TMP/dora/"
sed 's/"use_dora": false/"use_dora": true/' "$A/adapter_config.json" > "$TMP/dora/adapter_config.json"
mkdir -p "$TMP/copy"
cp "$A/adapter_model.safetensors" "$A/adapter_config.json" "$TMP/copy/"
expect_error lora_cli_no_folder $PHI -m "$TMP/base.phi" --lora /nonexistent/adapter -p hi -n 1
expect_error lora_cli_dora $PHI -m "$TMP/base.phi" --lora "$TMP/dora" -p hi -n 1
expect_error lora_cli_scaled_no_scale $PHI -m "$TMP/base.phi" -p hi --lora-scaled "$A"
expect_error lora_cli_scaled_bad_scale $PHI -m "$TMP/base.phi" --lora-scaled "$A" abc -p hi
expect_error lora_cli_quant_dora $QUANT -q f32 --lora "$TMP/dora" "$BASE" "$TMP/x.phi"
expect_error lora_cli_quant_random $QUANT --random tiny --lora "$A" "$TMP/x.phi"
expect_error lora_cli_quant_output_in_adapter $QUANT -q f32 --lora "$TMP/copy" "$BASE" "$TMP/copy/adapter_model.safetensors"
if cmp -s "$A/adapter_model.safetensors" "$TMP/copy/adapter_model.safetensors" && [ ! -e "$TMP/x.phi" ]; then
    pass lora_cli_inputs_untouched
else
    fail lora_cli_inputs_untouched
fi
# an adapter for another model: the tiny random shape has 2 layers of 64
$QUANT --random tiny -q f32 "$TMP/tiny.phi" 2> /dev/null
expect_error lora_cli_wrong_model $PHI -m "$TMP/tiny.phi" --lora "$A" -p hi -n 1
# a GGUF adapter file (written by tests/test_lora.c when it ran first) as input and as a refused output
G=${PHI_TMP:-build/tmp}/lora_adapter.gguf
if [ -f "$G" ]; then
    cp "$G" "$TMP/a.gguf"
    check_ids lora_cli_gguf "$want1" "$($PHI -m "$TMP/base.phi" --lora "$TMP/a.gguf" --ids "$ids" -n 16 --temp 0 --ignore-eos 2> /dev/null)"
    expect_error lora_cli_quant_output_is_gguf_adapter $QUANT -q f32 --lora "$TMP/a.gguf" "$BASE" "$TMP/a.gguf"
    if cmp -s "$G" "$TMP/a.gguf"; then pass lora_cli_gguf_untouched; else fail lora_cli_gguf_untouched; fi
else
    echo "SKIP lora_cli_gguf: $G not written (run build/tests/test_lora first)"
fi
