/* Hugging Face Phi-3 checkpoint folder: config.json (+ generation_config.json), one
 * model.safetensors or shards listed by model.safetensors.index.json. */
#ifndef PHI_HF_H
#define PHI_HF_H

#include "model/format.h"
#include "base/json.h"
#include "convert/safetensors.h"

typedef struct {
    PhiHParams hp;
    /* LongRoPE factor lists (rope_dims/2 each) when hp.rope_scaling == PHI_ROPE_LONGROPE */
    float *short_factor, *long_factor;
    int n_factor;
    int n_files;
    StFile *files;
} HfModel;

/* Parse config.json text into hyperparameters and rope factors (no file access), validating
 * architecture ("Phi3ForCausalLM" / model_type "phi3"), ranges and consistency.
 * gen_config may be NULL (generation_config.json absent): it supplies stop ids when present. */
int hf_parse_config(const JsonValue *config, const JsonValue *gen_config, HfModel *m,
                    char *err, size_t errlen);
/* Open a model folder: config, generation config, safetensors file(s). */
int hf_open(const char *dir, HfModel *m, char *err, size_t errlen);
void hf_close(HfModel *m);
/* Find a tensor by its Hugging Face name in whichever shard holds it. */
const StTensor *hf_find(const HfModel *m, const char *name, const StFile **file);

#endif
