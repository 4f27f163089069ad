#!/bin/sh
# phi-server's KV cache types (llama-server's -ctk/-ctv): the slots get the named types (the start
# log says which, with the memory per slot), a completion runs on them, and bad values are refused
# in one line. Needs curl for the request (skipped without it); no node.
PHI=${PHI:-./phi}
SERVER=${PHI_SERVER:-$(dirname "$PHI")/phi-server}
TMP=${PHI_TMP:-build/tmp}/server_kv
rm -rf "$TMP"
mkdir -p "$TMP"
. tests/shell_lib.inc
if [ -n "${PHI_EXEC:-}" ]; then echo "SKIP server_kv: cross build under qemu ($PHI_EXEC)"; exit 0; fi
if [ ! -x "$SERVER" ]; then echo "SKIP server_kv: no $SERVER"; exit 0; fi
M=models/phi3-trained-tiny-q4.phi

expect_error server_cache_type_bad "$SERVER" -m "$M" -ctk q4_0
expect_error server_cache_type_missing "$SERVER" -m "$M" --cache-type-v
"$SERVER" --help | grep -q -- "-ctv, --cache-type-v" && pass server_cache_type_help || fail server_cache_type_help

log="$TMP/log"
"$SERVER" -m "$M" --port 0 -t 2 -np 2 -c 512 --cache-type-k q8_0 -ctv q8_0 > "$log" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$log")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2> /dev/null || break
    sleep 0.1
done
# 4 layers x 8 KV heads x 32 values x 256 positions per slot, keys and values: 34 bytes per 32
if grep -q "KV cache: keys q8_0, values q8_0, 0.5 MiB per slot" "$log"; then pass server_cache_type_slots "$(grep 'KV cache' "$log")"
else fail server_cache_type_slots "$(cat "$log")"; fi
if [ -n "$PORT" ] && command -v curl > /dev/null; then
    curl -s -m 30 "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
        -d '{"prompt":"And God said","max_tokens":8,"temperature":0}' > "$TMP/resp"
    grep -q '"text"' "$TMP/resp" && grep -q '"completion_tokens":8' "$TMP/resp" &&
        pass server_cache_type_completion "$(head -c 200 "$TMP/resp")" || fail server_cache_type_completion "$(cat "$TMP/resp")"
else
    echo "SKIP server_cache_type_completion: no server port or no curl"
fi
kill -TERM "$PID" 2> /dev/null
wait "$PID" 2> /dev/null
rm -rf "$TMP"
