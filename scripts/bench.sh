#!/bin/sh
# make bench: speed of phi on synthetic full-size Phi-3-mini models (random weights, no download).
# Writes the models once into build/bench/ (q4: 2.25 GB, q4_k_m: 2.42 GB, q8: 4.06 GB; 8.7 GB in all). Environment:
#   SHAPE (phi3-mini), TYPES ("q4 q4_k_m q8"), THREADS (physical cores), REPS (3), DEPTH (1024),
#   PARALLEL (1,2,4,8: streams decoding together, aggregate tok/s; empty: skip)
set -e
SHAPE=${SHAPE:-phi3-mini}
TYPES=${TYPES:-q4 q4_k_m q8}
REPS=${REPS:-3}
DEPTH=${DEPTH:-1024}
PARALLEL=${PARALLEL-1,2,4,8}
dir=build/bench
mkdir -p "$dir"
for t in $TYPES; do
    model="$dir/$SHAPE-$t.phi"
    [ -f "$model" ] || ./quant --random "$SHAPE" -q "$t" "$model"
    echo "== $SHAPE $t"
    ./phi -m "$model" --bench --pp 128 --tg 32 --reps "$REPS" ${THREADS:+-t $THREADS}
    ./phi -m "$model" --bench --pp 0 --tg 32 --depth "$DEPTH" --reps 1 ${THREADS:+-t $THREADS} | grep -v '^| -\|^| model'
    [ -z "$PARALLEL" ] || ./phi -m "$model" --bench --pp 0 --tg 32 --parallel "$PARALLEL" --reps "$REPS" ${THREADS:+-t $THREADS}
done
