/* JSON reader (RFC 8259). Values live in an arena of blocks; the children of every array or
 * object are one contiguous run, so access by index is O(1). Children are collected on a
 * growable scratch stack while their container is open and copied into the arena when it
 * closes. All decoded strings share one buffer the size of the input: a decoded string plus
 * its NUL never needs more bytes than its quoted source. */
#include "base/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct JsonValue {
    uint8_t type;
    uint8_t is_int; /* numbers: ival holds the exact integer literal */
    uint32_t keylen; /* object members: length of key */
    const char *key;
    union {
        double num;
        const char *str;
        JsonValue *items;
    } u;
    union {
        size_t len; /* string bytes or container items */
        long long ival;
    } n;
};

typedef struct Block {
    struct Block *next;
    size_t cap, used;
    JsonValue v[];
} Block;

struct Json {
    JsonValue root;
    char *strings;
    Block *blocks;
};

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    Json *doc;
    char *strp;            /* next free byte of doc->strings */
    JsonValue *stack;      /* scratch: children of open containers */
    size_t sp, scap;
    char *err;
    size_t errlen;
    int failed;
} Parser;

#define BLOCK_VALUES 4096

static int fail(Parser *p, size_t at, const char *fmt, ...) {
    if (p->failed) return -1;
    p->failed = 1;
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "json: %s at byte %zu", what, at);
    return -1;
}

static JsonValue *arena_alloc(Parser *p, size_t n) {
    Block *b = p->doc->blocks;
    if (!b || b->cap - b->used < n) {
        /* no document has more values than bytes, so small inputs get small blocks */
        size_t cap = p->len < BLOCK_VALUES ? p->len + 1 : BLOCK_VALUES;
        if (cap < n) cap = n;
        if (cap > (SIZE_MAX - sizeof(Block)) / sizeof(JsonValue)) return NULL;
        b = malloc(sizeof(Block) + cap * sizeof(JsonValue));
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = p->doc->blocks;
        p->doc->blocks = b;
    }
    JsonValue *v = b->v + b->used;
    b->used += n;
    return v;
}

static JsonValue *push(Parser *p) {
    if (p->sp == p->scap) {
        size_t cap = p->scap ? p->scap * 2 : 256;
        JsonValue *s = realloc(p->stack, cap * sizeof *s);
        if (!s) {
            fail(p, p->pos, "out of memory");
            return NULL;
        }
        p->stack = s;
        p->scap = cap;
    }
    JsonValue *v = &p->stack[p->sp++];
    memset(v, 0, sizeof *v);
    return v;
}

static void skip_ws(Parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Length of the valid UTF-8 sequence starting at s[0] (a byte >= 0x80), or 0 if invalid:
 * no overlong forms, no encoded surrogates, nothing above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* Parses the string whose opening quote is at p->pos; decoded bytes go to p->strp. */
static int parse_string(Parser *p, const char **out, size_t *outlen) {
    const unsigned char *s = p->s;
    size_t i = p->pos + 1, start = p->pos;
    char *o = p->strp, *begin = o;
    for (;;) {
        size_t run = i;
        while (run < p->len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        i = run;
        if (i >= p->len) return fail(p, start, "unterminated string");
        unsigned c = s[i];
        if (c == '"') break;
        if (c < 0x20) return fail(p, i, "control character in string");
        if (c >= 0x80) {
            size_t n = utf8_seq_len(s + i, p->len - i);
            if (!n) return fail(p, i, "invalid UTF-8 in string");
            memcpy(o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        /* backslash escape */
        if (i + 1 >= p->len) return fail(p, start, "unterminated string");
        unsigned e = s[i + 1];
        const char *simple = strchr("\"\\/bfnrt", (int)e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            *o++ = map[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        if (e != 'u') return fail(p, i, "invalid escape in string");
        unsigned cp, lo;
        if (p->len - i < 6 || hex4(s + i + 2, &cp)) return fail(p, i, "invalid \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, i, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p->len - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' || hex4(s + i + 8, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                return fail(p, i, "lone high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        o = put_utf8(o, cp);
        i += 6;
    }
    size_t n = (size_t)(o - begin);
    *o++ = '\0';
    p->strp = o;
    p->pos = i + 1;
    *out = begin;
    *outlen = n;
    return 0;
}

static int parse_number(Parser *p, JsonValue *v) {
    const unsigned char *s = p->s;
    size_t i = p->pos, start = i;
    int neg = 0, integral = 1;
    if (i < p->len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, start, "invalid number");
    if (s[i] == '0') {
        i++;
        if (i < p->len && s[i] >= '0' && s[i] <= '9') return fail(p, start, "leading zero in number");
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    size_t int_end = i;
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, start, "invalid number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, start, "invalid number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    v->type = JSON_NUMBER;
    size_t n = i - start;
    if (integral && int_end - start - (size_t)neg <= 18) {
        /* fast, exact path for plain integers */
        long long x = 0;
        for (size_t k = start + (size_t)neg; k < int_end; k++) x = x * 10 + (s[k] - '0');
        v->is_int = 1;
        v->n.ival = neg ? -x : x;
        v->u.num = neg ? -(double)x : (double)x;
        if (neg && x == 0) v->u.num = -0.0;
        p->pos = i;
        return 0;
    }
    char small[64], *buf = small;
    if (n >= sizeof small && !(buf = malloc(n + 1))) return fail(p, start, "out of memory");
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != small) free(buf);
    /* JSON has no infinity, so a literal beyond the double range is refused */
    if (isinf(d)) return fail(p, start, "number out of range");
    v->u.num = d;
    if (integral) {
        /* 19+ digit integer: accumulate exactly, with overflow checks */
        unsigned long long x = 0, lim = neg ? 9223372036854775808ull : 9223372036854775807ull;
        int ok = 1;
        for (size_t k = start + (size_t)neg; k < int_end && ok; k++) {
            unsigned dg = s[k] - '0';
            if (x > (lim - dg) / 10) ok = 0;
            else x = x * 10 + dg;
        }
        if (ok) {
            v->is_int = 1;
            v->n.ival = neg ? (long long)(0 - x) : (long long)x;
        }
    }
    p->pos = i;
    return 0;
}

static int match_word(Parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
        return fail(p, p->pos, p->pos >= p->len ? "unexpected end of input" : "invalid literal");
    p->pos += n;
    return 0;
}

static int parse_value(Parser *p, int depth);

/* Copies the container's children from the scratch stack into the arena. */
static int close_container(Parser *p, size_t base, JsonType type) {
    size_t n = p->sp - base;
    JsonValue *items = NULL;
    if (n) {
        items = arena_alloc(p, n);
        if (!items) return fail(p, p->pos, "out of memory");
        memcpy(items, p->stack + base, n * sizeof *items);
    }
    p->sp = base;
    JsonValue *v = push(p);
    if (!v) return -1;
    v->type = (uint8_t)type;
    v->u.items = items;
    v->n.len = n;
    return 0;
}

static int parse_array(Parser *p, int depth) {
    size_t base = p->sp;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return close_container(p, base, JSON_ARRAY);
    }
    for (;;) {
        if (parse_value(p, depth + 1)) return -1;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
        unsigned char c = p->s[p->pos++];
        if (c == ']') break;
        if (c != ',') return fail(p, p->pos - 1, "expected ',' or ']'");
    }
    return close_container(p, base, JSON_ARRAY);
}

static int parse_object(Parser *p, int depth) {
    size_t base = p->sp;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return close_container(p, base, JSON_OBJECT);
    }
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
        if (p->s[p->pos] != '"') return fail(p, p->pos, "expected string key");
        const char *key;
        size_t keylen;
        size_t keypos = p->pos;
        if (parse_string(p, &key, &keylen)) return -1;
        if (keylen > UINT32_MAX) return fail(p, keypos, "key too long");
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
        if (p->s[p->pos] != ':') return fail(p, p->pos, "expected ':'");
        p->pos++;
        if (parse_value(p, depth + 1)) return -1;
        p->stack[p->sp - 1].key = key;
        p->stack[p->sp - 1].keylen = (uint32_t)keylen;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
        unsigned char c = p->s[p->pos++];
        if (c == '}') break;
        if (c != ',') return fail(p, p->pos - 1, "expected ',' or '}'");
    }
    return close_container(p, base, JSON_OBJECT);
}

/* Parses one value and pushes it on the scratch stack. */
static int parse_value(Parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
    unsigned char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (depth >= JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than %d", JSON_MAX_DEPTH);
        return c == '{' ? parse_object(p, depth) : parse_array(p, depth);
    }
    JsonValue *v = push(p);
    if (!v) return -1;
    /* v stays valid: nothing below pushes before it is filled in */
    switch (c) {
    case '"': {
        const char *str;
        size_t n;
        if (parse_string(p, &str, &n)) return -1;
        v->type = JSON_STRING;
        v->u.str = str;
        v->n.len = n;
        return 0;
    }
    case 't': v->type = JSON_BOOL; v->n.len = 1; return match_word(p, "true");
    case 'f': v->type = JSON_BOOL; v->n.len = 0; return match_word(p, "false");
    case 'n': v->type = JSON_NULL; return match_word(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return fail(p, p->pos, "unexpected character");
    }
}

Json *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (len >= SIZE_MAX / 2) {
        if (err && errlen) snprintf(err, errlen, "json: input too large at byte 0");
        return NULL;
    }
    Json *doc = calloc(1, sizeof *doc);
    Parser p = {.s = (const unsigned char *)text, .len = len, .doc = doc, .err = err, .errlen = errlen};
    if (!doc || !(doc->strings = malloc(len + 1))) {
        free(doc);
        if (err && errlen) snprintf(err, errlen, "json: out of memory at byte 0");
        return NULL;
    }
    p.strp = doc->strings;
    int rc = parse_value(&p, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.pos != len) rc = fail(&p, p.pos, "trailing characters after document");
    }
    if (!rc) doc->root = p.stack[0];
    free(p.stack);
    if (rc) {
        json_free(doc);
        return NULL;
    }
    return doc;
}

Json *json_parse_file(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    int st_rc = fstat(fd, &st);
    if (st_rc != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, st_rc ? strerror(errno) : "not a regular file");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > ((uint64_t)1 << 31)) {
        snprintf(err, errlen, "%s: file too large for a JSON document", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    char msg[256];
    Json *doc = json_parse(buf, size, msg, sizeof msg);
    free(buf);
    if (!doc) snprintf(err, errlen, "%s: %s", path, msg);
    return doc;
}

void json_free(Json *doc) {
    if (!doc) return;
    Block *b = doc->blocks;
    while (b) {
        Block *next = b->next;
        free(b);
        b = next;
    }
    free(doc->strings);
    free(doc);
}

const JsonValue *json_root(const Json *doc) { return doc ? &doc->root : NULL; }

JsonType json_type(const JsonValue *v) { return v ? (JsonType)v->type : JSON_NULL; }

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->n.len; i++) {
        const JsonValue *m = &obj->u.items[i];
        if (m->keylen == n && memcmp(m->key, key, n) == 0) return m;
    }
    return NULL;
}

size_t json_count(const JsonValue *v) {
    return v && (v->type == JSON_ARRAY || v->type == JSON_OBJECT) ? v->n.len : 0;
}

const JsonValue *json_at(const JsonValue *arr, size_t i) {
    return arr && arr->type == JSON_ARRAY && i < arr->n.len ? &arr->u.items[i] : NULL;
}

const char *json_key_at(const JsonValue *obj, size_t i, size_t *len) {
    if (!obj || obj->type != JSON_OBJECT || i >= obj->n.len) return NULL;
    if (len) *len = obj->u.items[i].keylen;
    return obj->u.items[i].key;
}

const JsonValue *json_value_at(const JsonValue *obj, size_t i) {
    return obj && obj->type == JSON_OBJECT && i < obj->n.len ? &obj->u.items[i] : NULL;
}

const char *json_str(const JsonValue *v, size_t *len) {
    if (!v || v->type != JSON_STRING) return NULL;
    if (len) *len = v->n.len;
    return v->u.str;
}

double json_num(const JsonValue *v, double dflt) {
    return v && v->type == JSON_NUMBER ? v->u.num : dflt;
}

int json_bool(const JsonValue *v, int dflt) {
    return v && v->type == JSON_BOOL ? (int)v->n.len : dflt;
}

int json_int(const JsonValue *v, long long *out) {
    if (!v || v->type != JSON_NUMBER) return -1;
    if (v->is_int) {
        *out = v->n.ival;
        return 0;
    }
    double d = v->u.num;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return -1;
    *out = (long long)d;
    return 0;
}
