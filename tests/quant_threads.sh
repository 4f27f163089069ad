#!/bin/sh
# quant -t N writes the same bytes for every N: the threads split each chunk of rows into whole
# 16-row panels and each writes its own (convert/convert.c). Checked with cmp on the trained tiny
# model (its 32064 x 256 embedding is two chunks, the second a partial panel's worth of work per
# thread) for q4, q8, q4_k_m and f16, and on a random tiny model (a matrix of 264 rows: a
# partial last panel); a NaN stops every -t with the same message; -t wants a number from 1.
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/quant_threads
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

same() { # NAME ARGS...: -t 1, -t 2 and -t 3 give the same file
    name=$1
    shift
    for n in 1 2 3; do
        if ! $QUANT --no-progress -t $n "$@" "$TMP/t$n.phi" 2> "$TMP/err"; then
            fail "$name" "-t $n: $(cat "$TMP/err")"
            return
        fi
    done
    if cmp -s "$TMP/t1.phi" "$TMP/t2.phi" && cmp -s "$TMP/t1.phi" "$TMP/t3.phi"; then
        pass "$name" "-t 1, 2, 3: the same $(wc -c < "$TMP/t1.phi") bytes"
    else
        fail "$name" "the files differ: $(cmp "$TMP/t1.phi" "$TMP/t2.phi"; cmp "$TMP/t1.phi" "$TMP/t3.phi")"
    fi
}

TINY=$DATA/phi3-trained-tiny
if [ -f "$TINY/model.safetensors" ]; then
    types="q4 q8 q4_k_m f16"
    # under an emulator (PHI_EXEC: the board legs) q4 and q8: q4_k_m and f16 split their rows the
    # same way, and each is three conversions (q4_k_m alone: ~130 of the 182 s under qemu-arm)
    if [ -n "${PHI_EXEC:-}" ]; then
        types="q4 q8"
        echo "SKIP quant_threads_same_bytes_q4_k_m, _f16: under an emulator (they run natively in make test, make asan)"
    fi
    for t in $types; do same "quant_threads_same_bytes_$t" -q $t "$TINY"; done
else
    echo "SKIP quant_threads_same_bytes: no $TINY"
fi
same quant_threads_same_bytes_random_q4 -q q4 --random tiny
# A NaN (bf16 or the top half of an f32: bytes c0 7f) in the last element of the file: every
# thread count stops with the same one line naming the tensor and row, and leaves no output.
if [ -f "$TINY/model.safetensors" ]; then
    mkdir -p "$TMP/nan"
    for f in config.json tokenizer.json tokenizer_config.json generation_config.json; do
        [ -f "$TINY/$f" ] && ln -s "$(cd "$TINY" && pwd)/$f" "$TMP/nan/$f"
    done
    cp "$TINY/model.safetensors" "$TMP/nan/"
    size=$(wc -c < "$TMP/nan/model.safetensors")
    printf '\300\177' | dd of="$TMP/nan/model.safetensors" bs=1 seek=$((size - 2)) conv=notrunc 2> /dev/null
    for n in 1 3; do
        expect_error "quant_threads_nan_t$n" $QUANT -t $n -q q4 "$TMP/nan" "$TMP/nan$n.phi"
        cp "$TMP/err" "$TMP/err$n"
    done
    if cmp -s "$TMP/err1" "$TMP/err3" && grep -q non-finite "$TMP/err1" && [ ! -e "$TMP/nan1.phi" ] && [ ! -e "$TMP/nan3.phi" ]; then
        pass quant_threads_nan_same_error "$(cat "$TMP/err1")"
    else
        fail quant_threads_nan_same_error "-t 1: $(cat "$TMP/err1") | -t 3: $(cat "$TMP/err3")"
    fi
fi
expect_error quant_threads_zero $QUANT -t 0 --random tiny "$TMP/x.phi"
expect_error quant_threads_not_a_number $QUANT -t two --random tiny "$TMP/x.phi"
rm -rf "$TMP"
