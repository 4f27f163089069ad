#!/bin/sh
# A phi file whose hyperparameters or section offsets are out of range (docs/FORMAT.md) is refused
# by ./phi with one line naming the field: never a crash, a hang or silently different output.
# Each case patches a field of a random tiny model in place (printf + dd conv=notrunc).
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/model_fields
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

# le N VALUE: VALUE as N little-endian bytes (printf escapes; shell arithmetic is 64-bit)
le() {
    n=$1 v=$(($2)) i=0 s=
    while [ $i -lt "$n" ]; do
        s="$s\\$(printf %o $(((v >> (8 * i)) & 255)))"
        i=$((i + 1))
    done
    printf "$s"
}
# patch OFFSET N VALUE: a copy of the good model with N bytes at OFFSET replaced
patch() {
    cp "$TMP/good.phi" "$TMP/bad.phi"
    le "$2" "$3" | dd of="$TMP/bad.phi" bs=1 seek="$1" conv=notrunc 2> /dev/null
}
# word W VALUE: hyperparameter word W (at 128 + 4 W) set to VALUE
word() { patch $((128 + 4 * $1)) 4 "$2"; }

if ! $QUANT --random tiny -q q4 "$TMP/good.phi" 2> "$TMP/err"; then
    fail model_fields_setup "$(cat "$TMP/err")"
    exit 1
fi
$PHI -m "$TMP/good.phi" -p hello -n 4 --temp 0 --ignore-eos > "$TMP/good.out" 2> /dev/null

# refused NAME WANT: the patched model is refused with one line that contains WANT
refused() {
    expect_error "$1" $PHI -m "$TMP/bad.phi" -p hello -n 4 --temp 0 --ignore-eos
    if ! grep -q -- "$2" "$TMP/err"; then fail "$1_names_field" "wanted '$2' in: $(cat "$TMP/err")"; fi
}
# same NAME: the patched model runs and prints what the good one prints
same() {
    $PHI -m "$TMP/bad.phi" -p hello -n 4 --temp 0 --ignore-eos > "$TMP/out" 2> "$TMP/err"
    if [ $? -eq 0 ] && cmp -s "$TMP/out" "$TMP/good.out"; then pass "$1"
    else fail "$1" "$(head -c 300 "$TMP/err")"; fi
}

# The tiny shape: vocab 512, dim 64, 2 layers, 4 heads, 2 kv heads, head_dim 16, hidden 132,
# 256 positions, rope_dims 16, no window.
word 11 0x80000000; refused sliding_window_2pow31 sliding_window      # used to segfault
word 11 0x800001FF; refused sliding_window_0x800001FF sliding_window  # used to change the output
word 11 0xFFFFFFFF; refused sliding_window_0xFFFFFFFF sliding_window  # used to change the output
word 11 0x40000001; refused sliding_window_over_2pow30 sliding_window
word 11 256; same sliding_window_of_max_seq_len_is_none
word 11 262144; same sliding_window_beyond_context_is_none           # Phi-3.5-mini's value
word 1 0; refused vocab_zero vocab_size
word 1 0x400001; refused vocab_over_2pow22 vocab_size
word 2 0x20001; refused dim_over_2pow17 dim
word 3 0; refused layers_zero n_layers
word 3 1025; refused layers_1025 n_layers
word 4 4097; refused heads_4097 n_heads
word 5 8; refused kv_heads_above_heads n_kv_heads
word 5 3; refused kv_heads_not_dividing divide
word 6 17; refused head_dim_odd even
word 6 14; refused head_dim_below_rope_dims rope_dims
word 6 0x80000010; refused head_dim_huge head_dim
word 7 0x100001; refused hidden_over_2pow20 hidden_dim
word 8 0; refused max_seq_len_zero max_seq_len
word 8 0x1000001; refused max_seq_len_over_2pow24 max_seq_len
word 9 0xFFFFFFFF; refused orig_max_seq_len_huge orig_max_seq_len
word 10 15; refused rope_dims_odd even
word 10 18; refused rope_dims_above_head_dim rope_dims
word 12 2; refused rope_scaling_2 rope_scaling
word 13 2; refused tie_embeddings_2 tie_embeddings
word 14 512; refused bos_outside_vocab bos_id
word 15 0xFFFFFFFF; refused eos_outside_vocab eos_id
word 16 512; refused pad_outside_vocab pad_id
word 17 9; refused stop_ids_9 n_stop_ids
word 18 512; refused stop_id_outside_vocab "stop id"
word 26 0; refused rope_theta_zero rope_theta
word 26 0x7FC00000; refused rope_theta_nan rope_theta
word 26 0xBF800000; refused rope_theta_negative rope_theta
word 27 0x7F800000; refused rms_eps_inf rms_eps
word 27 0x3F800000; refused rms_eps_one rms_eps
word 28 0; refused rope_attn_factor_zero rope_attn_factor
word 29 0x3FC00000; refused partial_rotary_factor_1.5 partial_rotary_factor
word 30 11; refused file_type_11 file_type  # one past the last type (TENSOR_TYPE_COUNT)

# Sections: tensor data over the metadata. The tiny model has 15 tensors: directory at 384
# (1920 bytes), tokenizer at 2304.
patch 72 8 0; refused data_offset_zero "data offset"
patch 72 8 2304; refused data_offset_in_tokenizer "data offset"
patch 472 8 0; refused tensor_data_at_0 "tensor 'model.embed_tokens.weight'"
patch 472 8 128; refused tensor_data_on_hparams "tensor 'model.embed_tokens.weight'"
patch 472 8 2304; refused tensor_data_on_tokenizer "tensor 'model.embed_tokens.weight'"
patch 24 8 0; refused hparams_in_header "sections overlap"
patch 40 8 384; refused tokenizer_on_directory "sections overlap"
patch 56 8 128; refused directory_on_hparams "sections overlap"
# data_offset and the first tensor's offset both 0: the tensor would be the header itself
cp "$TMP/good.phi" "$TMP/bad2.phi"
le 8 0 | dd of="$TMP/bad2.phi" bs=1 seek=72 conv=notrunc 2> /dev/null
le 8 0 | dd of="$TMP/bad2.phi" bs=1 seek=472 conv=notrunc 2> /dev/null
mv "$TMP/bad2.phi" "$TMP/bad.phi"
refused data_offset_and_tensor_at_0 "data offset"
rm -rf "$TMP"
