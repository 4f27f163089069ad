#!/bin/sh
# phi-server against the official OpenAI client (tests/server/client.mjs, npm package `openai`
# pinned in tests/server/package.json; .ci/run installs it): the trained tiny Phi-3 from
# ../shared/data, greedy texts compared with the phi CLI's, streaming, usage, stop strings, 8
# concurrent streams, an aborted stream, malformed requests over raw sockets, --api-key, a full
# queue (503), LoRA adapters per request (--lora, "lora", /lora-adapters) and a clean exit on
# SIGTERM. SKIPs with the reason when node, the package or the
# data are missing.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
SERVER=${PHI_SERVER:-$(dirname "$PHI")/phi-server}
TMP=${PHI_TMP:-build/tmp}/server
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"
. tests/shell_lib.inc
skip() { echo "SKIP $1: $2"; }

if [ -n "${PHI_EXEC:-}" ]; then skip server "cross build under qemu ($PHI_EXEC)"; exit 0; fi
if [ ! -x "$SERVER" ]; then skip server "no $SERVER"; exit 0; fi
if ! command -v node > /dev/null; then skip server "node is not installed (apt-get install nodejs npm)"; exit 0; fi
if [ ! -f tests/server/node_modules/openai/package.json ]; then
    skip server "the openai npm package is missing (cd tests/server && npm install)"; exit 0
fi
if [ ! -d "$DATA/phi3-trained-tiny" ]; then skip server "no $DATA/phi3-trained-tiny"; exit 0; fi
if ! $QUANT -q q8 "$DATA/phi3-trained-tiny" "$TMP/tiny.phi" 2> "$TMP/err"; then
    fail server_model "$(cat "$TMP/err")"; exit 1
fi
M="$TMP/tiny.phi"

# start_server LOG ARGS...: starts phi-server on a free port (--port 0), sets PID and PORT
start_server() {
    log=$1
    shift
    "$SERVER" -m "$M" --port 0 -t 2 "$@" > "$log" 2>&1 &
    PID=$!
    PORT=
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2> /dev/null || break
        sleep 0.1
    done
    return 1
}

# stop_server NAME: SIGTERM, a clean exit (status 0, "stopped") within 15 s
stop_server() {
    kill -TERM "$PID"
    for _ in $(seq 1 150); do kill -0 "$PID" 2> /dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2> /dev/null; then
        kill -KILL "$PID"
        fail "$1" "still running 15 s after SIGTERM"
        return
    fi
    wait "$PID"
    rc=$?
    [ $rc -eq 0 ] && grep -q "phi-server: stopped" "$log" && pass "$1" "exit 0 after SIGTERM" || fail "$1" "exit $rc: $(tail -2 "$log")"
}

# --- expected texts from the CLI (an independent path: its own loop and prompt evaluation) ---
WANT_CHAT=$($PHI -m "$M" --chat --system "Be brief." -p "Who is the LORD?" -n 12 --temp 0 2> /dev/null)
# prompt tokens: the rendered conversation (Phi-3's template; this tokenizer adds no BOS)
rendered=$(printf '<|system|>\nBe brief.<|end|>\n<|user|>\nWho is the LORD?<|end|>\n<|assistant|>\n')
WANT_CHAT_PROMPT_TOKENS=$(printf '%s\n' "$rendered" | $PHI -m "$M" --tokenize 2> /dev/null | tr ',' '\n' | grep -c .)
WANT_COMPL=$($PHI -m "$M" -p "And God said" -n 10 --temp 0 --ignore-eos 2> /dev/null)
COMPL_IDS=$($PHI -m "$M" --tokenize -p "And God said" 2> /dev/null) # phi -p adds BOS as the tokenizer says: not for Phi-3
two=$(printf 'Who is the LORD?\nAnd Moses?\n' | $PHI -m "$M" -i -n 8 --temp 0 2> /dev/null)
WANT_TURN1=$(printf '%s\n' "$two" | sed -n 1p)
WANT_TURN2=$(printf '%s\n' "$two" | sed -n 2p)
export WANT_CHAT WANT_CHAT_PROMPT_TOKENS WANT_COMPL COMPL_IDS WANT_TURN1 WANT_TURN2

if start_server "$TMP/main.log" -np 4 -c 2048; then
    pass server_starts "port $PORT"
    PHI_BASE="http://127.0.0.1:$PORT/v1" PHI_MODEL_ID=tiny.phi node tests/server/client.mjs main
    # the aborted stream freed its slot at once (logged as 499, "client closed request")
    grep -q " 499 " "$TMP/main.log" && pass abort_logged "$(grep ' 499 ' "$TMP/main.log" | head -1)" \
        || fail abort_logged "no 499 line in the log"
    lines=$(grep -c "^phi-server: POST\|^phi-server: GET" "$TMP/main.log")
    [ "$lines" -ge 20 ] && pass request_log_lines "$lines lines, e.g. $(grep '^phi-server: POST' "$TMP/main.log" | head -1)" \
        || fail request_log_lines "$lines"
    stop_server server_sigterm
else
    fail server_starts "$(cat "$TMP/main.log")"
fi

# --lookup: prompt-lookup drafts ride in the slots' decode step; the texts stay the CLI's plain
# greedy ones, and the log says how many drafts were kept
LOOKUP_PROMPT="$passage

Again: And God said, Let there"
WANT_LOOKUP=$($PHI -m "$M" -p "$LOOKUP_PROMPT" -n 60 --temp 0 --ignore-eos 2> /dev/null)
WANT_LOOKUP2=$($PHI -m "$M" -p "Wisdom is" -n 60 --temp 0 --ignore-eos 2> /dev/null)
export LOOKUP_PROMPT WANT_LOOKUP WANT_LOOKUP2
if start_server "$TMP/lookup.log" -np 4 --lookup; then
    PHI_BASE="http://127.0.0.1:$PORT/v1" node tests/server/client.mjs lookup
    kept=$(sed -n 's/.*| lookup \([0-9]*\) of \([0-9]*\) drafts kept.*/\1 \2/p' "$TMP/lookup.log" |
        awk '{ a += $1; d += $2 } END { print a + 0, d + 0 }')
    [ "${kept%% *}" -gt 0 ] && pass lookup_drafts_kept "${kept%% *} of ${kept#* } drafts kept over the requests" ||
        fail lookup_drafts_kept "$kept: $(grep 'POST' "$TMP/lookup.log" | head -3)"
    stop_server server_sigterm_lookup
else
    fail server_starts_lookup "$(cat "$TMP/lookup.log")"
fi
expect_error server_draft_max_range "$SERVER" -m "$M" --draft-max 8

if start_server "$TMP/auth.log" --api-key sekret -np 1; then
    PHI_BASE="http://127.0.0.1:$PORT/v1" node tests/server/client.mjs auth
    stop_server server_sigterm_auth
else
    fail server_starts_auth "$(cat "$TMP/auth.log")"
fi

if start_server "$TMP/busy.log" -np 1 --queue 1; then
    PHI_BASE="http://127.0.0.1:$PORT/v1" node tests/server/client.mjs busy
    stop_server server_sigterm_busy
else
    fail server_starts_busy "$(cat "$TMP/busy.log")"
fi

# LoRA: the adapter of ../shared/data/phi3-lora preloaded; the expected texts are the CLI's (an
# independent path: the model's own adapter set, one sequence) for the same messages.
ADAPTER=$DATA/phi3-lora/adapter-r8
if [ -d "$ADAPTER" ]; then
    WANT_LORA=$($PHI -m "$M" --lora "$ADAPTER" --chat --system "Be brief." -p "Who is the LORD?" -n 12 --temp 0 2> /dev/null)
    WANT_LORA05=$($PHI -m "$M" --lora-scaled "$ADAPTER" 0.5 --chat --system "Be brief." -p "Who is the LORD?" -n 12 --temp 0 2> /dev/null)
    export WANT_LORA WANT_LORA05 ADAPTER
    if start_server "$TMP/lora.log" -np 4 --lora "$ADAPTER"; then
        PHI_BASE="http://127.0.0.1:$PORT/v1" node tests/server/client.mjs lora
        stop_server server_sigterm_lora
    else
        fail server_starts_lora "$(cat "$TMP/lora.log")"
    fi
    if start_server "$TMP/lora-init.log" -np 1 --lora-scaled "$ADAPTER" 2 --lora-init-without-apply; then
        PHI_BASE="http://127.0.0.1:$PORT/v1" node tests/server/client.mjs lora-init
        stop_server server_sigterm_lora_init
    else
        fail server_starts_lora_init "$(cat "$TMP/lora-init.log")"
    fi
    expect_error server_lora_missing "$SERVER" -m "$M" --lora "$TMP/none"
    expect_error server_lora_scaled_no_scale "$SERVER" -m "$M" --lora-scaled "$ADAPTER"
    expect_error server_lora_scaled_bad_scale "$SERVER" -m "$M" --lora-scaled "$ADAPTER" x1
    $QUANT --random tiny -q f32 "$TMP/random-tiny.phi" 2> /dev/null
    expect_error server_lora_other_model "$SERVER" -m "$TMP/random-tiny.phi" --lora "$ADAPTER"
else
    skip server_lora "no $ADAPTER"
fi

# flags: one clear line and a non-zero exit
expect_error server_no_model "$SERVER"
expect_error server_bad_port "$SERVER" -m "$M" --port 70000
expect_error server_bad_flag "$SERVER" -m "$M" --frobnicate
expect_error server_missing_file "$SERVER" -m "$TMP/none.phi"
expect_error server_ctx_too_small "$SERVER" -m "$M" -c 16 -np 4
"$SERVER" --help | grep -q -- "--parallel" && pass server_help || fail server_help
