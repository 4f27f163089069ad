#!/bin/sh
# phi beside llama.cpp on the very same GGUF files, same machine, same threads (not a timed test).
# llama.cpp comes as node-llama-cpp's prebuilt CPU binaries from the npm registry (installed once
# into build/peer/; nothing of it is committed); the files are Phi-3-mini-shaped GGUFs with random
# weights written by scripts/gguf_random.c in llama.cpp's phi3 layout (Q4_K_M as llama-quantize
# mixes it, Q4_0, Q8_0, IQ4_XS; the tokenizer from ../shared's Phi-3 GGUF). Each figure is printed
# for phi and then for llama.cpp, one after the other, so both see the same machine state.
#   scripts/bench-peer.sh [MIXES="q4_0 q4_k_m q8_0 iq4_xs"] [THREADS=2] [REPS=3]
# Environment: PARALLEL (1,4: aggregate decode of K streams; empty skips), PP (128), TG (32).
set -e
MIXES=${1:-q4_0 q4_k_m q8_0 iq4_xs}
T=${2:-2}
REPS=${3:-3}
PP=${PP:-128}
TG=${TG:-32}
PARALLEL=${PARALLEL-1,4}
PEER_VERSION=3.22.1
TEMPLATE=../shared/data/phi3-gguf/trained-tiny-Q4_K_M.gguf
dir=build/bench
mkdir -p "$dir" build/peer
command -v node > /dev/null || { echo "bench-peer: node is needed (apt-get install nodejs npm)"; exit 1; }
if [ ! -d build/peer/node_modules/node-llama-cpp ]; then
    (cd build/peer || exit 1
     [ -f package.json ] || echo '{"private":true,"type":"module"}' > package.json
     npm install --no-audit --no-fund --ignore-scripts "node-llama-cpp@$PEER_VERSION" > npm.log 2>&1) ||
        { echo "bench-peer: npm install node-llama-cpp@$PEER_VERSION failed (build/peer/npm.log)"; exit 1; }
fi
cp scripts/bench_peer.mjs build/peer/
[ -x build/peer/gguf_random ] && [ build/peer/gguf_random -nt scripts/gguf_random.c ] ||
    ${CC:-cc} -O2 -o build/peer/gguf_random scripts/gguf_random.c
[ -x ./phi ] || make phi
for mix in $MIXES; do
    f="$dir/phi3-mini-$mix.gguf"
    [ -f "$f" ] || build/peer/gguf_random "$TEMPLATE" "$mix" "$f"
    echo "== $mix: $f"
    echo "-- phi"
    ./phi -m "$f" --bench --pp "$PP" --tg "$TG" --reps "$REPS" -t "$T" 2>&1 | grep -v '^phi: .*converted in memory'
    [ -z "$PARALLEL" ] || ./phi -m "$f" --bench --pp 0 --tg "$TG" --parallel "$PARALLEL" --reps "$REPS" -t "$T" 2>&1 |
        grep 'np[0-9]'
    echo "-- llama.cpp"
    PEER_VERSION=$PEER_VERSION node build/peer/bench_peer.mjs "$f" "$T" "$PP" "$TG" "$REPS" "$PARALLEL"
done
