/* Streaming decoder with the semantics of Phi-3's HF decoder chain
 * (Replace U+2581 -> ' ', ByteFallback, Fuse, Strip one leading space) applied to the ids
 * that decode(skip_special_tokens=True) keeps: byte pieces are assembled into UTF-8 and only
 * complete characters are emitted; a byte run that cannot form a character becomes one
 * U+FFFD per byte, as HF's ByteFallback does.
 * Byte-level BPE (type 2) follows HF's ByteLevel decoder instead: each piece spells bytes with
 * printable stand-in chars (a piece with any other char, e.g. an added token, gives its own
 * UTF-8 bytes), the bytes of all pieces are joined and read as UTF-8 with Rust's
 * from_utf8_lossy: one U+FFFD per maximal invalid subsequence; no space is stripped. */
#include "tokenizer/tok_internal.h"

#include <string.h>

typedef struct {
    char *out;
    size_t cap, n;
    TokDecoder *d;
} Sink;

/* Appends bytes, dropping the very first space of the decoded text (HF Strip decoder). */
static void put(Sink *k, const char *s, size_t len) {
    if (!len) return;
    if (k->d->first) {
        k->d->first = 0;
        if (s[0] == ' ') {
            s++;
            len--;
        }
    }
    for (size_t i = 0; i < len && k->n + 1 < k->cap; i++) k->out[k->n++] = s[i];
}

static void put_replacement(Sink *k, int count) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    for (int i = 0; i < count; i++) put(k, fffd, 3);
}

/* Bytes needed by a lead byte, 0 if it cannot start a character. */
static int lead_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether the pending bytes are a valid prefix of a UTF-8 character. */
static int valid_prefix(const unsigned char *p, int n) {
    for (int i = 1; i < n; i++) {
        unsigned lo = 0x80, hi = 0xBF;
        if (i == 1) {
            if (p[0] == 0xE0) lo = 0xA0;
            else if (p[0] == 0xED) hi = 0x9F;
            else if (p[0] == 0xF0) lo = 0x90;
            else if (p[0] == 0xF4) hi = 0x8F;
        }
        if (p[i] < lo || p[i] > hi) return 0;
    }
    return 1;
}

/* Whether an unfinishable byte run becomes one U+FFFD (from_utf8_lossy) or one per byte. */
static int lossy_per_run(const TokDecoder *d) { return d->t && d->t->type == TOK_TYPE_BYTE_BPE; }

static void push_byte(Sink *k, unsigned char b) {
    TokDecoder *d = k->d;
    if (d->n_pending) {
        d->pending[d->n_pending++] = b;
        if (!valid_prefix(d->pending, d->n_pending)) {
            /* the run so far cannot be completed: replace it and retry b on its own */
            put_replacement(k, lossy_per_run(d) ? 1 : d->n_pending - 1);
            d->n_pending = 0;
        } else {
            if (d->n_pending == lead_len(d->pending[0])) {
                put(k, (const char *)d->pending, (size_t)d->n_pending);
                d->n_pending = 0;
            }
            return;
        }
    }
    int need = lead_len(b);
    if (need == 1) {
        char c = (char)b;
        put(k, &c, 1);
    } else if (need == 0) {
        put_replacement(k, 1);
    } else {
        d->pending[0] = b;
        d->n_pending = 1;
    }
}

static void flush_pending(Sink *k) {
    if (k->d->n_pending) put_replacement(k, lossy_per_run(k->d) ? 1 : k->d->n_pending);
    k->d->n_pending = 0;
}

/* Piece text with U+2581 replaced by ' '. */
static void put_text(Sink *k, const char *s, size_t len) {
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            put(k, s + run, i - run);
            put(k, " ", 1);
            i += 3;
            run = i;
        } else {
            i++;
        }
    }
    put(k, s + run, len - run);
}

/* A byte-level piece: its stand-in chars as bytes if all are stand-ins, else its own bytes. */
static void put_bytelevel(Sink *k, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    int all = 1;
    for (size_t i = 0; i < len && all;) {
        int n = tok_utf8_len(u + i, len - i);
        uint32_t cp = n == 1 ? u[i] : n == 2 ? (u[i] & 0x1Fu) << 6 | (u[i + 1] & 0x3Fu) : 0x110000;
        all = n > 0 && tok_cp_to_byte(cp) >= 0;
        i += n > 0 ? (size_t)n : 1;
    }
    for (size_t i = 0; i < len;) {
        if (!all) {
            push_byte(k, u[i++]);
            continue;
        }
        int n = u[i] < 0x80 ? 1 : 2;
        uint32_t cp = n == 1 ? u[i] : (u[i] & 0x1Fu) << 6 | (u[i + 1] & 0x3Fu);
        push_byte(k, (unsigned char)tok_cp_to_byte(cp));
        i += (size_t)n;
    }
}

void tok_decoder_init(TokDecoder *d, const Tokenizer *t) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->first = !t || t->type != TOK_TYPE_BYTE_BPE; /* only SentencePiece drops a leading space */
}

size_t tok_decoder_push(TokDecoder *d, int id, char *out, size_t cap) {
    Sink k = {out, cap, 0, d};
    const Tokenizer *t = d->t;
    if (t && id >= 0 && id < t->n_pieces && (d->special || !tok_is_special(t, id))) {
        if (tok_is_special(t, id)) { /* its content as written, never byte-level decoded */
            flush_pending(&k);
            put(&k, t->text + t->pieces[id].off, t->pieces[id].len);
            if (cap) out[k.n] = 0;
            return k.n;
        }
        const TokPiece *p = &t->pieces[id];
        const char *s = t->text + p->off;
        int byte;
        if (t->type == TOK_TYPE_BYTE_BPE) {
            put_bytelevel(&k, s, p->len);
        } else if ((p->flags & TOK_KIND_MASK) == TOK_KIND_BYTE && tok_parse_byte_piece(s, p->len, &byte)) {
            push_byte(&k, (unsigned char)byte);
        } else {
            flush_pending(&k);
            /* HF decodes a normalized added token as its normalized content: the prepended
             * U+2581 shows up as a space */
            if ((p->flags & (TOK_F_ADDED | TOK_F_NORMALIZED)) == (TOK_F_ADDED | TOK_F_NORMALIZED) &&
                t->prefix == TOK_PREFIX_EVERY && !(t->opts & TOK_O_PRETOK_META))
                put(&k, " ", 1);
            put_text(&k, s, p->len);
        }
    }
    if (cap) out[k.n] = 0;
    return k.n;
}

size_t tok_decoder_flush(TokDecoder *d, char *out, size_t cap) {
    Sink k = {out, cap, 0, d};
    flush_pending(&k);
    if (cap) out[k.n] = 0;
    return k.n;
}
