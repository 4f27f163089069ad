/* Byte-level BPE (tokenizer type 2, GPT-2 style, Phi-4-mini): the byte <-> printable code point
 * mapping its vocabulary is written in, the Unicode class lookup, and the o200k pre-tokenizer.
 *
 * The pre-tokenizer is a hand-written scanner that returns the same pieces as Hugging Face's
 * Split(Isolated) with the o200k_base regex run by Oniguruma (leftmost-first alternation with
 * backtracking):
 *   1 [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+C?
 *   2 [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*C?
 *   3 \p{N}{1,3}
 *   4  ?[^\s\p{L}\p{N}]+[\r\n/]*
 *   5 \s*[\r\n]+   6 \s+(?!\S)   7 \s+
 * with C = (?i:'s|'t|'re|'ve|'m|'ll|'d). Every character starts a match of some alternative
 * (letters and marks 1/2, numbers 3, whitespace 5-7, anything else 4), so the matches tile the
 * text and the scanner only needs "where does the match starting here end". \s is Unicode
 * White_Space, as in Oniguruma (JavaScript's \s differs: it has U+FEFF and lacks U+0085). */
#include "tokenizer/tok_internal.h"

#include <pthread.h>
#include <string.h>

const char tok_o200k_pattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- GPT-2's byte <-> code point mapping ---- */

/* Bytes that stand for themselves: printable ASCII and printable Latin-1 except U+00AD. */
static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The others (0x00-0x20, 0x7F-0xA0, 0xAD) get U+0100 upwards, in byte order. */
uint32_t tok_byte_to_cp(unsigned b) {
    b &= 0xFF;
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 67; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 0x100 + 32) return (int)(cp - 0x100);
    if (cp <= 0x100 + 66) return (int)(cp - 0x100 - 33 + 0x7F);
    return cp == 0x100 + 67 ? 0xAD : -1;
}

size_t tok_bytes_to_pieces(const char *s, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = tok_byte_to_cp((unsigned char)s[i]);
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else { /* all stand-ins are below U+0800: two bytes */
            out[o++] = (char)(0xC0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

/* ---- Unicode classes ---- */

int tok_uc_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return cp >= 'a' ? TOK_UC_LOWER : TOK_UC_UPPER;
        if (cp >= '0' && cp <= '9') return TOK_UC_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return TOK_UC_SPACE;
        return TOK_UC_OTHER;
    }
    /* the last entry whose first code point is <= cp */
    int lo = 0, hi = tok_uc_table_len - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((tok_uc_table[mid] >> 3) <= cp) lo = mid;
        else hi = mid - 1;
    }
    return (int)(tok_uc_table[lo] & 7);
}

/* ---- the o200k scanner ---- */

#define C_UPPER (1 << TOK_UC_UPPER)
#define C_LOWER (1 << TOK_UC_LOWER)
#define C_LETTER (1 << TOK_UC_LETTER)
#define C_MARK (1 << TOK_UC_MARK)
#define C_NUMBER (1 << TOK_UC_NUMBER)
#define C_SPACE (1 << TOK_UC_SPACE)
#define SET_U (C_UPPER | C_LETTER | C_MARK) /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
#define SET_W (C_LOWER | C_LETTER | C_MARK) /* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
#define SET_LN (C_UPPER | C_LOWER | C_LETTER | C_NUMBER)

/* Class bits of the Basic Multilingual Plane, expanded once from the table: the scanner asks
 * for every char, and a binary search per char would cost more than the rest of encoding. */
static uint8_t bmp_bits[0x10000];
static pthread_once_t bmp_once = PTHREAD_ONCE_INIT;

static void build_bmp_bits(void) {
    for (int i = 0; i < tok_uc_table_len; i++) {
        uint32_t lo = tok_uc_table[i] >> 3;
        uint32_t hi = i + 1 < tok_uc_table_len ? tok_uc_table[i + 1] >> 3 : 0x110000;
        if (lo >= 0x10000) break;
        memset(bmp_bits + lo, 1 << (tok_uc_table[i] & 7), (hi < 0x10000 ? hi : 0x10000) - lo);
    }
}

/* Class bit of the char at s[i] (i < len, valid UTF-8); *next gets the position after it. */
static unsigned char_class(const unsigned char *s, size_t len, size_t i, size_t *next) {
    unsigned c = s[i];
    if (c < 0x80) {
        *next = i + 1;
        return bmp_bits[c];
    }
    size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c < 0xC2 || c > 0xF4 || n > len - i) { /* not reached on validated text */
        *next = i + 1;
        return 1u << TOK_UC_OTHER;
    }
    *next = i + n;
    if (n == 2) return bmp_bits[(c & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu)];
    if (n == 3) return bmp_bits[(c & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu)];
    return 1u << tok_uc_class((c & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu));
}

/* Alternative 1 after its optional prefix, from j: [U]*[W]+. Greedy U* then W+; when the char
 * after the U run is not in W, backtracking ends the match after the last W char inside the U
 * run (U and W share Lm, Lo and M). Returns the end, or 0 if there is no W char at all. */
static size_t upper_then_lower(const unsigned char *s, size_t len, size_t j) {
    size_t p = j, next, after_w = 0;
    while (p < len) {
        unsigned c = char_class(s, len, p, &next);
        if (!(c & SET_U)) {
            if (!(c & SET_W)) break;
            p = next; /* a lowercase letter: W+ runs on from here */
            while (p < len && (char_class(s, len, p, &next) & SET_W)) p = next;
            return p;
        }
        if (c & SET_W) after_w = next;
        p = next;
    }
    return after_w;
}

/* Alternative 2 after its prefix, from j: [U]+[W]*. Returns the end, or 0 (no U char at j). */
static size_t upper_run(const unsigned char *s, size_t len, size_t j) {
    size_t p = j, next;
    while (p < len && (char_class(s, len, p, &next) & SET_U)) p = next;
    if (p == j) return 0;
    while (p < len && (char_class(s, len, p, &next) & SET_W)) p = next;
    return p;
}

static int lower_is(unsigned char c, char want) { return (c | 0x20) == want; }

/* Optional contraction at e: 's 't 're 've 'm 'll 'd, case-insensitive with Unicode case folding
 * (so U+017F LONG S matches 's' as it does in Oniguruma). */
static size_t contraction(const unsigned char *s, size_t len, size_t e) {
    if (e + 1 >= len || s[e] != '\'') return e;
    unsigned char a = s[e + 1], b = e + 2 < len ? s[e + 2] : 0;
    if (lower_is(a, 's') || lower_is(a, 't') || lower_is(a, 'm') || lower_is(a, 'd')) return e + 2;
    if (a == 0xC5 && b == 0xBF) return e + 3; /* U+017F */
    if ((lower_is(a, 'r') || lower_is(a, 'v')) && lower_is(b, 'e')) return e + 3;
    if (lower_is(a, 'l') && lower_is(b, 'l')) return e + 3;
    return e;
}

size_t tok_pretok_o200k(const char *text, size_t len, size_t i) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n0, e, next;
    pthread_once(&bmp_once, build_bmp_bits);
    unsigned c0 = char_class(s, len, i, &n0);
    /* [^\r\n\p{L}\p{N}]: the optional prefix of alternatives 1 and 2 (tried first: greedy ?) */
    int prefix = !(c0 & SET_LN) && s[i] != '\r' && s[i] != '\n';
    if (prefix && n0 < len && (e = upper_then_lower(s, len, n0))) return contraction(s, len, e);
    if ((e = upper_then_lower(s, len, i))) return contraction(s, len, e);
    if (prefix && n0 < len && (e = upper_run(s, len, n0))) return contraction(s, len, e);
    if ((e = upper_run(s, len, i))) return contraction(s, len, e);
    if (c0 & C_NUMBER) { /* \p{N}{1,3} */
        e = n0;
        for (int k = 1; k < 3 && e < len && (char_class(s, len, e, &next) & C_NUMBER); k++) e = next;
        return e;
    }
    /* " ?[^\s\p{L}\p{N}]+[\r\n/]*" */
    size_t j = i;
    if (s[i] == ' ' && n0 < len && !(char_class(s, len, n0, &next) & (C_SPACE | SET_LN))) j = n0;
    if (j != i || !(c0 & C_SPACE)) {
        while (j < len && !(char_class(s, len, j, &next) & (C_SPACE | SET_LN))) j = next;
        while (j < len && (s[j] == '\r' || s[j] == '\n' || s[j] == '/')) j++;
        return j;
    }
    /* whitespace: "\s*[\r\n]+" ends after the run's last CR/LF; else "\s+(?!\S)" leaves the
     * run's last char for the next piece unless the run ends the text; else "\s+" */
    size_t k = i, last_start = i, after_nl = 0;
    while (k < len && (char_class(s, len, k, &next) & C_SPACE)) {
        if (s[k] == '\r' || s[k] == '\n') after_nl = next;
        last_start = k;
        k = next;
    }
    if (after_nl) return after_nl;
    if (k < len && last_start > i) return last_start;
    return k;
}
