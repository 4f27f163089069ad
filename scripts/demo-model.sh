#!/bin/sh
# demo-model.sh [OUT]: regenerates the bundled demo model (default OUT: models/phi3-trained-tiny-q4.phi)
# from the shared folder ../shared/data/phi3-trained-tiny ($PHI_DATA overrides ../shared/data) with
# `quant -q q4` ($QUANT, default ./quant: run `make` first). Run it when the file format's version
# changes (docs/FORMAT.md), then write the sha256 it prints into models/README.md; tests/demo.sh
# checks that the bundled file carries that sha256 and that this script reproduces it byte for byte
# (quant writes the same bytes for the same input: its q4 scale search is plain C, no thread or ISA
# dependence; PHI_ISA=scalar, avx2 and avx512vnni gave the same file).
# The inputs are checked first against the sha256 sums of the shared folder's PROVENANCE.md, so a
# changed input is one clear line, not a silently different model.
set -u
DATA=${PHI_DATA:-../shared/data}
SRC=$DATA/phi3-trained-tiny
OUT=${1:-models/phi3-trained-tiny-q4.phi}
QUANT=${QUANT:-./quant}

sha256() {
    if command -v sha256sum > /dev/null; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum > /dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
    else openssl dgst -sha256 -r "$1" | cut -d' ' -f1; fi
}

if [ ! -d "$SRC" ]; then
    echo "demo-model: $SRC is absent (the project's shared data folder; models/README.md)" >&2
    exit 1
fi
# file and sha256, as ../shared/data/phi3-trained-tiny/PROVENANCE.md lists them
while read -r f want; do
    got=$(sha256 "$SRC/$f")
    if [ "$got" != "$want" ]; then
        echo "demo-model: $SRC/$f has sha256 $got, not $want (PROVENANCE.md): another model" >&2
        exit 1
    fi
done <<EOF
model.safetensors 6905a55d9b5c5c594da42c14fbb8c1e5439c4acbe6e13afabe7a731540dbeed9
config.json 215574eb18abdf97cb0e496726c93e5ec21a443b130d3e4992990d7fb4f93a49
generation_config.json 4d0da21428eba996d231c2ef87af6720021a7a301581917e36dd59a579bd395c
tokenizer.json 9e2ae3d66819f163cdcfedba5078f3a3af8118c2712491ed60912f77886bda6f
tokenizer_config.json e7571cb644e0bbba12e73a1a0e11b9897fbf62ed0fe183d5c75d47eb86fa24e9
EOF
$QUANT -q q4 --no-progress "$SRC" "$OUT" || exit 1
echo "$(sha256 "$OUT")  $(basename "$OUT")  ($(wc -c < "$OUT" | tr -d ' ') bytes)"
