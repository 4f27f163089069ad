#!/bin/sh
# bench-quant.sh [-t N] [-q TYPE] [--runs N]: times quant converting a Phi-3-mini-shaped
# Hugging Face folder (3.82 B parameters of random BF16, two safetensors shards, made by
# build/hf_random the first time: 7.6 GB in $HF_DIR, default /tmp/hf-mini) to TYPE (default
# q4), warm cache (the folder is read once before), --runs times (default 2), at -t N threads
# (default: quant's, the physical cores). Each run prints wall seconds, user and system CPU
# seconds and the peak RSS (/usr/bin/time), and the closing line the best wall time beside
# llama-quantize's F16 -> Q4_0 on the same 2-core machine (15.3 s, issue 14). The output file
# goes to $OUT (default: next to the folder) and is removed; the folder is kept (remove it
# by hand when done).
QUANT=${QUANT:-./quant}
BUILD=${BUILD:-build}
HF_DIR=${HF_DIR:-/tmp/hf-mini}
threads=""
type=q4
runs=2
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads="-t $2"; shift 2 ;;
        -q) type=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-quant: unknown option $1" >&2; exit 1 ;;
    esac
done
if [ ! -f "$HF_DIR/model.safetensors.index.json" ]; then
    [ -x "$BUILD/hf_random" ] || { echo "bench-quant: build $BUILD/hf_random first (make bench-quant)" >&2; exit 1; }
    [ -e "$HF_DIR" ] && { echo "bench-quant: $HF_DIR exists but is not a finished folder; remove it" >&2; exit 1; }
    echo "bench-quant: writing $HF_DIR (7.6 GB of random BF16)" >&2
    "$BUILD/hf_random" ${PHI_DATA:-../shared/data}/phi3-tokenizer/phi-3-mini "$HF_DIR" || exit 1
fi
out=${OUT:-$HF_DIR.bench-quant.phi}
cat "$HF_DIR"/*.safetensors > /dev/null # warm the page cache
best=""
i=1
while [ $i -le "$runs" ]; do
    rm -f "$out"
    # shellcheck disable=SC2086 # $threads is meant to split
    /usr/bin/time -f "%e %U %S %M" -o "$out.time" $QUANT --no-progress $threads -q "$type" "$HF_DIR" "$out" 2> "$out.err" ||
        { echo "bench-quant: $(cat "$out.err")" >&2; rm -f "$out" "$out.time" "$out.err"; exit 1; }
    read -r wall user sys rss < "$out.time"
    echo "run $i: quant ${threads:+$threads }-q $type: $wall s wall, $user s user, $sys s system, peak RSS $((rss / 1024)) MiB, $(wc -c < "$out") bytes"
    best=$(awk -v a="$best" -v b="$wall" 'BEGIN { print (a == "" || b < a) ? b : a }')
    i=$((i + 1))
done
rm -f "$out" "$out.time" "$out.err"
echo "best: $best s (llama-quantize F16 -> Q4_0, same machine, issue 14: 15.3 s) on $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
