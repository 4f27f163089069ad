#!/bin/sh
# Speed cost of a LoRA adapter applied at run time: decode and prefill tok/s of a synthetic
# full-size model (random weights) with and without an all-modules adapter of rank R written by
# scripts/lora_random.c. Environment: SHAPE (phi3-mini), TYPE (q4), R (16), THREADS, REPS (3).
set -e
SHAPE=${SHAPE:-phi3-mini}
TYPE=${TYPE:-q4}
R=${R:-16}
REPS=${REPS:-3}
dir=build/bench
mkdir -p "$dir"
make -s all build/libphi.a
model="$dir/$SHAPE-$TYPE.phi"
[ -f "$model" ] || ./quant --random "$SHAPE" -q "$TYPE" "$model"
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -I. -o build/lora_random scripts/lora_random.c build/libphi.a -lm -lpthread
adapter="$dir/$SHAPE-lora-r$R"
[ -f "$adapter/adapter_model.safetensors" ] || build/lora_random "$model" "$R" "$adapter"
echo "== $SHAPE $TYPE, no adapter"
./phi -m "$model" --bench --pp 128 --tg 32 --reps "$REPS" ${THREADS:+-t $THREADS}
echo "== $SHAPE $TYPE, --lora r=$R on qkv_proj, o_proj, gate_up_proj, down_proj of every layer"
./phi -m "$model" --lora "$adapter" --bench --pp 128 --tg 32 --reps "$REPS" ${THREADS:+-t $THREADS}
