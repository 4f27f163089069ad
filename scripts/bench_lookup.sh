#!/bin/sh
# Prompt lookup (--lookup) against plain greedy decoding, measured alternately (A B A B) so that
# the machine's drift hits both alike: tok/s of generation and the drafted / accepted counts from
# the stats line, and whether the two outputs are the same bytes (they must be).
#   scripts/bench_lookup.sh MODEL [REPS] [N_PREDICT] [THREADS]
# The prompt is an input-grounded task: a passage of the trained tiny model's held-out text and an
# instruction to repeat it (../shared/data/phi3-trained-tiny/heldout.txt; PASSAGE=FILE for another).
set -u
M=${1:?usage: scripts/bench_lookup.sh MODEL [REPS] [N_PREDICT] [THREADS]}
REPS=${2:-3} N=${3:-96} T=${4:-2}
PHI=${PHI:-./phi}
PASSAGE=${PASSAGE:-../shared/data/phi3-trained-tiny/heldout.txt}
TMP=${TMPDIR:-/tmp}/bench_lookup.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
text=$(head -c 900 "$PASSAGE")
start=$(printf '%s' "$text" | head -c 60)
printf '%s\n\nRepeat the passage above word for word:\n%s' "$text" "$start" > "$TMP/prompt"
for r in $(seq "$REPS"); do
    for mode in plain lookup; do
        flag=; [ $mode = lookup ] && flag=--lookup
        "$PHI" -m "$M" -f "$TMP/prompt" --temp 0 -n "$N" -t "$T" --ignore-eos $flag > "$TMP/$mode.out" 2> "$TMP/$mode.err" || { cat "$TMP/$mode.err"; exit 1; }
        line=$(grep 'gen ' "$TMP/$mode.err" | tail -1)
        tps=$(printf '%s' "$line" | sed -n 's/.*gen [0-9]* tok, \([0-9.]*\) tok\/s.*/\1/p')
        look=$(printf '%s' "$line" | sed -n 's/.*lookup: //p')
        echo "run $r $mode: $tps tok/s ${look:+| $look}"
    done
    cmp -s "$TMP/plain.out" "$TMP/lookup.out" && echo "run $r: outputs identical" || echo "run $r: OUTPUTS DIFFER"
done
