/* A tokenizer from a vocabulary given as plain arrays (what a GGUF file carries; the GGUF side is
 * model/gguf_vocab.c, the rules are in docs/GGUF.md, "Tokenizer"). The result is the same kind of
 * Tokenizer the tokenizer.json importer builds, so it encodes, decodes and serializes the same way:
 *  - "llama" (SentencePiece BPE): the file has scores but no merges. Hugging Face's converter
 *    (transformers' SentencePieceExtractor) made the model's tokenizer.json merges from the same
 *    scores: every split of a normal piece into two normal pieces is a merge, ranked by the score
 *    of the merged piece (higher first), ties by the merged piece's id, then by the ids of the
 *    left and right pieces. We derive exactly that list (for Phi-3 it equals tokenizer.json's
 *    61249 merges), so the merge loop is Hugging Face's, not an approximation of it. Normalizer:
 *    U+2581 before every segment between added tokens and ' ' -> U+2581 (Phi-3's Prepend +
 *    Replace; llama.cpp's add_space_prefix after each special token), byte fallback, fused unk.
 *  - "gpt2" (byte-level BPE): merges as "left right" strings in rank order, pre-tokenizer named by
 *    tokenizer.ggml.pre (only "gpt-4o", the o200k split of Phi-4-mini).
 * Token types: normal (and byte) tokens form the BPE vocabulary; control and unknown tokens are
 * special added tokens (matched in the text before BPE, never printed); user-defined tokens are
 * added tokens that print. Unused and empty tokens are holes. */
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MERGES (1 << 24)
#define MAX_TEMPLATE (1u << 24)
/* Pieces longer than this are not split into merges: each split costs a lookup of both halves,
 * so a hostile file of long pieces would cost len^2 per piece. Real SentencePiece pieces are far
 * shorter (Phi-3's longest: 48 bytes). */
#define MAX_MERGED_LEN 256

static int is_pad_text(const TokStr *s, int id) {
    char want[24];
    int n = snprintf(want, sizeof want, "[PAD%d]", id);
    return s->len == (size_t)n && memcmp(s->s, want, (size_t)n) == 0;
}

static int is_special_id(const TokVocab *v, int id) {
    return id == v->bos_id || id == v->eos_id || id == v->unk_id || id == v->pad_id;
}

/* Ids of a trailing run of "[PADn]" tokens (type unknown or unused) are rows of the embedding that
 * the tokenizer does not name (llama.cpp's converters pad the vocabulary up to the model's
 * vocab_size with them; Phi-3's are 32011..32063). The count without them. */
static int vocab_pieces(const TokVocab *v) {
    int n = v->n_tokens;
    while (n > 1 && v->types && (v->types[n - 1] == TOK_TT_UNKNOWN || v->types[n - 1] == TOK_TT_UNUSED) &&
           is_pad_text(&v->tokens[n - 1], n - 1) && !is_special_id(v, n - 1))
        n--;
    return n;
}

static int check_fields(const TokVocab *v, char *err, size_t errlen) {
    if (!v) return errorf(err, errlen, "tokenizer: no vocabulary");
    if (v->kind != TOK_VOCAB_SPM && v->kind != TOK_VOCAB_BPE)
        return errorf(err, errlen, "tokenizer: unknown vocabulary kind %d", v->kind);
    if (v->n_tokens < 1 || v->n_tokens > TOK_MAX_PIECES || !v->tokens)
        return errorf(err, errlen, "tokenizer: token count %d out of range [1, %d]", v->n_tokens, TOK_MAX_PIECES);
    if (v->kind == TOK_VOCAB_SPM && !v->scores)
        return errorf(err, errlen, "tokenizer: a SentencePiece vocabulary needs scores");
    if (v->kind == TOK_VOCAB_SPM && v->n_merges)
        return errorf(err, errlen, "tokenizer: a SentencePiece vocabulary has no merges (they come from the scores)");
    if (v->n_merges < 0 || v->n_merges > MAX_MERGES || (v->n_merges && !v->merges))
        return errorf(err, errlen, "tokenizer: merge count %d out of range [0, %d]", v->n_merges, MAX_MERGES);
    int ids[4] = {v->bos_id, v->eos_id, v->unk_id, v->pad_id};
    static const char *names[4] = {"bos", "eos", "unk", "pad"};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= v->n_tokens)
            return errorf(err, errlen, "tokenizer: %s id %d is not a token id (0..%d)", names[k], ids[k],
                          v->n_tokens - 1);
    if (v->chat_template && v->chat_template_len > MAX_TEMPLATE)
        return errorf(err, errlen, "tokenizer: chat template of %zu bytes (max %u)", v->chat_template_len, MAX_TEMPLATE);
    return 0;
}

/* Flags of token id from its type; -1 with err for a malformed token. */
static int piece_flags(const TokVocab *v, int id, uint32_t *flags, char *err, size_t errlen) {
    int type = v->types ? v->types[id] : TOK_TT_NORMAL;
    const TokStr *s = &v->tokens[id];
    uint32_t f;
    if (!s->s && s->len) return errorf(err, errlen, "tokenizer: token %d has no text", id);
    if (s->len > TOK_MAX_PIECE_LEN)
        return errorf(err, errlen, "tokenizer: token %d is %zu bytes (max %d)", id, s->len, TOK_MAX_PIECE_LEN);
    switch (type) {
    case TOK_TT_NORMAL: f = TOK_KIND_NORMAL | TOK_F_BPE; break;
    case TOK_TT_BYTE:
        if (v->kind != TOK_VOCAB_SPM)
            return errorf(err, errlen, "tokenizer: token %d has the byte type in a byte-level vocabulary", id);
        if (!tok_parse_byte_piece(s->s, s->len, NULL))
            return errorf(err, errlen, "tokenizer: byte token %d is not <0xHH>", id);
        f = TOK_KIND_BYTE | TOK_F_BPE;
        break;
    case TOK_TT_UNKNOWN: f = TOK_KIND_UNKNOWN | TOK_F_ADDED | TOK_F_SPECIAL; break;
    case TOK_TT_CONTROL: f = TOK_KIND_CONTROL | TOK_F_ADDED | TOK_F_SPECIAL; break;
    case TOK_TT_USER: f = TOK_KIND_USER | TOK_F_ADDED; break;
    case TOK_TT_UNUSED: f = TOK_KIND_UNUSED; break;
    default: return errorf(err, errlen, "tokenizer: token %d has unknown type %d", id, type);
    }
    if (s->len == 0) f = TOK_KIND_UNUSED; /* an empty token can never be produced: a hole */
    if (id == v->unk_id && (f & TOK_KIND_MASK) != TOK_KIND_UNUSED) f = (f & ~TOK_KIND_MASK) | TOK_KIND_UNKNOWN;
    uint8_t st = v->strip ? v->strip[id] : 0;
    if (st & ~(TOK_VOCAB_LSTRIP | TOK_VOCAB_RSTRIP))
        return errorf(err, errlen, "tokenizer: token %d has unknown strip flags 0x%x", id, st);
    if (st && !(f & TOK_F_ADDED))
        return errorf(err, errlen, "tokenizer: token %d has strip flags but is not matched in text", id);
    if (st & TOK_VOCAB_LSTRIP) f |= TOK_F_LSTRIP;
    if (st & TOK_VOCAB_RSTRIP) f |= TOK_F_RSTRIP;
    *flags = f;
    return 0;
}

typedef struct {
    float score;
    int32_t r, a, b; /* merged piece, left, right */
} Cand;

static int cmp_cand(const void *x, const void *y) {
    const Cand *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->r != q->r) return p->r < q->r ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

static int is_normal_bpe(const Tokenizer *t, int id) {
    return id >= 0 && (t->pieces[id].flags & (TOK_KIND_MASK | TOK_F_BPE)) == (TOK_KIND_NORMAL | TOK_F_BPE);
}

/* SentencePiece: the merges Hugging Face's converter writes into tokenizer.json (see the top). */
static int derive_spm_merges(Tokenizer *t, const float *scores, char *err, size_t errlen) {
    size_t n = 0, cap = 0;
    Cand *c = NULL;
    for (int r = 0; r < t->n_pieces; r++) {
        if (!is_normal_bpe(t, r)) continue;
        if (!isfinite(scores[r])) {
            free(c);
            return errorf(err, errlen, "tokenizer: token %d has a non-finite score", r);
        }
        const TokPiece *p = &t->pieces[r];
        const char *s = t->text + p->off;
        if (p->len > MAX_MERGED_LEN) continue;
        for (uint32_t k = 1; k < p->len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split at character boundaries */
            int a = tok_lookup_bpe(t, s, k), b = tok_lookup_bpe(t, s + k, p->len - k);
            if (!is_normal_bpe(t, a) || !is_normal_bpe(t, b)) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 4096;
                Cand *nc = realloc(c, cap * sizeof *nc);
                if (!nc) {
                    free(c);
                    return errorf(err, errlen, "tokenizer: out of memory");
                }
                c = nc;
            }
            c[n++] = (Cand){scores[r], r, a, b};
        }
    }
    if (n > MAX_MERGES) {
        free(c);
        return errorf(err, errlen, "tokenizer: %zu merges (max %d)", n, MAX_MERGES);
    }
    if (n) qsort(c, n, sizeof *c, cmp_cand);
    for (size_t i = 0; i < n; i++)
        if (tok_add_merge(t, c[i].a, c[i].b, err, errlen)) {
            free(c);
            return -1;
        }
    free(c);
    return 0;
}

/* Byte-level BPE: "left right" strings. A pair given twice keeps its last rank (as Hugging Face's
 * map insertion does, and as the tokenizer.json importer does). */
static int parse_bpe_merges(Tokenizer *t, const TokVocab *v, char *err, size_t errlen) {
    size_t n = (size_t)v->n_merges;
    if (!n) return 0;
    uint32_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    int32_t *pairs = malloc(n * 2 * sizeof *pairs);
    int64_t *last = malloc(cap * sizeof *last);
    uint64_t *keys = calloc(cap, sizeof *keys);
    int rc = -1;
    if (!pairs || !last || !keys) {
        errorf(err, errlen, "tokenizer: out of memory");
        goto done;
    }
    for (size_t m = 0; m < n; m++) {
        const TokStr *s = &v->merges[m];
        const char *sp = s->s ? memchr(s->s, ' ', s->len) : NULL;
        if (!sp || sp == s->s || sp + 1 == s->s + s->len || memchr(sp + 1, ' ', s->len - (size_t)(sp + 1 - s->s))) {
            errorf(err, errlen, "tokenizer: merge %zu is not \"left right\"", m);
            goto done;
        }
        size_t la = (size_t)(sp - s->s);
        int a = tok_lookup_bpe(t, s->s, la), b = tok_lookup_bpe(t, sp + 1, s->len - la - 1);
        if (a < 0 || b < 0) {
            errorf(err, errlen, "tokenizer: merge %zu names a token that is not in the BPE vocabulary", m);
            goto done;
        }
        pairs[2 * m] = a;
        pairs[2 * m + 1] = b;
        uint64_t key = ((uint64_t)a << 32 | (uint32_t)b) + 1;
        uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
        while (keys[i] && keys[i] != key) i = (i + 1) & (cap - 1);
        keys[i] = key;
        last[i] = (int64_t)m;
    }
    for (size_t m = 0; m < n; m++) {
        uint64_t key = ((uint64_t)pairs[2 * m] << 32 | (uint32_t)pairs[2 * m + 1]) + 1;
        uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
        while (keys[i] != key) i = (i + 1) & (cap - 1);
        if (last[i] == (int64_t)m && tok_add_merge(t, pairs[2 * m], pairs[2 * m + 1], err, errlen)) goto done;
    }
    rc = 0;
done:
    free(pairs);
    free(last);
    free(keys);
    return rc;
}

static int set_pretok(Tokenizer *t, const TokVocab *v, char *err, size_t errlen) {
    static const char o200k[] = "gpt-4o"; /* llama.cpp's name for the o200k split (Phi-4-mini) */
    if (v->pre && v->pre_len == sizeof o200k - 1 && !memcmp(v->pre, o200k, v->pre_len)) {
        t->pretok = TOK_PRETOK_O200K;
        return 0;
    }
    char name[64];
    return errorf(err, errlen, "tokenizer: byte-level pre-tokenizer '%s' is not supported (phi knows gpt-4o, Phi-4-mini's)",
                  v->pre ? err_printable(v->pre, v->pre_len, name, sizeof name) : "(none)");
}

Tokenizer *tok_from_vocab(const TokVocab *v, char *err, size_t errlen) {
    if (check_fields(v, err, errlen)) return NULL;
    int n = vocab_pieces(v);
    Tokenizer *t = tok_alloc(n, err, errlen);
    if (!t) return NULL;
    for (int id = 0; id < n; id++) {
        uint32_t f = 0;
        if (piece_flags(v, id, &f, err, errlen)) goto fail;
        if ((f & TOK_KIND_MASK) == TOK_KIND_UNUSED) continue; /* tok_alloc made it a hole */
        if (tok_set_piece(t, id, v->tokens[id].s, v->tokens[id].len, f, 0, err, errlen)) goto fail;
    }
    /* special ids among the padding that was cut off are rejected above (is_special_id) */
    t->bos_id = v->bos_id;
    t->eos_id = v->eos_id;
    t->unk_id = v->unk_id;
    t->pad_id = v->pad_id;
    if (v->add_bos) t->opts |= TOK_O_ADD_BOS;
    if (v->add_eos) t->opts |= TOK_O_ADD_EOS;
    if (v->kind == TOK_VOCAB_SPM) {
        t->type = TOK_TYPE_SPM_BPE;
        t->opts |= TOK_O_BYTE_FALLBACK | TOK_O_FUSE_UNK | TOK_O_SPACE_TO_META;
        t->prefix = v->add_space_prefix ? TOK_PREFIX_EVERY : TOK_PREFIX_NONE;
    } else {
        t->type = TOK_TYPE_BYTE_BPE;
        if (set_pretok(t, v, err, errlen)) goto fail;
    }
    if (tok_build_index(t, err, errlen)) goto fail;
    if (v->kind == TOK_VOCAB_SPM ? derive_spm_merges(t, v->scores, err, errlen) : parse_bpe_merges(t, v, err, errlen))
        goto fail;
    if (v->chat_template && tok_set_template(t, v->chat_template, v->chat_template_len, err, errlen)) goto fail;
    if (tok_finalize(t, err, errlen)) goto fail;
    return t;
fail:
    tok_free(t);
    return NULL;
}
