#!/bin/sh
# Seeds for fuzz/fuzz_lora.c from the adapter folders tests/test_lora.c writes (build/tmp/lora_*):
# [u16 LE config length][adapter_config.json][adapter_model.safetensors] per folder, and a few
# target_modules regular expressions (first byte 0xff, NUL, a module name).
out=${1:-build-fuzz/corpus-lora-seed}
mkdir -p "$out"
for d in ${PHI_TMP:-build/tmp}/lora_*/; do
    [ -f "$d/adapter_config.json" ] && [ -f "$d/adapter_model.safetensors" ] || continue
    n=$(wc -c < "$d/adapter_config.json")
    f="$out/$(basename "$d")"
    printf "\\$(printf %o $((n % 256)))\\$(printf %o $((n / 256)))" > "$f"
    cat "$d/adapter_config.json" "$d/adapter_model.safetensors" >> "$f"
done
printf '\377.*\\.(qkv_proj|o_proj)\000model.layers.1.self_attn.qkv_proj' > "$out/re1"
printf '\377model\\.layers\\.\\d{1,2}\\.mlp\\.[a-z_]+\000model.layers.12.mlp.down_proj' > "$out/re2"
for g in ${PHI_TMP:-build/tmp}/lora_adapter*.gguf; do
    [ -f "$g" ] || continue
    printf '\376' > "$out/$(basename "$g")"
    cat "$g" >> "$out/$(basename "$g")"
done
