/* Writes a random LoRA adapter for a phi model file, as PEFT saves one (adapter_config.json +
 * adapter_model.safetensors, F32): rank R on qkv_proj, o_proj, gate_up_proj and down_proj of
 * every layer, lora_alpha = 2 R. For benchmarks (scripts/lora-bench.sh), not for tests: tests
 * write their adapters themselves (tests/test_lora.c).
 *   cc -O2 -I. -o build/lora_random scripts/lora_random.c build/libphi.a -lm -lpthread
 *   build/lora_random MODEL.phi R OUT_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "model/lora.h"
#include "model/model.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lora_random MODEL.phi R OUT_DIR\n");
        return 1;
    }
    Model m;
    char err[512];
    if (model_load(argv[1], &m, err, sizeof err)) {
        fprintf(stderr, "lora_random: %s\n", err);
        return 1;
    }
    int r = atoi(argv[2]);
    if (r < 1 || r > 4096) {
        fprintf(stderr, "lora_random: R must be in 1..4096\n");
        return 1;
    }
    mkdir(argv[3], 0755);
    const char *mods[4] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"};
    SchemaRole roles[4] = {ROLE_QKV, ROLE_O, ROLE_GATE_UP, ROLE_DOWN};
    int nl = (int)m.hp.n_layers;
    size_t hcap = (size_t)nl * 8 * 200 + 256, len = 0, off = 0;
    char *h = malloc(hcap), path[4096];
    len += (size_t)snprintf(h + len, hcap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < 4; k++)
            for (int half = 0; half < 2; half++) {
                int rows = half ? lora_role_rows(&m.hp, roles[k]) : r, cols = half ? r : lora_role_cols(&m.hp, roles[k]);
                size_t bytes = (size_t)rows * cols * 4;
                len += (size_t)snprintf(h + len, hcap - len,
                                        ",\"base_model.model.model.layers.%d.%s.lora_%c.weight\":{\"dtype\":\"F32\","
                                        "\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                        l, mods[k], half ? 'B' : 'A', rows, cols, off, off + bytes);
                off += bytes;
            }
    len += (size_t)snprintf(h + len, hcap - len, "}");
    while (len % 8) h[len++] = ' ';
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", argv[3]);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "lora_random: cannot write %s\n", path);
        return 1;
    }
    uint64_t hl = len, st = 12345;
    for (int b = 0; b < 8; b++) fputc((int)(hl >> (8 * b)) & 0xff, f);
    fwrite(h, 1, len, f);
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < 4; k++)
            for (int half = 0; half < 2; half++) {
                size_t n = (size_t)(half ? lora_role_rows(&m.hp, roles[k]) : lora_role_cols(&m.hp, roles[k])) * r;
                for (size_t i = 0; i < n; i++) {
                    float x = 0.01f * (2.0f * rng_float01(&st) - 1.0f);
                    fwrite(&x, 4, 1, f);
                }
            }
    if (fclose(f)) {
        fprintf(stderr, "lora_random: cannot write %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", argv[3]);
    f = fopen(path, "w");
    fprintf(f, "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": %d, \"target_modules\": [\"qkv_proj\", "
               "\"o_proj\", \"gate_up_proj\", \"down_proj\"], \"bias\": \"none\", \"use_dora\": false}\n", r, 2 * r);
    fclose(f);
    free(h);
    model_free(&m);
    return 0;
}
