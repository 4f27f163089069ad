/* Encoding with Hugging Face `tokenizers` semantics:
 *  1. split the raw text on added tokens (leftmost-longest; single_word, lstrip, rstrip);
 *  2. normalize each remaining segment (optional U+2581 prefix, ' ' -> U+2581) and split it on
 *     the added tokens that match normalized text;
 *  3. BPE each remaining piece: chars -> ids (byte fallback, fused unk), then merges applied
 *     lowest rank first, leftmost first on ties, with a heap over a linked list of symbols so
 *     long segments (there is no pre-tokenizer: a segment can be the whole text) stay
 *     O(n log n). The merge loop mirrors HF's exactly, including its stale-entry check.
 * Byte-level BPE (type 2) has no normalizer; step 3 runs on each piece of the o200k
 * pre-tokenizer (tok_bytelevel.c), starting from one symbol per byte. */
#include "tokenizer/tok_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t id;
    int32_t prev, next; /* neighbours in the symbol list, -1 none */
    int32_t alive;
} Sym;

typedef struct {
    int32_t rank, pos, new_id;
} HeapItem;

/* Per-call cache of BPE results by word (text repeats words; HF keeps a similar cache). */
typedef struct {
    uint32_t hash, len; /* len 0: empty slot */
    size_t text_off, ids_off;
    uint32_t n_ids;
} CacheSlot;

#define CACHE_MAX_WORD 64
#define CACHE_MAX_SLOTS (1u << 17)

typedef struct {
    const Tokenizer *t;
    CacheSlot *cache;
    uint32_t cache_mask, cache_used;
    char *ctext;
    size_t ctext_len, ctext_cap;
    int32_t *cids;
    size_t cids_len, cids_cap;
    int capturing, capture_failed;
    size_t n_captured;
    int *ids;
    int cap;
    size_t n;
    char *norm;
    size_t norm_cap;
    Sym *syms;
    size_t sym_cap;
    HeapItem *heap;
    size_t heap_n, heap_cap;
    int oom;
} Enc;

static int grow(void **p, size_t *cap, size_t need, size_t elem);

static void emit(Enc *e, int id) {
    if (e->n < (size_t)e->cap) e->ids[e->n] = id;
    e->n++;
    if (e->capturing) { /* a word being cached: keep its ids even when the output is full */
        if (grow((void **)&e->cids, &e->cids_cap, e->cids_len + e->n_captured + 1, sizeof *e->cids)) {
            e->capturing = 0;
            e->capture_failed = 1;
        } else {
            e->cids[e->cids_len + e->n_captured++] = id;
        }
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return -1;
    *p = np;
    *cap = c;
    return 0;
}

/* ---- heap: min by (rank, pos) ---- */

static int heap_less(const HeapItem *a, const HeapItem *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(Enc *e, int32_t rank, int32_t pos, int32_t new_id) {
    if (grow((void **)&e->heap, &e->heap_cap, e->heap_n + 1, sizeof *e->heap)) {
        e->oom = 1;
        return;
    }
    size_t i = e->heap_n++;
    HeapItem it = {rank, pos, new_id};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&it, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = it;
}

static HeapItem heap_pop(Enc *e) {
    HeapItem top = e->heap[0], last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&e->heap[c + 1], &e->heap[c])) c++;
        if (!heap_less(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

/* Looks up the merge of pair (a, b): 1 with rank/new id, or 0. */
static int find_merge(const Tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->pair_mask;
    for (;;) {
        uint64_t k = t->pairs[i].key;
        if (k == key) {
            *rank = t->pairs[i].rank;
            *new_id = t->pairs[i].new_id;
            return 1;
        }
        if (!k) return 0;
        i = (i + 1) & t->pair_mask;
    }
}

/* ---- BPE of one normalized piece ---- */

static int add_sym(Enc *e, size_t *n, int32_t id) {
    if (grow((void **)&e->syms, &e->sym_cap, *n + 1, sizeof *e->syms)) return -1;
    Sym *s = &e->syms[*n];
    s->id = id;
    s->prev = *n ? (int32_t)*n - 1 : -1;
    s->next = -1;
    s->alive = 1;
    if (*n) e->syms[*n - 1].next = (int32_t)*n;
    (*n)++;
    return 0;
}

/* Initial symbols: each char's piece, else its <0xHH> bytes, else (fused) unk. Byte-level BPE
 * starts from each byte's piece (its printable stand-in char). */
static int initial_symbols(Enc *e, const char *s, size_t len, size_t *n_out) {
    const Tokenizer *t = e->t;
    const unsigned char *u = (const unsigned char *)s;
    int bytes = t->type == TOK_TYPE_BYTE_BPE;
    size_t n = 0;
    int32_t unk = -1; /* pending unk symbol (HF keeps it aside until a known char comes) */
    for (size_t i = 0; i < len;) {
        int cl = bytes || u[i] < 0x80 ? 1 : tok_utf8_len(u + i, len - i);
        if (cl == 0) cl = 1; /* cannot happen: the text was validated */
        int32_t id = bytes ? t->byte_id[u[i]]
                     : cl == 1 && u[i] < 0x80 ? t->ascii_id[u[i]] : tok_lookup_bpe(t, s + i, (size_t)cl);
        if (id >= 0) {
            if (unk >= 0 && add_sym(e, &n, unk)) return -1;
            unk = -1;
            if (add_sym(e, &n, id)) return -1;
        } else {
            int all = (t->opts & TOK_O_BYTE_FALLBACK) != 0;
            for (int k = 0; all && k < cl; k++) all = t->byte_id[u[i + k]] >= 0;
            if (all) {
                for (int k = 0; k < cl; k++)
                    if (add_sym(e, &n, t->byte_id[u[i + k]])) return -1;
            } else if (t->unk_id >= 0) {
                if (unk >= 0 && !(t->opts & TOK_O_FUSE_UNK) && add_sym(e, &n, unk)) return -1;
                unk = t->unk_id;
            }
            /* no unk token: HF drops the char */
        }
        i += (size_t)cl;
    }
    if (unk >= 0 && add_sym(e, &n, unk)) return -1;
    *n_out = n;
    return 0;
}

/* Short words: merge by scanning for the lowest (rank, position) pair instead of a heap.
 * Same order as the heap loop: a queued entry only stays valid while its pair is unchanged,
 * so the heap's next valid entry is always the lowest current pair. */
#define SHORT_WORD 32
static void bpe_short(Enc *e, size_t n) {
    const Tokenizer *t = e->t;
    int32_t id[SHORT_WORD], rank[SHORT_WORD], nid[SHORT_WORD];
    for (size_t i = 0; i < n; i++) id[i] = e->syms[i].id;
    for (size_t i = 0; i + 1 < n; i++)
        if (!find_merge(t, id[i], id[i + 1], &rank[i], &nid[i])) rank[i] = INT32_MAX;
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        id[best] = nid[best];
        for (size_t i = best + 1; i + 1 < n; i++) {
            id[i] = id[i + 1];
            rank[i] = rank[i + 1];
            nid[i] = nid[i + 1];
        }
        n--;
        if (best > 0 && !find_merge(t, id[best - 1], id[best], &rank[best - 1], &nid[best - 1]))
            rank[best - 1] = INT32_MAX;
        if (best + 1 < n && !find_merge(t, id[best], id[best + 1], &rank[best], &nid[best])) rank[best] = INT32_MAX;
    }
    for (size_t i = 0; i < n; i++) emit(e, id[i]);
}

/* BPE of one word (or of a whole piece when it cannot be split into words). */
static void bpe_word_uncached(Enc *e, const char *s, size_t len) {
    const Tokenizer *t = e->t;
    size_t n;
    if (initial_symbols(e, s, len, &n)) {
        e->oom = 1;
        return;
    }
    Sym *sy = e->syms;
    if (n <= SHORT_WORD) {
        bpe_short(e, n);
        return;
    }
    e->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t rank, nid;
        if (find_merge(t, sy[i].id, sy[i + 1].id, &rank, &nid)) heap_push(e, rank, (int32_t)i, nid);
    }
    while (e->heap_n && !e->oom) {
        HeapItem top = heap_pop(e);
        Sym *cur = &sy[top.pos];
        if (!cur->alive || cur->next < 0) continue;
        Sym *right = &sy[cur->next];
        int32_t rank, nid;
        /* stale entry: the pair at pos changed since it was queued */
        if (!find_merge(t, cur->id, right->id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        right->alive = 0;
        cur->next = right->next;
        if (cur->next >= 0) sy[cur->next].prev = top.pos;
        if (cur->prev >= 0 && find_merge(t, sy[cur->prev].id, cur->id, &rank, &nid))
            heap_push(e, rank, cur->prev, nid);
        if (cur->next >= 0 && find_merge(t, cur->id, sy[cur->next].id, &rank, &nid))
            heap_push(e, rank, top.pos, nid);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sy[i].next) emit(e, sy[i].id);
}

static uint32_t word_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static CacheSlot *cache_find(Enc *e, const char *s, size_t len, uint32_t h) {
    for (uint32_t i = h & e->cache_mask;; i = (i + 1) & e->cache_mask) {
        CacheSlot *c = &e->cache[i];
        if (!c->len || (c->hash == h && c->len == len && !memcmp(e->ctext + c->text_off, s, len))) return c;
    }
}

static int cache_grow(Enc *e) {
    uint32_t n = e->cache ? (e->cache_mask + 1) * 2 : 256;
    CacheSlot *old = e->cache, *nc = calloc(n, sizeof *nc);
    if (!nc) return -1;
    uint32_t old_n = old ? e->cache_mask + 1 : 0;
    e->cache = nc;
    e->cache_mask = n - 1;
    for (uint32_t i = 0; i < old_n; i++) {
        if (!old[i].len) continue;
        uint32_t j = old[i].hash & e->cache_mask;
        while (nc[j].len) j = (j + 1) & e->cache_mask;
        nc[j] = old[i];
    }
    free(old);
    return 0;
}

static void bpe_word(Enc *e, const char *s, size_t len) {
    if (len > CACHE_MAX_WORD) {
        bpe_word_uncached(e, s, len);
        return;
    }
    uint32_t h = word_hash(s, len);
    if (e->cache) {
        CacheSlot *c = cache_find(e, s, len, h);
        if (c->len) {
            for (uint32_t i = 0; i < c->n_ids; i++) emit(e, e->cids[c->ids_off + i]);
            return;
        }
    }
    int cacheable = e->cache_used < CACHE_MAX_SLOTS / 2;
    e->capturing = cacheable;
    e->capture_failed = 0;
    e->n_captured = 0;
    bpe_word_uncached(e, s, len);
    e->capturing = 0;
    size_t n_ids = e->n_captured;
    if (!cacheable || e->capture_failed || e->oom) return;
    if ((!e->cache || 2 * (e->cache_used + 1) > e->cache_mask + 1) && cache_grow(e)) return;
    if (grow((void **)&e->ctext, &e->ctext_cap, e->ctext_len + len, 1)) return;
    CacheSlot *c = cache_find(e, s, len, h);
    memcpy(e->ctext + e->ctext_len, s, len);
    *c = (CacheSlot){h, (uint32_t)len, e->ctext_len, e->cids_len, (uint32_t)n_ids};
    e->ctext_len += len;
    e->cids_len += n_ids;
    e->cache_used++;
}

/* When no merge can join a piece ending in a non-U+2581 char to one starting with U+2581
 * (t->word_split, checked at load), no token spans such a boundary and the merges on either
 * side never interact: BPE per word then gives the same ids with small, cache-friendly heaps. */
static void bpe_piece(Enc *e, const char *s, size_t len) {
    const Tokenizer *t = e->t;
    if (!len) return;
    if (t->opts & TOK_O_IGNORE_MERGES) {
        int id = tok_lookup_bpe(t, s, len);
        if (id >= 0) {
            emit(e, id);
            return;
        }
    }
    if (!t->word_split) {
        bpe_word(e, s, len);
        return;
    }
    size_t start = 0;
    for (size_t i = 1; i + 3 <= len; i++)
        if (tok_is_meta_at(s, i) && !(i >= 3 && tok_is_meta_at(s, i - 3))) {
            bpe_word(e, s + start, i - start);
            start = i;
        }
    bpe_word(e, s + start, len - start);
}

/* ---- added-token splitting (the normalizer: tok_normalize.c) ---- */

/* Unicode White_Space (what Rust's regex \s matches): length of the whitespace char at s, or 0. */
static int space_len(const unsigned char *s, size_t avail) {
    if (!avail) return 0;
    if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D)) return 1;
    if (s[0] < 0x80) return 0;
    int n = tok_utf8_len(s, avail);
    uint32_t c;
    if (n == 2) c = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    else if (n == 3) c = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    else return 0;
    int ws = c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
             c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
    return ws ? n : 0;
}

/* Start of the char that ends at s[end). */
static size_t prev_char(const char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Rust regex \w (approximation: ASCII alnum and '_', and every non-ASCII char that is not
 * whitespace or in the common punctuation/symbol blocks). Only single_word tokens use it. */
static int is_word_char(const char *s, size_t at, size_t len) {
    const unsigned char *u = (const unsigned char *)s + at;
    if (u[0] < 0x80)
        return (u[0] >= '0' && u[0] <= '9') || (u[0] >= 'A' && u[0] <= 'Z') ||
               (u[0] >= 'a' && u[0] <= 'z') || u[0] == '_';
    if (space_len(u, len - at)) return 0;
    if (u[0] == 0xC2) return 0;                                                 /* U+0080-00BF */
    if (u[0] == 0xC3 && (u[1] == 0x97 || u[1] == 0xB7)) return 0;              /* × ÷ */
    if (u[0] == 0xE2 && u[1] >= 0x80 && u[1] <= 0xAF) return 0;                /* U+2000-2BFF */
    if (u[0] == 0xE3 && u[1] == 0x80) return 0;                                /* U+3000-303F */
    if (u[0] == 0xEF && (u[1] == 0xBC || u[1] == 0xBD) && !(u[1] == 0xBC && u[2] >= 0x90 && u[2] <= 0x99))
        return 0; /* fullwidth punctuation (keeps fullwidth digits; letters approximated) */
    return 1;
}

typedef void (*SegmentFn)(Enc *e, const char *s, size_t len, size_t offset);

/* HF find_matches: splits s on the tokens of trie tr; gaps go to seg(), tokens are emitted. */
static void split_added(Enc *e, const AddedTrie *tr, const char *s, size_t len, size_t base,
                        SegmentFn seg) {
    const Tokenizer *t = e->t;
    size_t start_offset = 0, pos = 0;
    while (tr->n && pos < len) {
        uint8_t b0 = (uint8_t)s[pos];
        if (!(tr->first[b0 >> 3] & (1u << (b0 & 7)))) { /* most bytes start no token: skip the call */
            pos++;
            continue;
        }
        int id = -1;
        int m = tok_trie_longest(tr, s + pos, len - pos, &id);
        if (!m) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + (size_t)m;
        pos = stop; /* matching resumes after the match proper, as aho-corasick's find_iter */
        uint32_t f = t->pieces[id].flags;
        if (f & TOK_F_SINGLE_WORD) {
            int left_ok = start == 0 || !is_word_char(s, prev_char(s, start), len);
            int right_ok = stop == len || !is_word_char(s, stop, len);
            if (!left_ok || !right_ok) continue;
        }
        if (f & TOK_F_LSTRIP) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = prev_char(s, ns);
                if (!space_len((const unsigned char *)s + p, len - p)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (f & TOK_F_RSTRIP) {
            int sl;
            while ((sl = space_len((const unsigned char *)s + stop, len - stop)) > 0) stop += (size_t)sl;
        }
        if (start_offset < start) seg(e, s + start_offset, start - start_offset, base + start_offset);
        emit(e, id);
        start_offset = stop;
    }
    if (start_offset < len) seg(e, s + start_offset, len - start_offset, base + start_offset);
}

static void bpe_segment(Enc *e, const char *s, size_t len, size_t offset) {
    (void)offset;
    bpe_piece(e, s, len);
}

/* HF's Metaspace pre-tokenizer (split=false) on a piece left by the added-token passes:
 * ' ' -> U+2581 and the prefix, unless the piece already starts with U+2581; "first" means the
 * piece starts the original text. */
static void metaspace_segment(Enc *e, const char *s, size_t len, size_t offset) {
    if (grow((void **)&e->norm, &e->norm_cap, 3 * len + 4, 1)) {
        e->oom = 1;
        return;
    }
    bpe_piece(e, e->norm, tok_prefix_and_replace(e->t, s, len, offset == 0, 1, e->norm));
}

/* Byte-level BPE of one pre-token. With ignore_merges a pre-token that is itself a piece (in
 * its stand-in spelling) is emitted whole. */
static void bytelevel_word(Enc *e, const char *s, size_t len) {
    if (e->t->opts & TOK_O_IGNORE_MERGES) {
        if (grow((void **)&e->norm, &e->norm_cap, 2 * len + 1, 1)) {
            e->oom = 1;
            return;
        }
        int id = tok_lookup_bpe(e->t, e->norm, tok_bytes_to_pieces(s, len, e->norm));
        if (id >= 0) {
            emit(e, id);
            return;
        }
    }
    bpe_word(e, s, len);
}

/* Text left by the added-token passes: the o200k pre-tokenizer, then BPE per pre-token. */
static void bytelevel_segment(Enc *e, const char *s, size_t len, size_t offset) {
    (void)offset;
    for (size_t i = 0; i < len && !e->oom;) {
        size_t end = tok_pretok_o200k(s, len, i);
        bytelevel_word(e, s + i, end - i);
        i = end;
    }
}

/* A raw segment between added tokens: normalize, then split on normalized added tokens. */
static void raw_segment(Enc *e, const char *s, size_t len, size_t offset) {
    if (e->t->type == TOK_TYPE_BYTE_BPE) { /* no normalizer */
        if (e->t->norm_trie.n) split_added(e, &e->t->norm_trie, s, len, offset, bytelevel_segment);
        else bytelevel_segment(e, s, len, offset);
        return;
    }
    if (e->t->opts & TOK_O_PRETOK_META) { /* identity normalizer: match on the raw text */
        if (e->t->norm_trie.n) split_added(e, &e->t->norm_trie, s, len, offset, metaspace_segment);
        else metaspace_segment(e, s, len, offset);
        return;
    }
    if (grow((void **)&e->norm, &e->norm_cap, 3 * len + 4, 1)) {
        e->oom = 1;
        return;
    }
    size_t n = tok_normalize(e->t, s, len, offset == 0, e->norm);
    if (e->t->norm_trie.n) split_added(e, &e->t->norm_trie, e->norm, n, 0, bpe_segment);
    else bpe_piece(e, e->norm, n);
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int *ids, int cap,
               char *err, size_t errlen) {
    if (!t || !t->finalized) return errorf(err, errlen, "tok_encode: no tokenizer");
    if (!text && len) return errorf(err, errlen, "tok_encode: NULL text");
    if (cap < 0 || (cap > 0 && !ids)) return errorf(err, errlen, "tok_encode: bad output buffer");
    if (len > (size_t)INT_MAX / 2) return errorf(err, errlen, "tok_encode: text too long (%zu bytes)", len);
    size_t bad = tok_utf8_check(text, len);
    if (bad != len)
        return errorf(err, errlen, "tok_encode: invalid UTF-8 at byte %zu (0x%02X)", bad,
                        (unsigned char)text[bad]);
    Enc e = {0};
    e.t = t;
    e.ids = ids;
    e.cap = cap;
    if (add_bos && t->bos_id >= 0) emit(&e, t->bos_id);
    if (len) split_added(&e, &t->raw_trie, text, len, 0, raw_segment);
    free(e.norm);
    free(e.syms);
    free(e.heap);
    free(e.cache);
    free(e.ctext);
    free(e.cids);
    if (e.oom) return errorf(err, errlen, "tok_encode: out of memory");
    if (e.n > (size_t)INT_MAX) return errorf(err, errlen, "tok_encode: too many tokens");
    return (int)e.n;
}
