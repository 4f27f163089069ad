/* Writes small GGUF files that hold only tokenizer metadata (tokenizer.ggml.*), for the GGUF
 * tokenizer tests and the fuzz seeds: key/value helpers and a tiny SentencePiece ("llama") and
 * byte-level ("gpt2") vocabulary, each with an optional corruption. */
#ifndef PHI_GGUF_VOCAB_WRITE_H
#define PHI_GGUF_VOCAB_WRITE_H

#include <stdio.h>

/* gguf_write.h's image writers are not used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/gguf_write.h"
#pragma GCC diagnostic pop

typedef struct {
    GwBuf *g;
    uint64_t n_kv;
} GvFile;

static void gv_begin(GvFile *f, GwBuf *g) {
    f->g = g;
    f->n_kv = 0;
    g->n = 0;
    gw_bytes(g, "GGUF", 4);
    gw_u32(g, 3);
    gw_u64(g, 0); /* tensors */
    gw_u64(g, 0); /* key/value pairs: patched by gv_end */
}
static void gv_end(GvFile *f) {
    for (int i = 0; i < 8; i++) f->g->b[16 + i] = (uint8_t)(f->n_kv >> (8 * i));
}
static void gv_key(GvFile *f, const char *key, uint32_t type) {
    gw_str(f->g, key);
    gw_u32(f->g, type);
    f->n_kv++;
}
static void gv_str(GvFile *f, const char *key, const char *s) { gv_key(f, key, 8), gw_str(f->g, s); }
static void gv_u32(GvFile *f, const char *key, uint32_t v) { gv_key(f, key, 4), gw_u32(f->g, v); }
static void gv_bool(GvFile *f, const char *key, int v) { gv_key(f, key, 7), gw_le(f->g, (uint64_t)v, 1); }
static void gv_arr_str(GvFile *f, const char *key, const char *const *s, uint64_t n) {
    gv_key(f, key, 9), gw_u32(f->g, 8), gw_u64(f->g, n);
    for (uint64_t i = 0; i < n; i++) gw_str(f->g, s[i]);
}
static void gv_arr_f32(GvFile *f, const char *key, const float *v, uint64_t n) {
    gv_key(f, key, 9), gw_u32(f->g, 6), gw_u64(f->g, n);
    for (uint64_t i = 0; i < n; i++) gw_f32(f->g, v[i]);
}
static void gv_arr_i32(GvFile *f, const char *key, const int32_t *v, uint64_t n) {
    gv_key(f, key, 9), gw_u32(f->g, 5), gw_u64(f->g, n);
    for (uint64_t i = 0; i < n; i++) gw_u32(f->g, (uint32_t)v[i]);
}

/* Corruptions of the tiny vocabularies (GV_OK: none). */
enum {
    GV_OK,
    GV_NO_MODEL,       /* tokenizer.ggml.model missing */
    GV_MODEL_BERT,     /* an unsupported tokenizer model */
    GV_MODEL_INT,      /* tokenizer.ggml.model is a UINT32 */
    GV_NO_TOKENS,      /* tokenizer.ggml.tokens missing */
    GV_TOKENS_F32,     /* tokens is an array of FLOAT32 */
    GV_SCORES_SHORT,   /* one score fewer than tokens */
    GV_SCORES_STR,     /* scores is an array of STRING */
    GV_NO_SCORES,      /* llama without scores */
    GV_TYPES_LONG,     /* one token type more than tokens */
    GV_TYPE_9,         /* a token of type 9 */
    GV_BYTE_TEXT,      /* a byte token that is not <0xHH> */
    GV_DUP_TOKEN,      /* two normal tokens with the same text */
    GV_NAN_SCORE,      /* a NaN score on a normal token */
    GV_BAD_UTF8,       /* a token that is not UTF-8 */
    GV_BOS_RANGE,      /* bos id past the vocabulary */
    GV_EOS_NEG,        /* eos id -5 */
    GV_ADD_BOS_STR,    /* add_bos_token is a STRING */
    GV_TEMPLATE_INT,   /* chat_template is a UINT32 */
    GV_TEMPLATE_NUL,   /* chat_template contains NUL */
    GV_HUGE_TOKEN,     /* a token of 70000 bytes */
    GV_BPE_NO_MERGES,  /* gpt2 without merges */
    GV_BPE_MERGE_UNK,  /* a merge naming a token not in the vocabulary */
    GV_BPE_MERGE_FMT,  /* a merge without a space */
    GV_BPE_MERGE_OUT,  /* a merge whose result is not a token */
    GV_BPE_PRE_UNK,    /* tokenizer.ggml.pre "qwen2" */
    GV_BPE_NO_PRE,     /* no tokenizer.ggml.pre */
    GV_BPE_BYTE_TYPE,  /* a byte-typed token in a gpt2 vocabulary */
    GV_COUNT
};

static const char *const GV_NAMES[GV_COUNT] __attribute__((unused)) = {
    "ok", "no model key", "model bert", "model key of type UINT32", "no tokens", "tokens of FLOAT32",
    "scores one short", "scores of STRING", "llama without scores", "token_type one long", "token type 9",
    "byte token not <0xHH>", "duplicate token text", "NaN score", "token not UTF-8", "bos id out of range",
    "eos id -5", "add_bos_token of STRING", "chat_template of UINT32", "chat_template with NUL",
    "70000-byte token", "gpt2 without merges", "merge naming an unknown token", "merge without a space",
    "merge result not a token", "unknown pre-tokenizer", "gpt2 without pre", "byte type in gpt2"};

#define GV_TEMPLATE                                                                                               \
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n'}}" \
    "{% endfor %}{{'<|assistant|>\\n'}}"

/* A tiny SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, a few pieces whose
 * scores make merges ("▁a", "ab", "▁ab"), <|end|> (control), [PAD...] padding at the end. */
static void gv_tiny_llama_as(GwBuf *g, int bad, const char *arch, const char *name) {
    static char bytes[256][8];
    const char *tok[280];
    float sc[280];
    int32_t ty[280];
    int n = 0;
    tok[n] = "<unk>", sc[n] = 0, ty[n++] = 2;
    tok[n] = "<s>", sc[n] = 0, ty[n++] = 3;
    tok[n] = "</s>", sc[n] = 0, ty[n++] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b], sc[n] = 0, ty[n++] = 6;
    }
    static const char *words[] = {"\xE2\x96\x81", "a", "b", "c", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab", "bc"};
    for (int i = 0; i < 8; i++) tok[n] = words[i], sc[n] = -(float)i, ty[n++] = 1;
    tok[n] = "<|end|>", sc[n] = 0, ty[n++] = 3;
    tok[n] = "[PAD268]", sc[n] = -10000, ty[n++] = 2;
    tok[n] = "[PAD269]", sc[n] = -10000, ty[n++] = 2;
    char *huge = NULL;
    if (bad == GV_BYTE_TEXT) tok[10] = "<0x0g>";
    if (bad == GV_DUP_TOKEN) tok[263] = "a";
    if (bad == GV_NAN_SCORE) sc[262] = 0.0f / 0.0f;
    if (bad == GV_BAD_UTF8) tok[262] = "\xC3(";
    if (bad == GV_TYPE_9) ty[264] = 9;
    if (bad == GV_HUGE_TOKEN) {
        huge = malloc(70001);
        memset(huge, 'x', 70000);
        huge[70000] = 0;
        tok[265] = huge;
    }
    GvFile f;
    gv_begin(&f, g);
    gv_str(&f, "general.architecture", arch);
    gv_str(&f, "general.name", name);
    if (bad == GV_MODEL_INT) gv_u32(&f, "tokenizer.ggml.model", 1);
    else if (bad != GV_NO_MODEL) gv_str(&f, "tokenizer.ggml.model", bad == GV_MODEL_BERT ? "bert" : "llama");
    gv_str(&f, "tokenizer.ggml.pre", "default");
    if (bad == GV_TOKENS_F32) gv_arr_f32(&f, "tokenizer.ggml.tokens", sc, (uint64_t)n);
    else if (bad != GV_NO_TOKENS) gv_arr_str(&f, "tokenizer.ggml.tokens", tok, (uint64_t)n);
    if (bad == GV_SCORES_STR) gv_arr_str(&f, "tokenizer.ggml.scores", tok, (uint64_t)n);
    else if (bad != GV_NO_SCORES) gv_arr_f32(&f, "tokenizer.ggml.scores", sc, (uint64_t)(bad == GV_SCORES_SHORT ? n - 1 : n));
    int32_t ty2[281];
    memcpy(ty2, ty, sizeof ty);
    ty2[n] = 1;
    gv_arr_i32(&f, "tokenizer.ggml.token_type", ty2, (uint64_t)(bad == GV_TYPES_LONG ? n + 1 : n));
    gv_u32(&f, "tokenizer.ggml.bos_token_id", bad == GV_BOS_RANGE ? (uint32_t)n + 5 : 1);
    if (bad == GV_EOS_NEG) gv_key(&f, "tokenizer.ggml.eos_token_id", 5), gw_u32(g, (uint32_t)-5);
    else gv_u32(&f, "tokenizer.ggml.eos_token_id", 267);
    gv_u32(&f, "tokenizer.ggml.unknown_token_id", 0);
    if (bad == GV_ADD_BOS_STR) gv_str(&f, "tokenizer.ggml.add_bos_token", "yes");
    else gv_bool(&f, "tokenizer.ggml.add_bos_token", 1);
    if (bad == GV_TEMPLATE_INT) gv_u32(&f, "tokenizer.chat_template", 7);
    else if (bad == GV_TEMPLATE_NUL) gv_key(&f, "tokenizer.chat_template", 8), gw_u64(g, 3), gw_bytes(g, "a\0b", 3);
    else gv_str(&f, "tokenizer.chat_template", GV_TEMPLATE);
    gv_end(&f);
    free(huge);
}

static void gv_tiny_llama(GwBuf *g, int bad) { gv_tiny_llama_as(g, bad, "phi3", "tiny"); }

/* A tiny byte-level vocabulary: the 256 byte stand-ins (GPT-2's mapping), "Ġa" "ab" "Ġab" made by
 * merges, <|endoftext|> and <|end|> (control), pre-tokenizer gpt-4o. */
static void gv_tiny_gpt2(GwBuf *g, int bad) {
    static char bytes[256][4];
    const char *tok[270];
    int32_t ty[270];
    int n = 0;
    for (int b = 0; b < 256; b++) { /* GPT-2: printable bytes stand for themselves, the rest U+0100.. */
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        static int next = 0;
        if (b == 0) next = 0;
        unsigned cp = printable ? (unsigned)b : 0x100u + (unsigned)next++;
        if (cp < 0x80) bytes[b][0] = (char)cp, bytes[b][1] = 0;
        else bytes[b][0] = (char)(0xC0 | (cp >> 6)), bytes[b][1] = (char)(0x80 | (cp & 0x3F)), bytes[b][2] = 0;
        tok[n] = bytes[b], ty[n++] = bad == GV_BPE_BYTE_TYPE && b == 'z' ? 6 : 1;
    }
    tok[n] = "\xC4\xA0" "a", ty[n++] = 1; /* Ġa */
    tok[n] = "ab", ty[n++] = 1;
    tok[n] = "\xC4\xA0" "ab", ty[n++] = 1;
    tok[n] = "<|endoftext|>", ty[n++] = 3;
    tok[n] = "<|end|>", ty[n++] = 3;
    const char *merges[4] = {"\xC4\xA0 a", "a b", "\xC4\xA0" "a b", NULL};
    int n_merges = 3;
    if (bad == GV_BPE_MERGE_UNK) merges[1] = "a q\xC4\xA0";
    if (bad == GV_BPE_MERGE_FMT) merges[1] = "ab";
    if (bad == GV_BPE_MERGE_OUT) merges[n_merges++] = "b a";
    GvFile f;
    gv_begin(&f, g);
    gv_str(&f, "general.architecture", "phi3");
    gv_str(&f, "tokenizer.ggml.model", "gpt2");
    if (bad != GV_BPE_NO_PRE) gv_str(&f, "tokenizer.ggml.pre", bad == GV_BPE_PRE_UNK ? "qwen2" : "gpt-4o");
    gv_arr_str(&f, "tokenizer.ggml.tokens", tok, (uint64_t)n);
    gv_arr_i32(&f, "tokenizer.ggml.token_type", ty, (uint64_t)n);
    if (bad != GV_BPE_NO_MERGES) gv_arr_str(&f, "tokenizer.ggml.merges", merges, (uint64_t)n_merges);
    gv_u32(&f, "tokenizer.ggml.bos_token_id", 259);
    gv_u32(&f, "tokenizer.ggml.eos_token_id", 259);
    gv_bool(&f, "tokenizer.ggml.add_bos_token", 0);
    gv_end(&f);
}

/* Whether corruption `bad` applies to the gpt2 writer (else the llama one). */
static __attribute__((unused)) int gv_is_gpt2_case(int bad) { return bad >= GV_BPE_NO_MERGES; }

#endif
