/* Building and validating a Tokenizer: the builder used by every importer, tok_finalize (all
 * checks + lookup tables), the added-token tries, accessors, and UTF-8 helpers. */
#include "tokenizer/tok_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

int tok_utf8_len(const unsigned char *s, size_t avail) {
    if (avail == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else
        return 0;
    if (avail < (size_t)n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

size_t tok_utf8_check(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int n = tok_utf8_len(u + i, len - i);
        if (!n) return i;
        i += (size_t)n;
    }
    return len;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tok_parse_byte_piece(const char *s, size_t len, int *byte) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    int h = hexval((unsigned char)s[3]), l = hexval((unsigned char)s[4]);
    if (h < 0 || l < 0) return 0;
    if (byte) *byte = h * 16 + l;
    return 1;
}

/* ---- builder ---- */

Tokenizer *tok_alloc(int n_pieces, char *err, size_t errlen) {
    if (n_pieces < 1 || n_pieces > TOK_MAX_PIECES) {
        errorf(err, errlen, "tokenizer: piece count %d out of range [1, %d]", n_pieces,
                 TOK_MAX_PIECES);
        return NULL;
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->type = TOK_TYPE_SPM_BPE;
    t->n_pieces = n_pieces;
    t->unk_id = t->bos_id = t->eos_id = t->pad_id = -1;
    t->pieces = calloc((size_t)n_pieces, sizeof *t->pieces);
    t->text_cap = (size_t)n_pieces * 8 + 16;
    t->text = malloc(t->text_cap);
    if (!t->pieces || !t->text) goto oom;
    t->text[0] = 0; /* offset 0 is the shared empty string of unused pieces */
    t->text_len = 1;
    for (int i = 0; i < n_pieces; i++) t->pieces[i].flags = TOK_KIND_UNUSED;
    return t;
oom:
    tok_free(t);
    errorf(err, errlen, "tokenizer: out of memory");
    return NULL;
}

int tok_set_piece(Tokenizer *t, int id, const char *s, size_t len, uint32_t flags, float score,
                  char *err, size_t errlen) {
    if (id < 0 || id >= t->n_pieces) return errorf(err, errlen, "tokenizer: id %d out of range", id);
    if (len > TOK_MAX_PIECE_LEN)
        return errorf(err, errlen, "tokenizer: piece %d is %zu bytes (max %d)", id, len,
                        TOK_MAX_PIECE_LEN);
    if (t->text_len + len + 1 > t->text_cap) {
        size_t cap = t->text_cap * 2 + len + 1;
        char *nt = realloc(t->text, cap);
        if (!nt) return errorf(err, errlen, "tokenizer: out of memory");
        t->text = nt;
        t->text_cap = cap;
    }
    TokPiece *p = &t->pieces[id];
    p->off = len ? (uint32_t)t->text_len : 0;
    p->len = (uint32_t)len;
    p->flags = flags;
    p->score = score;
    if (len) {
        memcpy(t->text + t->text_len, s, len);
        t->text[t->text_len + len] = 0;
        t->text_len += len + 1;
    }
    return 0;
}

int tok_add_merge(Tokenizer *t, int left, int right, char *err, size_t errlen) {
    if (t->n_merges == t->merges_cap) {
        int cap = t->merges_cap ? t->merges_cap * 2 : 1024;
        int32_t *nm = realloc(t->merges, (size_t)cap * 2 * sizeof *nm);
        if (!nm) return errorf(err, errlen, "tokenizer: out of memory");
        t->merges = nm;
        t->merges_cap = cap;
    }
    t->merges[2 * t->n_merges] = left;
    t->merges[2 * t->n_merges + 1] = right;
    t->n_merges++;
    return 0;
}

int tok_set_template(Tokenizer *t, const char *s, size_t len, char *err, size_t errlen) {
    free(t->chat_template);
    t->chat_template = NULL;
    if (!s) return 0;
    if (memchr(s, 0, len)) return errorf(err, errlen, "tokenizer: chat template contains NUL");
    t->chat_template = malloc(len + 1);
    if (!t->chat_template) return errorf(err, errlen, "tokenizer: out of memory");
    memcpy(t->chat_template, s, len);
    t->chat_template[len] = 0;
    return 0;
}

/* ---- hash tables ---- */

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static uint32_t hash_pair(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32);
}

static uint32_t table_size(uint64_t n) {
    uint32_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    return cap;
}

int tok_lookup_bpe(const Tokenizer *t, const char *s, size_t len) {
    uint32_t i = hash_bytes(s, len) & t->piece_mask;
    for (;;) {
        int32_t id = t->piece_hash[i];
        if (id < 0) return -1;
        const TokPiece *p = &t->pieces[id];
        if (p->len == len && memcmp(t->text + p->off, s, len) == 0) return id;
        i = (i + 1) & t->piece_mask;
    }
}

int tok_find_any(const Tokenizer *t, const char *s, size_t len) {
    int found = -1;
    for (int i = 0; i < t->n_pieces; i++) {
        const TokPiece *p = &t->pieces[i];
        if (p->len != len || (p->flags & TOK_KIND_MASK) == TOK_KIND_UNUSED) continue;
        if (memcmp(t->text + p->off, s, len) != 0) continue;
        if (p->flags & TOK_F_ADDED) return i;
        if (found < 0) found = i;
    }
    return found;
}

/* Inserts id unless a BPE piece with the same text is there (then returns that id). */
static int piece_hash_insert(Tokenizer *t, int id) {
    const TokPiece *p = &t->pieces[id];
    uint32_t i = hash_bytes(t->text + p->off, p->len) & t->piece_mask;
    for (;;) {
        int32_t cur = t->piece_hash[i];
        if (cur < 0) {
            t->piece_hash[i] = id;
            return id;
        }
        const TokPiece *q = &t->pieces[cur];
        if (q->len == p->len && memcmp(t->text + q->off, t->text + p->off, p->len) == 0) return cur;
        i = (i + 1) & t->piece_mask;
    }
}

/* Returns the slot of key: either holding it or empty. */
static uint32_t pair_slot(const Tokenizer *t, uint64_t key) {
    uint32_t i = hash_pair(key) & t->pair_mask;
    while (t->pairs[i].key && t->pairs[i].key != key) i = (i + 1) & t->pair_mask;
    return i;
}

/* ---- added-token tries ---- */

static int trie_node(AddedTrie *tr, uint8_t byte) {
    if (tr->n == tr->cap) {
        int cap = tr->cap ? tr->cap * 2 : 64;
        TrieNode *nn = realloc(tr->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return -1;
        tr->nodes = nn;
        tr->cap = cap;
    }
    TrieNode *n = &tr->nodes[tr->n];
    n->next = n->child = n->id = -1;
    n->byte = byte;
    return tr->n++;
}

/* Adds s -> id; returns 1 if s was already present, 0 if added, -1 out of memory. */
static int trie_insert(AddedTrie *tr, const char *s, size_t len, int id) {
    if (tr->n == 0 && trie_node(tr, 0) < 0) return -1;
    int cur = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int c = tr->nodes[cur].child;
        while (c >= 0 && tr->nodes[c].byte != b) c = tr->nodes[c].next;
        if (c < 0) {
            c = trie_node(tr, b);
            if (c < 0) return -1;
            tr->nodes[c].next = tr->nodes[cur].child;
            tr->nodes[cur].child = c;
        }
        cur = c;
    }
    if (tr->nodes[cur].id >= 0) return 1;
    tr->nodes[cur].id = id;
    tr->first[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    return 0;
}

int tok_trie_longest(const AddedTrie *tr, const char *s, size_t len, int *id) {
    if (tr->n == 0 || len == 0) return 0;
    uint8_t b0 = (uint8_t)s[0];
    if (!(tr->first[b0 >> 3] & (1u << (b0 & 7)))) return 0;
    int cur = 0, best = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int c = tr->nodes[cur].child;
        while (c >= 0 && tr->nodes[c].byte != b) c = tr->nodes[c].next;
        if (c < 0) break;
        cur = c;
        if (tr->nodes[cur].id >= 0) {
            best = (int)(i + 1);
            *id = tr->nodes[cur].id;
        }
    }
    return best;
}

/* ---- finalize ---- */

static int check_piece(const Tokenizer *t, int id, char *err, size_t errlen) {
    const TokPiece *p = &t->pieces[id];
    uint32_t kind = p->flags & TOK_KIND_MASK;
    const char *s = t->text + p->off;
    if (p->flags & ~TOK_F_ALL || kind > TOK_KIND_MAX)
        return errorf(err, errlen, "tokenizer: piece %d has invalid flags 0x%x", id, p->flags);
    if (kind == TOK_KIND_UNUSED) {
        if (p->len || p->flags != TOK_KIND_UNUSED)
            return errorf(err, errlen, "tokenizer: unused piece %d has text or flags", id);
        return 0;
    }
    if (!p->len) return errorf(err, errlen, "tokenizer: piece %d is empty", id);
    if (tok_utf8_check(s, p->len) != p->len)
        return errorf(err, errlen, "tokenizer: piece %d is not valid UTF-8", id);
    if (kind == TOK_KIND_BYTE && t->type == TOK_TYPE_BYTE_BPE)
        return errorf(err, errlen, "tokenizer: byte-level piece %d has the <0xHH> kind", id);
    if (kind == TOK_KIND_BYTE && !tok_parse_byte_piece(s, p->len, NULL))
        return errorf(err, errlen, "tokenizer: byte piece %d is not <0xHH>", id);
    uint32_t added_only = TOK_F_LSTRIP | TOK_F_RSTRIP | TOK_F_NORMALIZED | TOK_F_SINGLE_WORD;
    if ((p->flags & added_only) && !(p->flags & TOK_F_ADDED))
        return errorf(err, errlen, "tokenizer: piece %d has added-token flags but is not added", id);
    if ((t->opts & TOK_O_HAS_SCORES) && !isfinite(p->score))
        return errorf(err, errlen, "tokenizer: piece %d has a non-finite score", id);
    return 0;
}

static int check_special_id(const Tokenizer *t, int id, const char *what, char *err, size_t errlen) {
    if (id == -1) return 0;
    if (id < 0 || id >= t->n_pieces || (t->pieces[id].flags & TOK_KIND_MASK) == TOK_KIND_UNUSED)
        return errorf(err, errlen, "tokenizer: %s id %d is not a valid piece", what, id);
    return 0;
}

typedef struct {
    float score;
    int32_t id;
} ScoreId;

/* Score order for SentencePiece merge priority: higher score first, then lower id. */
static int cmp_by_score(const void *a, const void *b) {
    const ScoreId *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* rank[id] = position of piece id in score order. */
static int32_t *build_score_ranks(const Tokenizer *t) {
    int n = t->n_pieces;
    ScoreId *order = malloc((size_t)n * sizeof *order);
    int32_t *rank = malloc((size_t)n * sizeof *rank);
    if (!order || !rank) {
        free(order);
        free(rank);
        return NULL;
    }
    for (int i = 0; i < n; i++) order[i] = (ScoreId){t->pieces[i].score, i};
    qsort(order, (size_t)n, sizeof *order, cmp_by_score);
    /* equal scores share a rank, so the leftmost pair wins as in SentencePiece */
    for (int i = 0; i < n; i++)
        rank[order[i].id] = i > 0 && order[i].score == order[i - 1].score ? rank[order[i - 1].id] : i;
    free(order);
    return rank;
}

#define META_UTF8 "\xE2\x96\x81"

static int build_merges(Tokenizer *t, char *err, size_t errlen) {
    t->word_split = t->type == TOK_TYPE_SPM_BPE && tok_lookup_bpe(t, META_UTF8, 3) >= 0;
    t->pair_mask = table_size((uint64_t)t->n_merges) - 1;
    t->pairs = calloc((size_t)t->pair_mask + 1, sizeof *t->pairs);
    char *buf = malloc(2 * TOK_MAX_PIECE_LEN + 1);
    int32_t *score_rank = NULL;
    if ((t->opts & TOK_O_RANK_BY_SCORE) && !(score_rank = build_score_ranks(t))) goto oom;
    if (!t->pairs || !buf) goto oom;
    for (int m = 0; m < t->n_merges; m++) {
        int a = t->merges[2 * m], b = t->merges[2 * m + 1];
        if (a < 0 || b < 0 || a >= t->n_pieces || b >= t->n_pieces ||
            !(t->pieces[a].flags & TOK_F_BPE) || !(t->pieces[b].flags & TOK_F_BPE)) {
            errorf(err, errlen, "tokenizer: merge %d uses invalid piece ids %d, %d", m, a, b);
            goto fail;
        }
        const TokPiece *pa = &t->pieces[a], *pb = &t->pieces[b];
        memcpy(buf, t->text + pa->off, pa->len);
        memcpy(buf + pa->len, t->text + pb->off, pb->len);
        int r = tok_lookup_bpe(t, buf, pa->len + pb->len);
        if (r < 0) {
            errorf(err, errlen, "tokenizer: merge %d (%d + %d) makes a piece not in the vocabulary",
                     m, a, b);
            goto fail;
        }
        uint64_t key = ((uint64_t)a << 32 | (uint32_t)b) + 1;
        uint32_t slot = pair_slot(t, key);
        if (t->pairs[slot].key) {
            errorf(err, errlen, "tokenizer: merge %d (%d + %d) is a duplicate", m, a, b);
            goto fail;
        }
        t->pairs[slot] = (MergeSlot){key, score_rank ? score_rank[r] : m, r};
        /* a merge joining "...x" + "\u2581..." rules out splitting segments into words */
        if (pb->len >= 3 && !memcmp(t->text + pb->off, META_UTF8, 3) &&
            !(pa->len >= 3 && !memcmp(t->text + pa->off + pa->len - 3, META_UTF8, 3)))
            t->word_split = 0;
    }
    free(buf);
    free(score_rank);
    return 0;
oom:
    errorf(err, errlen, "tokenizer: out of memory");
fail:
    free(buf);
    free(score_rank);
    return -1;
}

static int build_added(Tokenizer *t, char *err, size_t errlen) {
    char *norm = NULL;
    size_t norm_cap = 0;
    for (int id = 0; id < t->n_pieces; id++) {
        const TokPiece *p = &t->pieces[id];
        if (!(p->flags & TOK_F_ADDED)) continue;
        int dup;
        if (p->flags & TOK_F_NORMALIZED) {
            /* worst case: prefix (3) + each byte becoming 3 */
            size_t need = 3 * (size_t)p->len + 4;
            if (need > norm_cap) {
                char *nn = realloc(norm, need);
                if (!nn) goto oom;
                norm = nn;
                norm_cap = need;
            }
            /* matched as the normalizer rewrites its content (HF); the "first segment only"
             * prefix of SentencePiece does not apply inside the text */
            size_t n = p->len; /* SentencePiece pieces are already in normalized form */
            if (t->opts & TOK_O_COLLAPSE_SPACES) memcpy(norm, t->text + p->off, n);
            else n = tok_normalize(t, t->text + p->off, p->len, 0, norm);
            dup = trie_insert(&t->norm_trie, norm, n, id);
        } else {
            dup = trie_insert(&t->raw_trie, t->text + p->off, p->len, id);
        }
        if (dup < 0) goto oom;
        if (dup) {
            free(norm);
            return errorf(err, errlen, "tokenizer: added token %d duplicates another one", id);
        }
    }
    free(norm);
    return 0;
oom:
    free(norm);
    return errorf(err, errlen, "tokenizer: out of memory");
}

/* Type-specific settings: byte-level BPE has no normalizer, byte fallback or scores, and the
 * o200k pre-tokenizer; SentencePiece-style BPE has no pre-tokenizer field. */
static int check_type(const Tokenizer *t, char *err, size_t errlen) {
    if (t->type == TOK_TYPE_SPM_BPE) {
        if (t->pretok != TOK_PRETOK_NONE)
            return errorf(err, errlen, "tokenizer: pre-tokenizer %d needs byte-level BPE", t->pretok);
        return 0;
    }
    if (t->type != TOK_TYPE_BYTE_BPE) return errorf(err, errlen, "tokenizer: unknown type %d", t->type);
    uint32_t allowed = TOK_O_ADD_BOS | TOK_O_ADD_EOS | TOK_O_FUSE_UNK | TOK_O_IGNORE_MERGES;
    if (t->opts & ~allowed)
        return errorf(err, errlen, "tokenizer: option bits 0x%x do not apply to byte-level BPE",
                        t->opts & ~allowed);
    if (t->prefix != TOK_PREFIX_NONE) return errorf(err, errlen, "tokenizer: byte-level BPE with a prefix");
    if (t->pretok != TOK_PRETOK_O200K)
        return errorf(err, errlen, "tokenizer: unknown byte-level pre-tokenizer %d", t->pretok);
    return 0;
}

int tok_build_index(Tokenizer *t, char *err, size_t errlen) {
    if (t->opts & ~TOK_O_ALL) return errorf(err, errlen, "tokenizer: unknown option bits 0x%x", t->opts);
    if (check_type(t, err, errlen)) return -1;
    if (t->prefix < TOK_PREFIX_NONE || t->prefix > TOK_PREFIX_FIRST)
        return errorf(err, errlen, "tokenizer: unknown dummy-prefix mode %d", t->prefix);
    if ((t->opts & TOK_O_RANK_BY_SCORE) && !(t->opts & TOK_O_HAS_SCORES))
        return errorf(err, errlen, "tokenizer: score-ranked merges need scores");
    for (int i = 0; i < t->n_pieces; i++)
        if (check_piece(t, i, err, errlen)) return -1;
    if (check_special_id(t, t->unk_id, "unk", err, errlen) ||
        check_special_id(t, t->bos_id, "bos", err, errlen) ||
        check_special_id(t, t->eos_id, "eos", err, errlen) ||
        check_special_id(t, t->pad_id, "pad", err, errlen))
        return -1;

    int n_bpe = 0;
    for (int i = 0; i < t->n_pieces; i++) n_bpe += !!(t->pieces[i].flags & TOK_F_BPE);
    t->piece_mask = table_size((uint64_t)n_bpe) - 1;
    free(t->piece_hash);
    t->piece_hash = malloc(((size_t)t->piece_mask + 1) * sizeof *t->piece_hash);
    if (!t->piece_hash) return errorf(err, errlen, "tokenizer: out of memory");
    memset(t->piece_hash, 0xFF, ((size_t)t->piece_mask + 1) * sizeof *t->piece_hash);
    for (int i = 0; i < t->n_pieces; i++) {
        if (!(t->pieces[i].flags & TOK_F_BPE)) continue;
        int prev = piece_hash_insert(t, i);
        if (prev != i)
            return errorf(err, errlen, "tokenizer: pieces %d and %d have the same text", prev, i);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        if (t->type == TOK_TYPE_BYTE_BPE) { /* the byte's printable stand-in */
            char byte = (char)b;
            t->byte_id[b] = tok_lookup_bpe(t, name, tok_bytes_to_pieces(&byte, 1, name));
            continue;
        }
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = tok_lookup_bpe(t, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        t->ascii_id[c] = tok_lookup_bpe(t, &ch, 1);
    }
    return 0;
}

int tok_finalize(Tokenizer *t, char *err, size_t errlen) {
    if (t->finalized) return 0;
    if (tok_build_index(t, err, errlen) || build_merges(t, err, errlen) || build_added(t, err, errlen))
        return -1;
    t->finalized = 1;
    return 0;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    free(t->pieces);
    free(t->text);
    free(t->merges);
    free(t->chat_template);
    free(t->piece_hash);
    free(t->pairs);
    free(t->raw_trie.nodes);
    free(t->norm_trie.nodes);
    free(t);
}

/* ---- accessors ---- */

int tok_vocab_size(const Tokenizer *t) { return t ? t->n_pieces : 0; }
int tok_bos_id(const Tokenizer *t) { return t ? t->bos_id : -1; }
int tok_eos_id(const Tokenizer *t) { return t ? t->eos_id : -1; }
int tok_unk_id(const Tokenizer *t) { return t ? t->unk_id : -1; }
int tok_pad_id(const Tokenizer *t) { return t ? t->pad_id : -1; }
int tok_add_bos(const Tokenizer *t) { return t && (t->opts & TOK_O_ADD_BOS) ? 1 : 0; }
int tok_add_eos(const Tokenizer *t) { return t && (t->opts & TOK_O_ADD_EOS) ? 1 : 0; }
const char *tok_chat_template(const Tokenizer *t) { return t ? t->chat_template : NULL; }

const char *tok_piece(const Tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_pieces) return NULL;
    return t->text + t->pieces[id].off;
}

int tok_is_special(const Tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_pieces) return 0;
    uint32_t f = t->pieces[id].flags, kind = f & TOK_KIND_MASK;
    return kind == TOK_KIND_CONTROL || kind == TOK_KIND_UNKNOWN || kind == TOK_KIND_UNUSED ||
           (f & TOK_F_SPECIAL);
}

int tok_piece_id(const Tokenizer *t, const char *s, size_t len) {
    return t && s ? tok_find_any(t, s, len) : -1;
}
