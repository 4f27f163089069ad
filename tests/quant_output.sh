#!/bin/sh
# quant touches no file but the OUTPUT it was given: a device, FIFO, symbolic link, folder or
# input file named as OUTPUT is refused before any work and left as it was; an existing
# OUTPUT.tmp is not destroyed; a signal or a write error leaves no partial file behind.
# Devices, FIFOs and links are made in this test's own temporary folder only.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
TMP=${PHI_TMP:-build/tmp}/quant_output
DATA=${PHI_DATA:-../shared/data}
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

# id PATH: what must not change about PATH: file type, inode, device numbers, link target, bytes
id() {
    if [ -L "$1" ]; then echo "link $(readlink "$1") $(stat -c %i "$1")"; return; fi
    sum=
    if [ -f "$1" ]; then sum=$(cksum < "$1"); fi
    echo "$(stat -c '%F %i %t:%T %s' "$1" 2> /dev/null || echo absent) $sum"
}
# untouched NAME PATH CMD...: CMD fails with one line and PATH is the same before and after
untouched() {
    name=$1 path=$2
    shift 2
    before=$(id "$path")
    expect_error "$name" "$@"
    after=$(id "$path")
    if [ "$before" = "$after" ]; then pass "${name}_untouched" "$after"
    else fail "${name}_untouched" "before: $before | after: $after"; fi
}
# clean NAME PREFIX: no file named PREFIX.tmp.* (the writer's temporaries) is left
clean() {
    left=$(ls -d "$2".tmp.* 2> /dev/null)
    if [ -z "$left" ]; then pass "$1"; else fail "$1" "left: $left"; fi
}

# --- special files as OUTPUT ---
if mknod "$TMP/null" c 1 3 2> /dev/null; then
    untouched quant_output_char_device "$TMP/null" $QUANT --random tiny "$TMP/null"
else
    echo "SKIP quant_output_char_device: mknod is not permitted here"
fi
mkfifo "$TMP/fifo"
untouched quant_output_fifo "$TMP/fifo" $QUANT --random tiny "$TMP/fifo"
echo "precious" > "$TMP/target"
ln -s target "$TMP/link"
untouched quant_output_symlink "$TMP/link" $QUANT --random tiny "$TMP/link"
before=$(id "$TMP/target")
[ "$before" = "$(id "$TMP/target")" ] && grep -qx precious "$TMP/target" &&
    pass quant_output_symlink_target_untouched || fail quant_output_symlink_target_untouched
ln -s nowhere "$TMP/dangling"
untouched quant_output_dangling_symlink "$TMP/dangling" $QUANT --random tiny "$TMP/dangling"
[ -e "$TMP/nowhere" ] && fail quant_output_dangling_target_not_created || pass quant_output_dangling_target_not_created
mkdir "$TMP/dir.phi"
untouched quant_output_folder "$TMP/dir.phi" $QUANT --random tiny "$TMP/dir.phi"
expect_error quant_output_empty_path $QUANT --random tiny ""
grep -q "empty" "$TMP/err" && pass quant_output_empty_path_says_so || fail quant_output_empty_path_says_so "$(cat "$TMP/err")"
expect_error quant_output_trailing_slash $QUANT --random tiny "$TMP/new/"
expect_error quant_output_missing_folder $QUANT --random tiny "$TMP/no/such/x.phi"
: > "$TMP/plain"
expect_error quant_output_folder_is_a_file $QUANT --random tiny "$TMP/plain/x.phi"
clean quant_output_special_leave_nothing "$TMP/null"
clean quant_output_special_leave_nothing_2 "$TMP/fifo"

# --- an existing OUTPUT.tmp is someone else's file ---
echo "not quant's" > "$TMP/o.phi.tmp"
if $QUANT --random tiny "$TMP/o.phi" 2> "$TMP/err" && grep -qx "not quant's" "$TMP/o.phi.tmp" &&
    $PHI -m "$TMP/o.phi" --ids 1,2 -n 1 > /dev/null 2>&1; then
    pass quant_output_keeps_existing_tmp
else
    fail quant_output_keeps_existing_tmp "$(cat "$TMP/err")"
fi
clean quant_output_no_temporary_left "$TMP/o.phi"

# --- an existing regular OUTPUT is replaced by a rename: other names of it keep the old bytes ---
echo "old model" > "$TMP/r.phi"
ln "$TMP/r.phi" "$TMP/r-other-name"
if $QUANT --random tiny "$TMP/r.phi" 2> "$TMP/err" && grep -qx "old model" "$TMP/r-other-name" &&
    [ "$(stat -c %i "$TMP/r.phi")" != "$(stat -c %i "$TMP/r-other-name")" ]; then
    pass quant_output_replaces_regular_file
else
    fail quant_output_replaces_regular_file "$(cat "$TMP/err")"
fi

# --- OUTPUT is an input file ---
HF="$DATA/phi3-tiny-ref/mha"
if [ -d "$HF" ]; then
    # m: a copy of the model folder (regular files); m3: Hugging Face cache style, the
    # safetensors a link to a blob of our own
    mkdir -p "$TMP/m" "$TMP/m3" "$TMP/blobs"
    for f in "$HF"/*; do [ -f "$f" ] && cp "$f" "$TMP/m/"; done
    chmod u+w "$TMP"/m/*
    cp "$TMP/m/model.safetensors" "$TMP/blobs/st"
    for f in "$TMP"/m/*; do ln -s "../m/$(basename "$f")" "$TMP/m3/"; done
    rm "$TMP/m3/model.safetensors"
    ln -s ../blobs/st "$TMP/m3/model.safetensors"
    untouched quant_output_is_input_safetensors "$TMP/m/model.safetensors" \
        $QUANT -q q8 "$TMP/m" "$TMP/m/model.safetensors"
    untouched quant_output_is_input_config "$TMP/m/config.json" $QUANT -q q8 "$TMP/m" "$TMP/m/config.json"
    untouched quant_output_is_input_tokenizer "$TMP/m/tokenizer.json" \
        $QUANT -q q8 "$TMP/m" "$TMP/m/tokenizer.json"
    ln "$TMP/m/model.safetensors" "$TMP/alias.phi"
    untouched quant_output_is_input_hard_link "$TMP/alias.phi" $QUANT -q q8 "$TMP/m" "$TMP/alias.phi"
    untouched quant_output_is_input_blob "$TMP/blobs/st" $QUANT -q q8 "$TMP/m3" "$TMP/blobs/st"
    untouched quant_output_is_input_through_link "$TMP/m3/model.safetensors" \
        $QUANT -q q8 "$TMP/m3" "$TMP/m3/model.safetensors"
    echo "The quick brown fox jumps over the lazy dog." > "$TMP/calib.txt"
    untouched quant_output_is_calib_text "$TMP/calib.txt" \
        $QUANT -q q4 --calib "$TMP/calib.txt" "$TMP/m" "$TMP/calib.txt"
    # --calib's temporary q8 model has a unique name, created exclusively, and is removed on
    # success and on failure; a file with the old fixed name (or any other) is not touched
    echo "someone's" > "$TMP/c.phi.calib-q8.tmp"
    before=$(id "$TMP/c.phi.calib-q8.tmp")
    if $QUANT -q q4 --calib "$TMP/calib.txt" "$TMP/m" "$TMP/c.phi" 2> "$TMP/err" &&
        [ "$before" = "$(id "$TMP/c.phi.calib-q8.tmp")" ]; then pass quant_calib_keeps_existing_tmp
    else fail quant_calib_keeps_existing_tmp "$(cat "$TMP/err")"; fi
    left=$(ls -d "$TMP"/c.phi.calib-q8.[0-9]* "$TMP"/c.phi.tmp.* 2> /dev/null)
    [ -z "$left" ] && pass quant_calib_tmp_removed || fail quant_calib_tmp_removed "left: $left"
    : > "$TMP/empty.txt"
    expect_error quant_calib_fails_cleanly $QUANT -q q4 --calib "$TMP/empty.txt" "$TMP/m" "$TMP/c2.phi"
    left=$(ls -d "$TMP"/c2.phi* 2> /dev/null)
    [ -z "$left" ] && pass quant_calib_failure_leaves_nothing || fail quant_calib_failure_leaves_nothing "left: $left"
    # a folder as OUTPUT is refused at once, not after converting the whole model
    untouched quant_output_folder_before_converting "$TMP/dir.phi" $QUANT -q q8 "$TMP/m" "$TMP/dir.phi"
    grep -q "is a folder" "$TMP/err" && pass quant_output_folder_message || fail quant_output_folder_message "$(cat "$TMP/err")"
    if $QUANT -q q8 "$TMP/m" "$TMP/m/out.phi" 2> "$TMP/err"; then pass quant_output_into_model_folder
    else fail quant_output_into_model_folder "$(cat "$TMP/err")"; fi
else
    echo "SKIP quant_output_is_input: $HF is absent"
fi

# --- signals: the temporary file goes with the process ---
# sig NAME SIGNAL [env --default-signal=SIG]: start a conversion big enough to take seconds,
# signal it once its temporary exists, and expect death by that signal and nothing left.
sig() {
    name=$1 signal=$2
    shift 2
    rm -f "$TMP"/big.phi*
    "$@" $QUANT --random phi3-mini --layers 4 -q q8 --no-progress "$TMP/big.phi" 2> "$TMP/err" &
    pid=$!
    n=0
    # wait for the temporary to be sized (the writer is in the data phase), then a little more
    while [ $n -lt 400 ] && ! [ -s "$(ls -d "$TMP"/big.phi.tmp.* 2> /dev/null | head -n 1)" ]; do
        sleep 0.05
        n=$((n + 1))
    done
    sleep 0.2
    kill -"$signal" $pid 2> /dev/null
    { wait $pid; } 2> /dev/null
    rc=$?
    left=$(ls -d "$TMP"/big.phi* 2> /dev/null)
    if [ $rc -gt 128 ] && [ -z "$left" ]; then pass "$name" "exit $rc, nothing left"
    elif [ $rc -eq 0 ]; then echo "SKIP $name: the conversion ended before the signal"
    else fail "$name" "exit $rc, left: $left $(head -c 200 "$TMP/err")"; fi
    rm -f "$TMP"/big.phi*
}
sig quant_sigterm_removes_temporary TERM
if env --default-signal=INT true 2> /dev/null; then
    # a background job of a non-interactive shell starts with SIGINT ignored: reset it
    sig quant_sigint_removes_temporary INT env --default-signal=INT
else
    echo "SKIP quant_sigint_removes_temporary: env --default-signal is not available"
fi

# --- write errors: a file size limit makes writes fail (EFBIG), reported on one line ---
expect_error quant_write_error_file_too_large sh -c "ulimit -f 64; exec $QUANT --random tiny -q q8 '$TMP/fsz.phi'"
if [ -z "$(ls -d "$TMP"/fsz.phi* 2> /dev/null)" ]; then pass quant_write_error_leaves_nothing
else fail quant_write_error_leaves_nothing "$(ls "$TMP")"; fi
if [ -c /dev/full ]; then
    expect_error quant_help_to_full_disk sh -c "exec $QUANT --help > /dev/full"
fi
rm -rf "$TMP"
