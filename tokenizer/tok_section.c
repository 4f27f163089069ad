/* The phi file's tokenizer section (layout: docs/FORMAT.md, "Tokenizer section") and the synthetic
 * tokenizer for random-weight models. tok_load checks every size against the blob before it
 * allocates or reads, then hands the pieces to tok_finalize, which validates the rest. */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC_MAGIC "PTOK"
#define SEC_VERSION 1
#define SEC_HEADER 56

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int tok_serialize(const Tokenizer *t, uint8_t **blob, uint64_t *size, char *err, size_t errlen) {
    if (!t || !t->finalized) return errorf(err, errlen, "tok_serialize: no tokenizer");
    int n = t->n_pieces;
    int scores = (t->opts & TOK_O_HAS_SCORES) != 0;
    uint64_t text_bytes = 0;
    for (int i = 0; i < n; i++) text_bytes += t->pieces[i].len;
    uint64_t tmpl = t->chat_template ? strlen(t->chat_template) : 0;
    if (text_bytes > UINT32_MAX || tmpl > UINT32_MAX)
        return errorf(err, errlen, "tok_serialize: tokenizer too large");
    uint64_t total = SEC_HEADER + 4ull * (uint64_t)n + (scores ? 4ull * (uint64_t)n : 0) +
                     8ull * (uint64_t)t->n_merges + text_bytes + tmpl;
    uint8_t *b = malloc(total);
    if (!b) return errorf(err, errlen, "tok_serialize: out of memory");
    memcpy(b, SEC_MAGIC, 4);
    uint32_t hdr[13] = {SEC_VERSION,        (uint32_t)t->type,   t->opts,
                        (uint32_t)t->prefix, (uint32_t)n,         (uint32_t)t->n_merges,
                        (uint32_t)t->unk_id, (uint32_t)t->bos_id, (uint32_t)t->eos_id,
                        (uint32_t)t->pad_id, (uint32_t)text_bytes, (uint32_t)tmpl,
                        (uint32_t)t->pretok};
    for (int i = 0; i < 13; i++) put_u32(b + 4 + 4 * i, hdr[i]);
    uint8_t *p = b + SEC_HEADER;
    for (int i = 0; i < n; i++, p += 4) {
        uint32_t f = t->pieces[i].flags, len = t->pieces[i].len;
        p[0] = (uint8_t)f;
        p[1] = (uint8_t)(f >> 8);
        p[2] = (uint8_t)len;
        p[3] = (uint8_t)(len >> 8);
    }
    if (scores)
        for (int i = 0; i < n; i++, p += 4) {
            uint32_t bits;
            memcpy(&bits, &t->pieces[i].score, 4);
            put_u32(p, bits);
        }
    for (int m = 0; m < t->n_merges; m++, p += 8) {
        put_u32(p, (uint32_t)t->merges[2 * m]);
        put_u32(p + 4, (uint32_t)t->merges[2 * m + 1]);
    }
    for (int i = 0; i < n; i++) {
        memcpy(p, t->text + t->pieces[i].off, t->pieces[i].len);
        p += t->pieces[i].len;
    }
    if (tmpl) memcpy(p, t->chat_template, tmpl);
    *blob = b;
    *size = total;
    return 0;
}

Tokenizer *tok_load(const uint8_t *blob, uint64_t size, char *err, size_t errlen) {
    if (!blob || size < SEC_HEADER) {
        errorf(err, errlen, "tokenizer section: %llu bytes, shorter than its %d-byte header",
                 (unsigned long long)size, SEC_HEADER);
        return NULL;
    }
    if (memcmp(blob, SEC_MAGIC, 4) != 0) {
        errorf(err, errlen, "tokenizer section: bad magic");
        return NULL;
    }
    uint32_t h[13];
    for (int i = 0; i < 13; i++) h[i] = get_u32(blob + 4 + 4 * i);
    uint32_t version = h[0], type = h[1], opts = h[2], prefix = h[3], n = h[4], n_merges = h[5];
    uint32_t text_bytes = h[10], tmpl = h[11];
    if (version != SEC_VERSION) {
        errorf(err, errlen, "tokenizer section: unsupported version %u", version);
        return NULL;
    }
    if (type != TOK_TYPE_SPM_BPE && type != TOK_TYPE_BYTE_BPE) {
        errorf(err, errlen, "tokenizer section: unsupported type %u", type);
        return NULL;
    }
    /* the pre-tokenizer field: 0 for type 1, a known pre-tokenizer for type 2 */
    if (type == TOK_TYPE_SPM_BPE ? h[12] != TOK_PRETOK_NONE : h[12] != TOK_PRETOK_O200K) {
        errorf(err, errlen, "tokenizer section: pre-tokenizer %u does not fit type %u", h[12], type);
        return NULL;
    }
    if (n < 1 || n > TOK_MAX_PIECES) {
        errorf(err, errlen, "tokenizer section: piece count %u out of range", n);
        return NULL;
    }
    int scores = (opts & TOK_O_HAS_SCORES) != 0;
    uint64_t want = SEC_HEADER + 4ull * n + (scores ? 4ull * n : 0) + 8ull * n_merges +
                    (uint64_t)text_bytes + tmpl;
    if (want != size) {
        errorf(err, errlen, "tokenizer section: header describes %llu bytes, blob has %llu",
                 (unsigned long long)want, (unsigned long long)size);
        return NULL;
    }
    if (n_merges > (uint32_t)INT32_MAX / 2) {
        errorf(err, errlen, "tokenizer section: too many merges");
        return NULL;
    }
    const uint8_t *pieces = blob + SEC_HEADER;
    const uint8_t *sc = pieces + 4ull * n;
    const uint8_t *merges = sc + (scores ? 4ull * n : 0);
    const uint8_t *text = merges + 8ull * n_merges;
    const uint8_t *tp = text + text_bytes;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += get_u16(pieces + 4ull * i + 2);
    if (sum != text_bytes) {
        errorf(err, errlen, "tokenizer section: piece lengths add up to %llu, text has %u bytes",
                 (unsigned long long)sum, text_bytes);
        return NULL;
    }
    Tokenizer *t = tok_alloc((int)n, err, errlen);
    if (!t) return NULL;
    char *nt = realloc(t->text, (size_t)text_bytes + n + 1);
    if (!nt) {
        errorf(err, errlen, "tokenizer section: out of memory");
        goto fail;
    }
    t->text = nt;
    t->text_cap = (size_t)text_bytes + n + 1;
    t->type = (int)type;
    t->pretok = (int)h[12];
    t->opts = opts;
    t->prefix = prefix > 16 ? 16 : (int)prefix; /* tok_finalize rejects unknown modes */
    t->unk_id = (int32_t)h[6];
    t->bos_id = (int32_t)h[7];
    t->eos_id = (int32_t)h[8];
    t->pad_id = (int32_t)h[9];
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t flags = get_u16(pieces + 4ull * i), len = get_u16(pieces + 4ull * i + 2);
        float score = 0;
        if (scores) {
            uint32_t bits = get_u32(sc + 4ull * i);
            memcpy(&score, &bits, 4);
        }
        if (tok_set_piece(t, (int)i, (const char *)text + off, len, flags, score, err, errlen)) goto fail;
        off += len;
    }
    t->merges = malloc((n_merges ? n_merges : 1) * 2ull * sizeof *t->merges);
    if (!t->merges) {
        errorf(err, errlen, "tokenizer section: out of memory");
        goto fail;
    }
    t->merges_cap = (int)(n_merges ? n_merges : 1);
    for (uint32_t m = 0; m < n_merges; m++) {
        uint32_t a = get_u32(merges + 8ull * m), b = get_u32(merges + 8ull * m + 4);
        t->merges[2 * m] = a >= n ? -1 : (int32_t)a; /* out of range: rejected by tok_finalize */
        t->merges[2 * m + 1] = b >= n ? -1 : (int32_t)b;
    }
    t->n_merges = (int)n_merges;
    if (tmpl && tok_set_template(t, (const char *)tp, tmpl, err, errlen)) goto fail;
    if (tok_finalize(t, err, errlen)) goto fail;
    return t;
fail:
    tok_free(t);
    return NULL;
}

/* ---- synthetic tokenizer ---- */

typedef struct {
    int32_t *slots;
    uint32_t mask;
} PieceSet;

static uint32_t set_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Inserts piece id unless its text is present; returns 1 if inserted. */
static int set_add(PieceSet *ps, const Tokenizer *t, int id) {
    const TokPiece *p = &t->pieces[id];
    const char *s = t->text + p->off;
    uint32_t i = set_hash(s, p->len) & ps->mask;
    while (ps->slots[i] >= 0) {
        const TokPiece *q = &t->pieces[ps->slots[i]];
        if (q->len == p->len && memcmp(t->text + q->off, s, p->len) == 0) return 0;
        i = (i + 1) & ps->mask;
    }
    ps->slots[i] = id;
    return 1;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Tokenizer *tok_synthetic(int n_vocab, char *err, size_t errlen) {
    if (n_vocab < 259 || n_vocab > TOK_MAX_PIECES) {
        errorf(err, errlen, "tok_synthetic: n_vocab %d out of range [259, %d]", n_vocab, TOK_MAX_PIECES);
        return NULL;
    }
    Tokenizer *t = tok_alloc(n_vocab, err, errlen);
    if (!t) return NULL;
    PieceSet ps = {0};
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n_vocab) cap <<= 1;
    ps.slots = malloc(cap * sizeof *ps.slots);
    ps.mask = cap - 1;
    char buf[64];
    if (!ps.slots) goto oom;
    memset(ps.slots, 0xFF, cap * sizeof *ps.slots);
    uint32_t ctl = TOK_F_BPE | TOK_F_ADDED | TOK_F_SPECIAL;
    if (tok_set_piece(t, 0, "<unk>", 5, TOK_KIND_UNKNOWN | ctl, 0, err, errlen) ||
        tok_set_piece(t, 1, "<s>", 3, TOK_KIND_CONTROL | ctl, 0, err, errlen) ||
        tok_set_piece(t, 2, "</s>", 4, TOK_KIND_CONTROL | ctl, 0, err, errlen))
        goto fail;
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        if (tok_set_piece(t, 3 + b, buf, 6, TOK_KIND_BYTE | TOK_F_BPE, 0, err, errlen)) goto fail;
    }
    for (int i = 0; i < 259; i++) set_add(&ps, t, i);
    /* single chars: U+2581 (the space) and printable ASCII */
    int id = 259, n_chars = 0;
    for (int c = 0x20; c < 0x7F && id < n_vocab; c++) {
        size_t len = 1;
        if (c == 0x20) memcpy(buf, "\xE2\x96\x81", len = 3);
        else buf[0] = (char)c;
        if (tok_set_piece(t, id, buf, len, TOK_KIND_NORMAL | TOK_F_BPE, 0, err, errlen)) goto fail;
        set_add(&ps, t, id++);
        n_chars++;
    }
    /* common English words first (so benchmark text compresses like real text), each grown
     * one char at a time: U+2581 t, U+2581 th, U+2581 the */
    static const char *words[] = {"the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "are",
                                  "with", "as", "he", "she", "be", "at", "by", "this", "had", "not", "but", "from",
                                  "or", "have", "an", "they", "which", "one", "you", "were", "her", "all", "there",
                                  "can", "we", "his", "so", "if", "will", "would", "what", "about", "when", "time"};
    int first_merged = id;
    for (size_t w = 0; w < sizeof words / sizeof *words && id < n_vocab; w++) {
        int left = 259; /* U+2581 */
        for (const char *c = words[w]; *c && id < n_vocab; c++) {
            int right = 259 + (*c - 0x20);
            if (right >= 259 + n_chars) break;
            const TokPiece *pl = &t->pieces[left], *pr = &t->pieces[right];
            memcpy(buf, t->text + pl->off, pl->len);
            memcpy(buf + pl->len, t->text + pr->off, pr->len);
            if (tok_set_piece(t, id, buf, pl->len + pr->len, TOK_KIND_NORMAL | TOK_F_BPE, 0, err, errlen)) goto fail;
            if (set_add(&ps, t, id)) {
                if (tok_add_merge(t, left, right, err, errlen)) goto fail;
                left = id++;
            } else {
                for (left = first_merged; left < id; left++) /* already made by an earlier word */
                    if (t->pieces[left].len == pl->len + pr->len &&
                        !memcmp(t->text + t->pieces[left].off, buf, pl->len + pr->len))
                        break;
            }
        }
    }
    /* then random pieces: an existing piece + one char, word-like (letters and the space) */
    static const char letters[] = " etaoinshrdlucmfwypvbgkjqxz";
    uint64_t rs = 0x9E3779B97F4A7C15ull;
    while (id < n_vocab) {
        int left = 0, right = 0, ok = 0;
        for (int tries = 0; tries < 64 && !ok; tries++) {
            uint64_t r = rng_next(&rs);
            int span = id - first_merged;
            /* prefer recent merged pieces so words grow; start from single chars */
            left = span > 0 && (r & 3) ? first_merged + (int)((r >> 8) % (uint64_t)span)
                                       : 259 + (int)((r >> 8) % (uint64_t)n_chars);
            int li = (int)((r >> 40) % (sizeof letters - 1));
            right = letters[li] == ' ' ? 259 : 259 + (letters[li] - 0x20);
            if ((r >> 60) == 0) right = 259 + (int)((r >> 32) % (uint64_t)n_chars);
            if (right >= 259 + n_chars) continue;
            const TokPiece *pl = &t->pieces[left], *pr = &t->pieces[right];
            if (pl->len + pr->len > 24) continue;
            memcpy(buf, t->text + pl->off, pl->len);
            memcpy(buf + pl->len, t->text + pr->off, pr->len);
            if (tok_set_piece(t, id, buf, pl->len + pr->len, TOK_KIND_NORMAL | TOK_F_BPE, 0, err, errlen))
                goto fail;
            ok = set_add(&ps, t, id);
        }
        if (!ok) { /* vanishingly rare: fall back to a unique numbered piece of chars */
            int len = snprintf(buf, sizeof buf, "%d", id);
            left = -1;
            if (tok_set_piece(t, id, buf, (size_t)len, TOK_KIND_NORMAL | TOK_F_BPE, 0, err, errlen)) goto fail;
            set_add(&ps, t, id++);
            continue;
        }
        if (tok_add_merge(t, left, right, err, errlen)) goto fail;
        id++;
    }
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->opts = TOK_O_ADD_BOS | TOK_O_BYTE_FALLBACK | TOK_O_FUSE_UNK | TOK_O_SPACE_TO_META;
    t->prefix = TOK_PREFIX_EVERY;
    free(ps.slots);
    if (tok_finalize(t, err, errlen)) {
        tok_free(t);
        return NULL;
    }
    return t;
oom:
    errorf(err, errlen, "tok_synthetic: out of memory");
fail:
    free(ps.slots);
    tok_free(t);
    return NULL;
}
