/* The tokenizer of a GGUF file: reads llama.cpp's tokenizer.ggml.* keys, checks their types and
 * counts, and hands plain arrays to tok_from_vocab (tokenizer/tok_vocab.c), which validates the
 * contents. The rules (defaults, the Phi whitespace rule) are in docs/GGUF.md, "Tokenizer". */
#include "model/gguf_vocab.h"

#include "base/errmsg.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int str_eq(const char *s, uint64_t len, const char *lit) {
    return len == strlen(lit) && memcmp(s, lit, (size_t)len) == 0;
}

/* A token id key: absent -> def; -1 or 0xFFFFFFFF (llama.cpp's "none") -> -1; otherwise the value
 * (tok_from_vocab checks the range). */
static int get_id(const Gguf *g, const char *key, int def, int *out, char *err, size_t errlen) {
    if (!gguf_find_key(g, key)) {
        *out = def;
        return 0;
    }
    int64_t v;
    int32_t i32;
    uint64_t u64;
    if (gguf_get_i32(g, key, &i32, NULL, 0) == 0) v = i32;
    else if (gguf_get_u64(g, key, &u64, err, errlen) == 0) v = u64 == UINT32_MAX ? -1 : u64 > INT32_MAX ? INT32_MAX : (int64_t)u64;
    else return -1;
    if (v < -1) return errorf(err, errlen, "GGUF: %s is %lld, not a token id", key, (long long)v);
    *out = (int)v;
    return 0;
}

static int get_bool(const Gguf *g, const char *key, int def, int *out, char *err, size_t errlen) {
    if (!gguf_find_key(g, key)) {
        *out = def;
        return 0;
    }
    return gguf_get_bool(g, key, out, err, errlen);
}

/* Optional string key: NULL when absent, an error when of another type. */
static int get_opt_str(const Gguf *g, const char *key, const char **s, uint64_t *len, char *err, size_t errlen) {
    *s = NULL;
    *len = 0;
    if (!gguf_find_key(g, key)) return 0;
    return gguf_get_str(g, key, s, len, err, errlen);
}

static int contains_ci(const char *s, uint64_t len, const char *needle) {
    size_t n = strlen(needle);
    for (uint64_t i = 0; i + n <= len; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)s[i + k]) == needle[k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

/* The Phi whitespace rule (GGUF has no lstrip/rstrip flags): Phi-3's and Phi-4-mini's
 * tokenizer.json give every added token rstrip except <unk>, <s>, <|endoftext|> and
 * <|endofprompt|> (so "<|user|>\nHi" drops the newline). llama.cpp applies the same rule to files
 * whose general.name contains "phi-3" or "phi3"; phi applies it to those and to every file of
 * the phi3 architecture (Phi-3.5, Phi-4-mini), to match their tokenizer.json. */
static int phi_rule_applies(const Gguf *g) {
    const char *s;
    uint64_t len;
    if (gguf_get_str(g, "general.architecture", &s, &len, NULL, 0) == 0 && str_eq(s, len, "phi3")) return 1;
    return gguf_get_str(g, "general.name", &s, &len, NULL, 0) == 0 &&
           (contains_ci(s, len, "phi-3") || contains_ci(s, len, "phi3"));
}

static int keeps_whitespace(const TokStr *s) {
    static const char *keep[] = {"<unk>", "<s>", "<|endoftext|>", "<|endofprompt|>"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (str_eq(s->s, s->len, keep[i])) return 1;
    return 0;
}

/* An array of n (== expected when expected != 0) elements of the key, as type `want` fits
 * (GGUF_TYPE_COUNT: any). Absent -> *kv NULL when optional. */
static int get_array(const Gguf *g, const char *key, uint32_t want, int optional, const GgufKV **kv, uint64_t expected,
                     char *err, size_t errlen) {
    *kv = NULL;
    if (optional && !gguf_find_key(g, key)) return 0;
    uint64_t n;
    if (gguf_get_arr(g, key, want, kv, &n, err, errlen)) return -1;
    if (expected && n != expected)
        return errorf(err, errlen, "GGUF: %s has %llu entries, tokenizer.ggml.tokens %llu", key, (unsigned long long)n,
                      (unsigned long long)expected);
    return 0;
}

Tokenizer *gguf_tokenizer(const Gguf *g, char *err, size_t errlen) {
    const char *model, *pre, *tmpl;
    uint64_t model_len, pre_len, tmpl_len, n;
    const GgufKV *tokens_kv, *scores_kv, *types_kv, *merges_kv = NULL;
    TokVocab v = {0};
    TokStr *tokens = NULL, *merges = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint8_t *strip = NULL;
    Tokenizer *t = NULL;

    if (!gguf_find_key(g, "tokenizer.ggml.model")) {
        errorf(err, errlen, "GGUF: no tokenizer (tokenizer.ggml.model is missing)");
        return NULL;
    }
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len, err, errlen)) return NULL;
    if (str_eq(model, model_len, "llama")) v.kind = TOK_VOCAB_SPM;
    else if (str_eq(model, model_len, "gpt2")) v.kind = TOK_VOCAB_BPE;
    else {
        char name[64];
        errorf(err, errlen, "GGUF: tokenizer.ggml.model '%s' is not supported (phi reads llama and gpt2)",
               err_printable(model, (size_t)model_len, name, sizeof name));
        return NULL;
    }
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens_kv, &n, err, errlen)) return NULL;
    if (n < 1 || n > (1u << 24)) {
        errorf(err, errlen, "GGUF: tokenizer.ggml.tokens has %llu entries (1 .. 16777216)", (unsigned long long)n);
        return NULL;
    }
    if (get_array(g, "tokenizer.ggml.scores", GGUF_TYPE_COUNT, v.kind != TOK_VOCAB_SPM, &scores_kv, n, err, errlen) ||
        get_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_COUNT, 1, &types_kv, n, err, errlen))
        return NULL;
    if (v.kind == TOK_VOCAB_BPE &&
        get_array(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, 1, &merges_kv, 0, err, errlen))
        return NULL;
    if (get_opt_str(g, "tokenizer.ggml.pre", &pre, &pre_len, err, errlen) ||
        get_opt_str(g, "tokenizer.chat_template", &tmpl, &tmpl_len, err, errlen))
        return NULL;

    tokens = malloc((size_t)n * sizeof *tokens);
    types = types_kv ? malloc((size_t)n * sizeof *types) : NULL;
    scores = scores_kv ? malloc((size_t)n * sizeof *scores) : NULL;
    strip = calloc((size_t)n, 1);
    if (!tokens || (types_kv && !types) || (scores_kv && !scores) || !strip) goto oom;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        gguf_arr_str(tokens_kv, i, &s, &len); /* the array's type was checked */
        tokens[i] = (TokStr){s, (size_t)len};
        if (types) {
            int64_t ty;
            if (gguf_arr_int(types_kv, i, &ty) || ty < INT32_MIN || ty > INT32_MAX) {
                errorf(err, errlen, "GGUF: tokenizer.ggml.token_type holds %s values, not integers",
                       gguf_type_name(types_kv->arr_type));
                goto fail;
            }
            types[i] = (int32_t)ty;
        }
        if (scores && gguf_arr_f32(scores_kv, i, &scores[i])) {
            errorf(err, errlen, "GGUF: tokenizer.ggml.scores holds %s values, not floats", gguf_type_name(scores_kv->arr_type));
            goto fail;
        }
    }
    if (merges_kv) {
        if (merges_kv->arr_count > (1u << 24)) {
            errorf(err, errlen, "GGUF: tokenizer.ggml.merges has %llu entries (max 16777216)",
                   (unsigned long long)merges_kv->arr_count);
            goto fail;
        }
        v.n_merges = (int)merges_kv->arr_count;
        merges = malloc((size_t)(v.n_merges ? v.n_merges : 1) * sizeof *merges);
        if (!merges) goto oom;
        for (int i = 0; i < v.n_merges; i++) {
            const char *s;
            uint64_t len;
            gguf_arr_str(merges_kv, (uint64_t)i, &s, &len);
            merges[i] = (TokStr){s, (size_t)len};
        }
    }
    int spm = v.kind == TOK_VOCAB_SPM;
    /* llama.cpp's defaults for keys a file leaves out: SentencePiece <unk> 0, <s> 1, </s> 2, BOS added */
    if (get_id(g, "tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1, &v.bos_id, err, errlen) ||
        get_id(g, "tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1, &v.eos_id, err, errlen) ||
        get_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, &v.unk_id, err, errlen) ||
        get_id(g, "tokenizer.ggml.padding_token_id", -1, &v.pad_id, err, errlen) ||
        get_bool(g, "tokenizer.ggml.add_bos_token", spm, &v.add_bos, err, errlen) ||
        get_bool(g, "tokenizer.ggml.add_eos_token", 0, &v.add_eos, err, errlen) ||
        get_bool(g, "tokenizer.ggml.add_space_prefix", 1, &v.add_space_prefix, err, errlen))
        goto fail;
    if (phi_rule_applies(g))
        for (uint64_t i = 0; i < n; i++) {
            int ty = types ? types[i] : TOK_TT_NORMAL;
            if ((ty == TOK_TT_CONTROL || ty == TOK_TT_USER || ty == TOK_TT_UNKNOWN) && tokens[i].len &&
                !keeps_whitespace(&tokens[i]))
                strip[i] = TOK_VOCAB_RSTRIP;
        }
    v.n_tokens = (int)n;
    v.tokens = tokens;
    v.scores = scores;
    v.types = types;
    v.strip = strip;
    v.merges = merges;
    v.pre = pre;
    v.pre_len = (size_t)pre_len;
    v.chat_template = tmpl;
    v.chat_template_len = (size_t)tmpl_len;
    if (!spm && !merges_kv) {
        errorf(err, errlen, "GGUF: a gpt2 tokenizer needs tokenizer.ggml.merges");
        goto fail;
    }
    {
        char terr[256];
        t = tok_from_vocab(&v, terr, sizeof terr);
        if (!t) errorf(err, errlen, "GGUF: %s", terr);
    }
    goto done;
oom:
    errorf(err, errlen, "GGUF: out of memory reading the tokenizer");
fail:
    t = NULL;
done:
    free(tokens);
    free(merges);
    free(scores);
    free(types);
    free(strip);
    return t;
}
