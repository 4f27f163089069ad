#!/bin/sh
# phi-server throughput: aggregate generated tokens/s with 1, 2, 4, 8 concurrent streams (each
# server started with --parallel N), and the time to first token of a new request while 3
# streams run (--parallel 4; TTFT=0 skips it). STREAMS="1 4" picks the stream counts. Not a
# timed test: figures for README.
# Environment: SERVER_FLAGS (more phi-server flags, e.g. --lookup), PROMPT_FILE (every stream
# sends that prompt), CTX (positions per slot, default 512), ALT=A,B:REPS (A and B streams
# alternately on one server with -np B, REPS pairs, then the medians and their ratio; instead of
# STREAMS).
#   scripts/bench-server.sh MODEL [THREADS] [TOKENS]
#   e.g. ./quant --random phi3-mini -q q4 /tmp/m-q4.phi && scripts/bench-server.sh /tmp/m-q4.phi 2 64
M=${1:?usage: scripts/bench-server.sh MODEL [THREADS] [TOKENS]}
T=${2:-2}
N_TOK=${3:-64}
CTX=${CTX:-512} # positions per slot
SERVER=${PHI_SERVER:-./phi-server}
LOG=${TMPDIR:-/tmp}/phi-bench-server.log
run() { # run NP MODE
    : > "$LOG"
    "$SERVER" -m "$M" --port 0 -t "$T" -np "$1" -c $(( $1 * CTX )) ${SERVER_FLAGS:-} > "$LOG" 2>&1 &
    pid=$!
    port=
    while [ -z "$port" ] && kill -0 $pid 2> /dev/null; do
        sleep 0.2
        port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$LOG")
    done
    [ -n "$port" ] && node scripts/bench_server.mjs "http://127.0.0.1:$port" "$2" "$N_TOK"
    kill -TERM $pid
    wait $pid
}
if [ -n "${ALT:-}" ]; then # e.g. ALT=1,4:3: one server with -np 4 (the larger), 1 and 4 streams alternately
    b=${ALT#*,}; b=${b%%:*}
    run "$b" "alt:$ALT"
else
    for np in ${STREAMS:-1 2 4 8}; do run "$np" "$np"; done
fi
[ "${TTFT:-1}" = 0 ] || run 4 ttft
