/* Writing phi files: from a Hugging Face Phi-3 folder, or with random weights at a named shape. */
#ifndef PHI_CONVERT_H
#define PHI_CONVERT_H

#include <stddef.h>
#include <stdint.h>

/* Mixes: CONVERT_MIX_Q4_K_M, llama.cpp's Q4_K_M (convert.c: plan_type), with type q4_k. */
enum { CONVERT_MIX_NONE = 0, CONVERT_MIX_Q4_K_M = 1 };

typedef struct {
    int type;          /* TensorType of the 2-D weight matrices */
    int progress;      /* draw a progress bar on stderr */
    uint64_t seed;     /* random models */
    int n_layers;      /* random models: override the shape's layer count when > 0 */
    int mix;           /* CONVERT_MIX_*: per-matrix types instead of `type` for all */
    /* Optional importance of each input column of a matrix for the Q4 scale search (quant
     * --calib, convert/calib.h): cols weights for the named tensor, or NULL for none. */
    const float *(*importance)(void *ctx, const char *name, uint64_t cols);
    void *importance_ctx;
    /* LoRA adapters merged into the weights before quantizing (quant --lora, --lora-scaled):
     * W + S c B A in F32 (convert/lora_load.h reads them, model/lora.h merges). */
#define CONVERT_MAX_LORA 16
    const char *lora_path[CONVERT_MAX_LORA];
    float lora_scale[CONVERT_MAX_LORA];
    int n_lora;
    int n_threads; /* threads of the conversion (quant -t); <= 0: the physical cores */
} ConvertOptions;

#define CONVERT_MAX_THREADS 256

int convert_hf(const char *dir, const char *out_path, const ConvertOptions *opt, char *err,
               size_t errlen);
/* Shapes: phi3-mini, phi3-medium, phi3.5-mini, phi4-mini, tiny. */
int convert_random(const char *shape, const char *out_path, const ConvertOptions *opt, char *err,
                   size_t errlen);
const char *convert_shape_names(void);

#endif
