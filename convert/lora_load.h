/* Reading LoRA adapters as fine-tuning tools save them, into model/lora.h adapters.
 *
 * PEFT folder: adapter_config.json + adapter_model.safetensors (F32, F16 or BF16), keys
 * base_model.model.model.layers.N.<module>.lora_A.weight [r][in] and .lora_B.weight [out][r],
 * modules self_attn.qkv_proj, self_attn.o_proj, mlp.gate_up_proj, mlp.down_proj (Phi-3's fused
 * names) or self_attn.q_proj / k_proj / v_proj and mlp.gate_proj / up_proj (unfused Llama-style
 * names, mapped onto the row blocks of the fused matrices). The config is checked as PEFT would
 * apply it (docs/FORMAT.md, "LoRA adapters"): peft_type LORA, r, lora_alpha, use_rslora,
 * target_modules (names, full module paths, "all-linear" or a regular expression),
 * exclude_modules, layers_to_transform; use_dora, bias other than "none", modules_to_save,
 * rank_pattern / alpha_pattern and the other options that change what is computed are refused. */
#ifndef PHI_LORA_LOAD_H
#define PHI_LORA_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "convert/safetensors.h"
#include "model/format.h"
#include "model/lora.h"

/* An adapter for a model with hyperparameters hp, from a PEFT folder, or a GGUF adapter file
 * (lora_load_gguf). NULL with one line. */
LoraAdapter *lora_load(const char *path, const PhiHParams *hp, char *err, size_t errlen);

/* GGUF LoRA adapters as llama.cpp's convert_lora_to_gguf.py writes them (convert/lora_gguf.c):
 * general.type "adapter", adapter.lora.alpha, tensors blk.N.<name>.weight.lora_a / .lora_b with
 * Phi-3's llama.cpp names (attn_qkv, attn_output, ffn_up, ffn_down; attn_q/k/v, ffn_gate). */
LoraAdapter *lora_load_gguf(const char *path, const PhiHParams *hp, char *err, size_t errlen);
LoraAdapter *lora_from_gguf(const char *name, const uint8_t *buf, uint64_t size, const PhiHParams *hp,
                            char *err, size_t errlen);

/* The same from a config text and an open safetensors file (the fuzz target's entry). */
LoraAdapter *lora_from_peft(const char *name, const char *config, size_t config_len, const StFile *st,
                            const PhiHParams *hp, char *err, size_t errlen);

#endif
