#!/bin/sh
# phi -i driven through a pipe: commands (/help, /clear, /exit, an unknown one), a line of invalid
# UTF-8 and an over-long line are refused with a message while the chat goes on, and a context
# that fills drops the oldest messages with a notice instead of ending the chat.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/chat_pipe
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

$QUANT --random tiny -q q8 "$TMP/tiny.phi" 2> /dev/null || fail chat_model "quant --random failed"
M="$TMP/tiny.phi"

printf 'hi\n/help\n/bogus\n\377\376 bad\nhello\n/clear\nagain\n/exit\nnever\n' > "$TMP/in"
$PHI -m "$M" -i -n 3 --temp 0 -c 256 < "$TMP/in" > "$TMP/out" 2> "$TMP/err"
rc=$?
[ $rc -eq 0 ] && pass chat_pipe_exit_status || fail chat_pipe_exit_status "exit $rc: $(cat "$TMP/err")"
grep -q '^  /clear ' "$TMP/err" && pass chat_help_lists_commands || fail chat_help_lists_commands "$(cat "$TMP/err")"
grep -q "unknown command '/bogus'" "$TMP/err" && pass chat_unknown_command || fail chat_unknown_command "$(cat "$TMP/err")"
grep -q 'UTF-8.*message not sent\|message not sent' "$TMP/err" && pass chat_bad_utf8_refused \
    "$(grep 'not sent' "$TMP/err")" || fail chat_bad_utf8_refused "$(cat "$TMP/err")"
grep -q 'conversation cleared' "$TMP/err" && pass chat_clear || fail chat_clear "$(cat "$TMP/err")"
# one "> " prompt per line read up to /exit (8); "never" after it is not read
n=$(tr -cd '>' < "$TMP/err" | wc -c)
[ "$n" -eq 8 ] && pass chat_exit_stops_reading "$n prompts shown" || fail chat_exit_stops_reading "$n prompts shown (want 8)"

# an over-long line (70000 bytes) is refused and the next one answered
{ head -c 70000 /dev/zero | tr '\0' a; printf '\nhello\n'; } > "$TMP/long"
$PHI -m "$M" -i -n 3 --temp 0 -c 256 < "$TMP/long" > "$TMP/out" 2> "$TMP/err"
if [ $? -eq 0 ] && grep -q 'longer than 65536 bytes' "$TMP/err" && [ -s "$TMP/out" ]; then
    pass chat_long_line_refused "$(grep longer "$TMP/err")"
else
    fail chat_long_line_refused "$(cat "$TMP/err")"
fi

# a 64-token context and ten turns: the oldest messages are dropped and every turn is answered
for i in 1 2 3 4 5 6 7 8 9 10; do echo "tell me a story about the sea and the ships $i"; done > "$TMP/many"
$PHI -m "$M" -i -n 8 --temp 0 --ignore-eos -c 64 < "$TMP/many" > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ $rc -eq 0 ] && grep -q 'context full: dropped the' "$TMP/err"; then
    pass chat_context_drops_oldest "$(grep -c dropped "$TMP/err") notices"
else
    fail chat_context_drops_oldest "exit $rc: $(tail -3 "$TMP/err")"
fi
# Ctrl-C at the prompt: the first says how to leave and the chat goes on (the next line is
# answered), a second one in a row ends it with status 0. Driven through a FIFO with kill -INT.
if command -v mkfifo > /dev/null; then
    rm -f "$TMP/fifo"
    mkfifo "$TMP/fifo"
    $PHI -m "$M" -i -n 3 --temp 0 -c 256 < "$TMP/fifo" > "$TMP/out" 2> "$TMP/err" &
    pid=$!
    exec 3> "$TMP/fifo"
    echo hello >&3
    sleep 1; kill -INT $pid; sleep 0.5
    echo again >&3
    sleep 1; kill -INT $pid; sleep 0.3; kill -INT $pid
    wait $pid
    rc=$?
    exec 3>&-
    n=$(grep -c 'Ctrl-C again to exit' "$TMP/err")
    # a notice after hello's reply, and one after again's: the line between resets the count
    if [ $rc -eq 0 ] && [ "$n" -eq 2 ]; then
        pass chat_ctrl_c_at_prompt "exit 0 after two Ctrl-C in a row; $n notices"
    else
        fail chat_ctrl_c_at_prompt "exit $rc, $n notices: $(tr '\n' '|' < "$TMP/err")"
    fi
else
    echo "SKIP chat_ctrl_c_at_prompt: no mkfifo"
fi

# a reply that runs into the end of the context says so (review: the notice could never appear)
echo "tell me a story" | $PHI -m "$M" --chat -n -1 --temp 0 --ignore-eos -c 48 > "$TMP/out" 2> "$TMP/err"
grep -q "the context is full (48 tokens); raise -c" "$TMP/err" && pass chat_context_full_notice "$(grep "context is full" "$TMP/err")" \
    || fail chat_context_full_notice "$(cat "$TMP/err")"
# /lora is a command only in -i: piped to --chat it is the user's message
echo "/lora off" | $PHI -m "$M" --chat -n 2 --temp 0 > "$TMP/out" 2> "$TMP/err"
[ -s "$TMP/out" ] && ! grep -q "detached" "$TMP/err" && pass chat_lora_line_outside_i "answered as a message" \
    || fail chat_lora_line_outside_i "$(cat "$TMP/err")"
rm -rf "$TMP"
