/* PEFT LoRA adapter folders -> LoraAdapter (convert/lora_load.h). */
#include "convert/lora_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/errmsg.h"
#include "base/fileio.h"
#include "base/json.h"
#include "base/regex.h"

/* The modules an adapter may name, under model.layers.N. (Hugging Face's Phi3ForCausalLM names,
 * and the unfused Llama-style ones), and the row block of phi's matrix each one covers. */
enum { BLK_ALL, BLK_Q, BLK_K, BLK_V, BLK_GATE, BLK_UP };
static const struct {
    const char *path; /* below model.layers.N. */
    SchemaRole role;
    int block;
} modules[] = {
    {"self_attn.qkv_proj", ROLE_QKV, BLK_ALL},    {"self_attn.o_proj", ROLE_O, BLK_ALL},
    {"mlp.gate_up_proj", ROLE_GATE_UP, BLK_ALL},  {"mlp.down_proj", ROLE_DOWN, BLK_ALL},
    {"self_attn.q_proj", ROLE_QKV, BLK_Q},        {"self_attn.k_proj", ROLE_QKV, BLK_K},
    {"self_attn.v_proj", ROLE_QKV, BLK_V},        {"mlp.gate_proj", ROLE_GATE_UP, BLK_GATE},
    {"mlp.up_proj", ROLE_GATE_UP, BLK_UP},
};
#define N_MODULES ((int)(sizeof modules / sizeof modules[0]))
#define PREFIX "base_model.model."

static void block_rows(const PhiHParams *hp, int m, int *row0, int *rows) {
    int q = (int)(hp->n_heads * hp->head_dim), kv = (int)(hp->n_kv_heads * hp->head_dim);
    int h = (int)hp->hidden_dim;
    switch (modules[m].block) {
    case BLK_Q: *row0 = 0, *rows = q; break;
    case BLK_K: *row0 = q, *rows = kv; break;
    case BLK_V: *row0 = q + kv, *rows = kv; break;
    case BLK_GATE: *row0 = 0, *rows = h; break;
    case BLK_UP: *row0 = h, *rows = h; break;
    default: *row0 = 0, *rows = lora_role_rows(hp, modules[m].role); break;
    }
}

/* ---- which modules the config targets (PEFT's check_target_module_exists) ---- */

typedef struct {
    const JsonValue *list; /* a list of names (suffix match on '.'), or */
    Regex *re;             /* a regular expression (full match), or */
    int all_linear;        /* "all-linear": every linear layer but the LM head */
} Target;

static int target_init(Target *t, const JsonValue *v, const char *field, int required, char *err,
                       size_t errlen) {
    memset(t, 0, sizeof *t);
    if (json_type(v) == JSON_NULL) {
        if (required) return errorf(err, errlen, "adapter_config.json: %s is missing", field);
        return 0;
    }
    if (json_type(v) == JSON_STRING) {
        size_t len;
        const char *s = json_str(v, &len);
        if (len == 10 && !memcmp(s, "all-linear", 10)) {
            t->all_linear = 1;
            return 0;
        }
        char e[200];
        if (!(t->re = regex_compile(s, len, e, sizeof e)))
            return errorf(err, errlen, "adapter_config.json: %s: %s", field, e);
        return 0;
    }
    if (json_type(v) != JSON_ARRAY) return errorf(err, errlen, "adapter_config.json: %s is not a list or a string", field);
    for (size_t i = 0; i < json_count(v); i++)
        if (json_type(json_at(v, i)) != JSON_STRING)
            return errorf(err, errlen, "adapter_config.json: %s has an item that is not a string", field);
    t->list = v;
    return 0;
}

static int target_match(const Target *t, const char *name) {
    size_t n = strlen(name);
    if (t->all_linear) return 1;
    if (t->re) return regex_fullmatch(t->re, name, n);
    for (size_t i = 0; t->list && i < json_count(t->list); i++) {
        size_t len;
        const char *s = json_str(json_at(t->list, i), &len);
        if (len == n && !memcmp(s, name, n)) return 1;
        if (len < n && name[n - len - 1] == '.' && !memcmp(name + n - len, s, len)) return 1;
    }
    return 0;
}

/* ---- the config ---- */

typedef struct {
    long long r;
    double alpha;
    int rslora;
    Target target, exclude;
    unsigned char *layer_on; /* [n_layers]: layers_to_transform */
} Config;

static void config_free(Config *c) {
    regex_free(c->target.re);
    regex_free(c->exclude.re);
    free(c->layer_on);
}

/* A field that must be absent, null, false, empty or equal to ok_value (a string). */
static int refuse_if_set(const JsonValue *cfg, const char *key, const char *ok_value, const char *why,
                         char *err, size_t errlen) {
    const JsonValue *v = json_get(cfg, key);
    int set;
    switch (json_type(v)) {
    case JSON_NULL: set = 0; break;
    case JSON_BOOL: set = json_bool(v, 0); break;
    case JSON_ARRAY: case JSON_OBJECT: set = json_count(v) > 0; break;
    case JSON_STRING: {
        size_t len;
        const char *s = json_str(v, &len);
        set = !(ok_value && strlen(ok_value) == len && !memcmp(s, ok_value, len));
        break;
    }
    default: set = 1; break;
    }
    if (set) return errorf(err, errlen, "adapter_config.json: %s: %s", key, why);
    return 0;
}

static int config_parse(const JsonValue *cfg, const PhiHParams *hp, Config *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (json_type(cfg) != JSON_OBJECT) return errorf(err, errlen, "adapter_config.json is not a JSON object");
    size_t len;
    const char *pt = json_str(json_get(cfg, "peft_type"), &len);
    if (!pt || len != 4 || memcmp(pt, "LORA", 4)) {
        char b[64];
        return errorf(err, errlen, "adapter_config.json: peft_type is %s, not LORA",
                      pt ? err_printable(pt, len, b, sizeof b) : "missing");
    }
    /* Options that change what the adapter computes and that phi does not implement. */
    if (refuse_if_set(cfg, "use_dora", NULL, "DoRA adapters are not supported (merge them with PEFT first)", err, errlen) ||
        refuse_if_set(cfg, "bias", "none", "only bias \"none\" is supported (the adapter trains biases)", err, errlen) ||
        refuse_if_set(cfg, "modules_to_save", NULL, "adapters that save whole modules are not supported", err, errlen) ||
        refuse_if_set(cfg, "rank_pattern", NULL, "per-module ranks are not supported", err, errlen) ||
        refuse_if_set(cfg, "alpha_pattern", NULL, "per-module alphas are not supported", err, errlen) ||
        refuse_if_set(cfg, "lora_bias", NULL, "LoRA biases are not supported", err, errlen) ||
        refuse_if_set(cfg, "layer_replication", NULL, "layer replication is not supported", err, errlen) ||
        refuse_if_set(cfg, "trainable_token_indices", NULL, "trained token embeddings are not supported", err, errlen) ||
        refuse_if_set(cfg, "target_parameters", NULL, "LoRA on parameters is not supported", err, errlen))
        return -1;
    const JsonValue *lp = json_get(cfg, "layers_pattern");
    if (json_type(lp) == JSON_ARRAY && json_count(lp) == 1) lp = json_at(lp, 0);
    if (json_type(lp) != JSON_NULL) {
        const char *s = json_str(lp, &len);
        if (!s || len != 6 || memcmp(s, "layers", 6))
            return errorf(err, errlen, "adapter_config.json: layers_pattern: phi's layers are model.layers.N (\"layers\")");
    }

    c->r = 8; /* PEFT's defaults when the field is absent */
    c->alpha = 8;
    const JsonValue *v = json_get(cfg, "r");
    if (v && (json_int(v, &c->r) || c->r < 1 || c->r > 65536))
        return errorf(err, errlen, "adapter_config.json: r must be an integer in 1..65536");
    v = json_get(cfg, "lora_alpha");
    if (v) {
        c->alpha = json_num(v, NAN);
        if (!isfinite(c->alpha)) return errorf(err, errlen, "adapter_config.json: lora_alpha is not a number");
    }
    v = json_get(cfg, "use_rslora");
    if (v && json_type(v) != JSON_BOOL) return errorf(err, errlen, "adapter_config.json: use_rslora is not true or false");
    c->rslora = json_bool(v, 0);
    /* fan_in_fan_out describes GPT-2-style Conv1D base weights; on Linear layers (all of Phi-3's)
     * PEFT turns it off and stores A and B as for any Linear, so it changes nothing here. */
    v = json_get(cfg, "fan_in_fan_out");
    if (v && json_type(v) != JSON_BOOL && json_type(v) != JSON_NULL)
        return errorf(err, errlen, "adapter_config.json: fan_in_fan_out is not true or false");
    if (target_init(&c->target, json_get(cfg, "target_modules"), "target_modules", 1, err, errlen) ||
        target_init(&c->exclude, json_get(cfg, "exclude_modules"), "exclude_modules", 0, err, errlen))
        return -1;
    c->layer_on = malloc(hp->n_layers ? hp->n_layers : 1);
    if (!c->layer_on) return errorf(err, errlen, "out of memory");
    v = json_get(cfg, "layers_to_transform");
    memset(c->layer_on, json_type(v) == JSON_NULL, hp->n_layers);
    if (json_type(v) != JSON_NULL) {
        size_t n = json_type(v) == JSON_ARRAY ? json_count(v) : 1;
        for (size_t i = 0; i < n; i++) {
            long long l;
            if (json_int(json_type(v) == JSON_ARRAY ? json_at(v, i) : v, &l) || l < 0)
                return errorf(err, errlen, "adapter_config.json: layers_to_transform must be a layer index or a list of them");
            if (l >= hp->n_layers)
                return errorf(err, errlen, "adapter_config.json: layers_to_transform names layer %lld, but the model has %u layers",
                              l, hp->n_layers);
            c->layer_on[l] = 1;
        }
    }
    return 0;
}

static int config_targets(const Config *c, int layer, int m) {
    char name[128];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, modules[m].path);
    if (!c->layer_on[layer] || !target_match(&c->target, name)) return 0;
    if ((c->exclude.list || c->exclude.re || c->exclude.all_linear) && target_match(&c->exclude, name)) return 0;
    return 1;
}

/* ---- the tensors ---- */

/* Parses a key: 0 with layer, module and half (0 = A, 1 = B), or -1 with one line. */
static int parse_key(const char *key, const PhiHParams *hp, int *layer, int *m, int *half, char *err,
                     size_t errlen) {
    char shown[160];
    err_printable(key, strlen(key), shown, sizeof shown);
    size_t n = strlen(key);
    const char *sfx[2] = {".lora_A.weight", ".lora_B.weight"};
    *half = -1;
    for (int h = 0; h < 2; h++)
        if (n > strlen(sfx[h]) && !strcmp(key + n - strlen(sfx[h]), sfx[h])) *half = h;
    if (*half < 0) {
        if (strstr(key, "lora_magnitude_vector"))
            return errorf(err, errlen, "tensor %s: DoRA adapters are not supported", shown);
        if (strstr(key, "lora_embedding_"))
            return errorf(err, errlen, "tensor %s: LoRA on the embedding is not supported", shown);
        return errorf(err, errlen, "tensor %s is not a LoRA lora_A/lora_B weight", shown);
    }
    const char *p = key;
    if (strncmp(p, PREFIX "model.layers.", strlen(PREFIX "model.layers.")))
        return errorf(err, errlen, "tensor %s: unknown module (phi adapts model.layers.N.{self_attn.qkv_proj, "
                      "self_attn.o_proj, mlp.gate_up_proj, mlp.down_proj} or the unfused q/k/v/gate/up_proj)", shown);
    p += strlen(PREFIX "model.layers.");
    long l = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) l = l * 10 + (*p++ - '0'), digits++;
    if (!digits || *p != '.') return errorf(err, errlen, "tensor %s: no layer number", shown);
    p++;
    size_t mlen = (size_t)(key + n - strlen(sfx[*half]) - p);
    *m = -1;
    for (int k = 0; k < N_MODULES; k++)
        if (strlen(modules[k].path) == mlen && !strncmp(p, modules[k].path, mlen)) *m = k;
    if (*m < 0)
        return errorf(err, errlen, "tensor %s: unknown module (phi adapts self_attn.qkv_proj, self_attn.o_proj, "
                      "mlp.gate_up_proj, mlp.down_proj and the unfused q/k/v/gate/up_proj)", shown);
    if (l >= (long)hp->n_layers)
        return errorf(err, errlen, "tensor %s: layer %ld, but the model has %u layers", shown, l, hp->n_layers);
    *layer = (int)l;
    return 0;
}

static float *read_tensor(const StFile *st, const StTensor *t, const char *name, char *err, size_t errlen) {
    uint64_t n = st_numel(t);
    if (t->dtype == ST_OTHER) {
        errorf(err, errlen, "%s: dtype %s (supported: F32, F16, BF16)", name, t->dtype_name);
        return NULL;
    }
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    if (!x) {
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    if (st_read_f32(st, t, 0, n, x, err, errlen)) {
        free(x);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            errorf(err, errlen, "%s has a non-finite value", name);
            free(x);
            return NULL;
        }
    return x;
}

LoraAdapter *lora_from_peft(const char *name, const char *config, size_t config_len, const StFile *st,
                            const PhiHParams *hp, char *err, size_t errlen) {
    char e[400];
    Config c;
    memset(&c, 0, sizeof c);
    LoraAdapter *ad = NULL;
    int nl = (int)hp->n_layers;
    const StTensor **found = calloc((size_t)(nl ? nl : 1) * N_MODULES * 2, sizeof *found);
    Json *doc = json_parse(config, config_len, e, sizeof e);
    if (!found) {
        errorf(err, errlen, "out of memory");
        goto fail;
    }
    if (!doc) {
        errorf(err, errlen, "%s: adapter_config.json: %s", name, e);
        goto fail;
    }
    if (config_parse(json_root(doc), hp, &c, e, sizeof e)) {
        errorf(err, errlen, "%s: %s", name, e);
        goto fail;
    }
    /* Every tensor: a known key, once. */
    for (int i = 0; i < st->n; i++) {
        const StTensor *t = &st->tensors[i];
        int layer = 0, m = 0, half = 0;
        if (parse_key(t->name, hp, &layer, &m, &half, e, sizeof e)) {
            errorf(err, errlen, "%s: %s", name, e);
            goto fail;
        }
        found[((size_t)layer * N_MODULES + m) * 2 + half] = t; /* keys are unique (safetensors.c) */
    }
    if (!(ad = lora_adapter_new(name))) {
        errorf(err, errlen, "out of memory");
        goto fail;
    }
    for (int m = 0; m < N_MODULES; m++) {
        int present = 0;
        for (int l = 0; l < nl; l++) present |= found[((size_t)l * N_MODULES + m) * 2] || found[((size_t)l * N_MODULES + m) * 2 + 1];
        for (int l = 0; l < nl; l++) {
            const StTensor *ta = found[((size_t)l * N_MODULES + m) * 2], *tb = found[((size_t)l * N_MODULES + m) * 2 + 1];
            int targeted = config_targets(&c, l, m);
            char mod[96];
            snprintf(mod, sizeof mod, "model.layers.%d.%s", l, modules[m].path);
            if (!ta && !tb) {
                /* PEFT would have created this module (B = 0) and warned of the missing keys: a
                 * file that lacks them was cut short or belongs to another config. */
                if (present && targeted) {
                    errorf(err, errlen, "%s: target_modules names %s but the adapter has no tensors for it", name, mod);
                    goto fail;
                }
                continue;
            }
            if (!ta || !tb) {
                errorf(err, errlen, "%s: %s has lora_%s but no lora_%s", name, mod, ta ? "A" : "B", ta ? "B" : "A");
                goto fail;
            }
            if (!targeted) {
                errorf(err, errlen, "%s: the adapter has tensors for %s, which adapter_config.json does not target "
                       "(target_modules, exclude_modules, layers_to_transform)", name, mod);
                goto fail;
            }
            int row0, rows, cols = lora_role_cols(hp, modules[m].role);
            block_rows(hp, m, &row0, &rows);
            if (ta->ndim != 2 || tb->ndim != 2 || ta->shape[1] != (uint64_t)cols || tb->shape[0] != (uint64_t)rows ||
                ta->shape[0] != tb->shape[1]) {
                errorf(err, errlen, "%s: %s: lora_A is [%llu, %llu] and lora_B [%llu, %llu]; the model needs [r, %d] and [%d, r]",
                       name, mod, (unsigned long long)ta->shape[0], ta->ndim > 1 ? (unsigned long long)ta->shape[1] : 0ull,
                       (unsigned long long)tb->shape[0], tb->ndim > 1 ? (unsigned long long)tb->shape[1] : 0ull, cols, rows);
                goto fail;
            }
            if (ta->shape[0] != (uint64_t)c.r) {
                errorf(err, errlen, "%s: %s has rank %llu but adapter_config.json says r = %lld", name, mod,
                       (unsigned long long)ta->shape[0], c.r);
                goto fail;
            }
            LoraPiece p = {l, modules[m].role, row0, rows, cols, (int)c.r, NULL, NULL,
                           (float)(c.alpha / (c.rslora ? sqrt((double)c.r) : (double)c.r)), NULL};
            char tn[128];
            snprintf(tn, sizeof tn, "%s.lora_A", mod);
            if (!(p.a = read_tensor(st, ta, tn, e, sizeof e))) {
                errorf(err, errlen, "%s: %s", name, e);
                goto fail;
            }
            snprintf(tn, sizeof tn, "%s.lora_B", mod);
            if (!(p.b = read_tensor(st, tb, tn, e, sizeof e))) {
                free(p.a);
                errorf(err, errlen, "%s: %s", name, e);
                goto fail;
            }
            if (lora_adapter_add(ad, &p, err, errlen)) goto fail;
        }
    }
    if (ad->n == 0) {
        errorf(err, errlen, "%s: the adapter has no LoRA tensors", name);
        goto fail;
    }
    if (lora_adapter_check(ad, hp, err, errlen)) goto fail;
    goto done;
fail:
    lora_adapter_free(ad);
    ad = NULL;
done:
    config_free(&c);
    json_free(doc);
    free(found);
    return ad;
}

LoraAdapter *lora_load(const char *path, const PhiHParams *hp, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        errorf(err, errlen, "LoRA adapter %s: no such file or folder", path);
        return NULL;
    }
    if (S_ISREG(sb.st_mode)) return lora_load_gguf(path, hp, err, errlen);
    if (!S_ISDIR(sb.st_mode)) {
        errorf(err, errlen, "LoRA adapter %s: neither a PEFT folder nor a GGUF file", path);
        return NULL;
    }
    size_t n = strlen(path) + 64, len;
    char *p = malloc(n), e[512];
    if (!p) {
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s/adapter_config.json", path);
    char *cfg = read_file(p, &len, e, sizeof e);
    if (!cfg) {
        errorf(err, errlen, "LoRA adapter: %s", e);
        free(p);
        return NULL;
    }
    snprintf(p, n, "%s/adapter_model.safetensors", path);
    StFile st;
    LoraAdapter *ad = NULL;
    if (st_open(p, &st, e, sizeof e)) {
        errorf(err, errlen, "LoRA adapter: %s", e);
    } else {
        ad = lora_from_peft(path, cfg, len, &st, hp, err, errlen);
        st_close(&st);
    }
    free(cfg);
    free(p);
    return ad;
}
