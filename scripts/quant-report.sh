#!/bin/sh
# quant-report.sh [-c N] [--chunks N] [--ppl-all] [-t N] [--calib FILE] MODEL_DIR TEXT
#
# Converts a Hugging Face Phi-3 folder to f32 and each of $TYPES (default f16 q8 q4 q4_k q4_k_m
# q5_k q6_k) and prints one table row per type:
# file size, bits per weight (whole file over all weights), perplexity over TEXT (phi
# --perplexity, llama.cpp's method unless --ppl-all), KL divergence against the f32 model's
# logits (mean and 99th percentile per position), top-1 agreement with f32, and prompt and
# generation speed from phi's stats line (a greedy run: the first 1000 bytes of TEXT as the
# prompt, 128 tokens generated). --calib FILE adds a row for q4 made with quant --calib FILE.
# Needs ./phi and ./quant (make), or $PHI and $QUANT.
#
# The f32 logits are kept in a temporary file of (scored positions x vocab x 4) bytes: about
# 830 MB for a 50 KB text at -c 256 with a 32064 vocabulary; --chunks N bounds it.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
ppl_args=""
threads=""
calib=""
while [ $# -gt 0 ]; do
    case "$1" in
        -c|--chunks|-t)
            [ $# -ge 2 ] || { echo "quant-report: $1 needs a value" >&2; exit 1; }
            if [ "$1" = -t ]; then threads="-t $2"; else ppl_args="$ppl_args $1 $2"; fi
            shift 2 ;;
        --ppl-all) ppl_args="$ppl_args --ppl-all"; shift ;;
        --calib)
            [ $# -ge 2 ] || { echo "quant-report: --calib needs a file" >&2; exit 1; }
            [ -r "$2" ] || { echo "quant-report: cannot read $2" >&2; exit 1; }
            calib=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "quant-report: unknown option $1" >&2; exit 1 ;;
        *) break ;;
    esac
done
if [ $# -ne 2 ]; then
    echo "usage: quant-report.sh [-c N] [--chunks N] [--ppl-all] [-t N] [--calib FILE] MODEL_DIR TEXT" >&2
    exit 1
fi
dir=$1
text=$2
[ -d "$dir" ] || { echo "quant-report: $dir is not a folder" >&2; exit 1; }
[ -r "$text" ] || { echo "quant-report: cannot read $text" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/quant-report.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
head -c 1000 "$text" > "$tmp/prompt.txt"

# field FILE SED-EXPRESSION: the first match of a 's/.../\1/p' expression, or '?'
field() { v=$(sed -n "$2" "$1" | head -1); echo "${v:-?}"; }

echo "| type | file size | bits/weight | perplexity | KL vs f32: mean | KL p99 | top-1 vs f32 | prompt tok/s | gen tok/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in f32 ${TYPES:-f16 q8 q4 q4_k q4_k_m q5_k q6_k} ${calib:+q4-calib}; do
    m="$tmp/$t.phi"
    if [ $t = q4-calib ]; then set -- -q q4 --calib "$calib"; else set -- -q $t; fi
    if ! $QUANT --no-progress "$@" "$dir" "$m" 2> "$tmp/err"; then
        echo "quant-report: $(cat "$tmp/err")" >&2
        exit 1
    fi
    if [ $t = f32 ]; then kl="--save-logits $tmp/f32.logits"; else kl="--kl-base $tmp/f32.logits"; fi
    # shellcheck disable=SC2086 # the argument lists are meant to split
    if ! $PHI -m "$m" $threads --perplexity "$text" $ppl_args $kl > "$tmp/ppl" 2> "$tmp/err"; then
        echo "quant-report: $t: $(cat "$tmp/err")" >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    if ! $PHI -m "$m" $threads -f "$tmp/prompt.txt" -n 128 --temp 0 --ignore-eos > /dev/null 2> "$tmp/gen"; then
        echo "quant-report: $t: $(cat "$tmp/gen")" >&2
        exit 1
    fi
    bytes=$(field "$tmp/ppl" 's/^model: [0-9]* weights, \([0-9]*\) bytes.*/\1/p')
    bpw=$(field "$tmp/ppl" 's/.* bytes, \([0-9.]*\) bits per weight.*/\1/p')
    ppl=$(field "$tmp/ppl" 's/^perplexity: \(.*\)$/\1/p')
    if [ $t = f32 ]; then
        klm="0 (base)"; klp="0"; top1="1"
    else
        klm=$(field "$tmp/ppl" 's/^KL divergence: mean \([^ ]*\) .*/\1/p')
        klp=$(field "$tmp/ppl" 's/^KL divergence: .* p99 \([^,]*\),.*/\1/p')
        top1=$(field "$tmp/ppl" 's/^top-1 agreement: \(.*\)$/\1/p')
    fi
    pps=$(field "$tmp/gen" 's/.*prompt [0-9]* tok, \([0-9.]*\) tok\/s.*/\1/p')
    gps=$(field "$tmp/gen" 's/.*gen [0-9]* tok, \([0-9.]*\) tok\/s.*/\1/p')
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f MB", b / 1e6 }')
    echo "| $t | $mb | $bpw | $ppl | $klm | $klp | $top1 | $pps | $gps |"
    rm -f "$m"
done
