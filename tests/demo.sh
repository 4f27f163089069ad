#!/bin/sh
# The bundled demo model (models/README.md): `make demo` prints English text and phi's stats line;
# the file's sha256 is the one its provenance records; scripts/demo-model.sh rebuilds it byte for
# byte from ../shared (skipped without it); phi without -m takes it from models/ beside the binary
# and, installed, from $PREFIX/share/phi, naming it on stderr.
PHI=${PHI:-./phi}
QUANT=${QUANT:-./quant}
BUILD=${BUILD:-build}
TMP=${PHI_TMP:-build/tmp}/demo
DATA=${PHI_DATA:-../shared/data}
MODEL=models/phi3-trained-tiny-q4.phi
rm -rf "$TMP"
mkdir -p "$TMP"

. tests/shell_lib.inc

sha256() {
    if command -v sha256sum > /dev/null; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum > /dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
    else openssl dgst -sha256 -r "$1" | cut -d' ' -f1; fi
}

# --- make demo (with the phi under test): exit 0, the prompt continued in words, the stats line ---
if command -v make > /dev/null && [ -f Makefile ]; then
    make -s --no-print-directory demo DEMO_PHI="$PHI" BUILD="$BUILD" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    # the text: the prompt ("And it came to pass") and at least 20 more words of letters
    words=$(tr -cs 'A-Za-z' '\n' < "$TMP/out" | grep -c '[a-z]')
    if [ $rc -eq 0 ] && grep -q '^And it came to pass' "$TMP/out" && [ "$words" -ge 25 ] &&
        grep -q '^phi: .* | prompt [0-9]* tok, .* | gen [0-9]* tok, [0-9.]* tok/s' "$TMP/err"; then
        pass make_demo "$words words: $(grep '^And it came' "$TMP/out" | head -c 120)... | $(tail -1 "$TMP/err")"
    else
        fail make_demo "exit $rc, $words words: $(head -c 300 "$TMP/out") | $(head -c 300 "$TMP/err")"
    fi
else
    echo "SKIP make_demo: make or the Makefile is absent"
fi

# --- the bundled file is the one models/README.md records ---
want=$(grep "  phi3-trained-tiny-q4.phi\$" models/README.md | cut -d' ' -f1)
got=$(sha256 "$MODEL")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    pass demo_model_sha256 "$got ($(wc -c < "$MODEL" | tr -d ' ') bytes)"
else
    fail demo_model_sha256 "$MODEL has sha256 '$got', models/README.md records '$want'"
fi

# --- scripts/demo-model.sh reproduces it from the shared folder, byte for byte ---
if [ -d "$DATA/phi3-trained-tiny" ]; then
    if QUANT=$QUANT PHI_DATA=$DATA sh scripts/demo-model.sh "$TMP/regen.phi" > "$TMP/regen.out" 2>&1 &&
        cmp -s "$TMP/regen.phi" "$MODEL"; then
        pass demo_model_regenerates "$(tail -1 "$TMP/regen.out")"
    else
        fail demo_model_regenerates "$(tail -3 "$TMP/regen.out" | tr '\n' ' ') $(cmp "$TMP/regen.phi" "$MODEL" 2>&1)"
    fi
    rm -f "$TMP/regen.phi"
else
    echo "SKIP demo_model_regenerates: $DATA/phi3-trained-tiny is absent"
fi

# --- phi without -m: the model beside the binary, named on stderr; else one line as before ---
# (a cross or sanitizer build lives in build-*/, which has no models/ beside it)
exe=$PHI
case "$PHI" in *-qemu) exe=${PHI%-qemu} ;; esac
$PHI -p "And God said" -n 8 --temp 0 > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ -f "$(dirname "$exe")/$MODEL" ]; then
    if [ $rc -eq 0 ] && grep -q "^phi: no -m given: using the bundled demo model /.*/$MODEL\$" "$TMP/err" &&
        grep -q '[a-z]' "$TMP/out"; then
        pass demo_default_model "$(head -1 "$TMP/err") -> $(head -c 80 "$TMP/out")"
    else
        fail demo_default_model "exit $rc: $(cat "$TMP/err")"
    fi
else
    lines=$(wc -l < "$TMP/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q 'no model given (-m FILE), and no bundled demo model' "$TMP/err"; then
        pass demo_default_model_absent "$(cat "$TMP/err")"
    else
        fail demo_default_model_absent "exit $rc, $lines lines: $(cat "$TMP/err")"
    fi
fi
# no arguments at all: still the plain one-line error, the demo model is not a mode of its own
expect_error demo_no_args_no_model $PHI

# --- make install: the installed phi finds the model in $PREFIX/share/phi; uninstall removes it ---
if [ "$PHI" = ./phi ] && [ -f Makefile ] && command -v make > /dev/null; then
    D="$(pwd)/$TMP/destdir"
    make -s --no-print-directory install DESTDIR="$D" PREFIX=/opt/phi > "$TMP/inst.log" 2>&1
    "$D/opt/phi/bin/phi" -p "And God said" -n 4 --temp 0 > "$TMP/out" 2> "$TMP/err"
    rc=$?
    if [ $rc -eq 0 ] && cmp -s "$D/opt/phi/share/phi/phi3-trained-tiny-q4.phi" "$MODEL" &&
        grep -q "^phi: no -m given: using the bundled demo model $D/opt/phi/share/phi/phi3-trained-tiny-q4.phi\$" "$TMP/err"
    then
        pass demo_installed "$(head -1 "$TMP/err")"
    else
        fail demo_installed "exit $rc: $(cat "$TMP/err") $(tail -3 "$TMP/inst.log")"
    fi
    make -s --no-print-directory uninstall DESTDIR="$D" PREFIX=/opt/phi > /dev/null 2>&1
    if [ ! -e "$D/opt/phi/share/phi" ]; then pass demo_uninstalled; else
        fail demo_uninstalled "left: $(find "$D/opt/phi/share/phi")"; fi
else
    echo "SKIP demo_installed: not the plain build (PHI=$PHI)"
fi
rm -rf "$TMP"
