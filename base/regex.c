/* Regular expressions for adapter configs (base/regex.h): a recursive-descent parser to a
 * small tree, compiled to NFA instructions (Thompson) and simulated over state sets. */
#include "base/regex.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 2048
#define MAX_PROG 4096
#define MAX_DEPTH 64
#define MAX_COUNT 100 /* largest m, n of {m,n} */

enum { N_CLASS, N_CAT, N_ALT, N_REP, N_BOL, N_EOL, N_EMPTY };

typedef struct {
    int type, l, r, min, max; /* max -1: unbounded */
    uint8_t set[32];          /* N_CLASS: the bytes it accepts */
} Node;

enum { I_CLASS, I_SPLIT, I_JMP, I_BOL, I_EOL, I_MATCH };

typedef struct {
    int op, x, y, set; /* set: index into Regex.sets for I_CLASS */
} Inst;

struct Regex {
    int n;
    Inst *prog;
    uint8_t (*sets)[32];
    int n_sets;
};

typedef struct {
    const char *p, *end;
    Node *nodes;
    int n, depth;
    char *err;
    size_t errlen;
    int failed;
} Parser;

static int fail(Parser *ps, const char *fmt, ...) {
    if (!ps->failed && ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
    ps->failed = 1;
    return -1;
}

static int node(Parser *ps, int type) {
    if (ps->n >= MAX_NODES) return fail(ps, "regular expression is too long");
    Node *nd = &ps->nodes[ps->n];
    memset(nd, 0, sizeof *nd);
    nd->type = type;
    nd->l = nd->r = -1;
    return ps->n++;
}

static void set_add(uint8_t *set, int c) { set[c >> 3] |= (uint8_t)(1u << (c & 7)); }
static int set_has(const uint8_t *set, int c) { return set[c >> 3] >> (c & 7) & 1; }

/* A character for a message: itself when printable, else \xNN. */
static const char *shown(int c, char *b) {
    if (c >= 0x20 && c < 0x7f) snprintf(b, 8, "%c", c);
    else snprintf(b, 8, "\\x%02x", c & 0xff);
    return b;
}

static int is_word(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* \d \w \s and their negations into set; 0, or -1 when c is not one of them. */
static int class_escape(int c, uint8_t *set) {
    int neg = c == 'D' || c == 'W' || c == 'S', lc = neg ? c + 32 : c;
    if (lc != 'd' && lc != 'w' && lc != 's') return -1;
    for (int b = 0; b < 256; b++) {
        int in = lc == 'd' ? b >= '0' && b <= '9' : lc == 'w' ? is_word(b) : is_space(b);
        if (in != neg) set_add(set, b);
    }
    return 0;
}

/* An escaped character that stands for itself: punctuation (Python accepts any non-alphanumeric
 * escape as the literal). */
static int literal_escape(int c) { return c >= 0x20 && c < 0x7f && !is_word(c); }

static int parse_alt(Parser *ps);

static int parse_class(Parser *ps, uint8_t *set) { /* after '[' */
    char sb[16];
    int neg = 0, first = 1;
    if (ps->p < ps->end && *ps->p == '^') { neg = 1; ps->p++; }
    uint8_t s[32] = {0};
    while (1) {
        if (ps->p >= ps->end) return fail(ps, "regular expression: unterminated [");
        int c = (unsigned char)*ps->p++;
        if (c == ']' && !first) break;
        first = 0;
        if (c == '\\') {
            if (ps->p >= ps->end) return fail(ps, "regular expression ends with a backslash");
            int e = (unsigned char)*ps->p++;
            if (class_escape(e, s) == 0) continue;
            if (!literal_escape(e)) return fail(ps, "regular expression: unsupported escape \\%s", shown(e, sb));
            c = e;
        } else if (c == '[' && ps->p < ps->end && (*ps->p == ':' || *ps->p == '=' || *ps->p == '.')) {
            return fail(ps, "regular expression: unsupported [%c class", *ps->p);
        }
        int hi = c;
        if (ps->p + 1 < ps->end && *ps->p == '-' && ps->p[1] != ']') {
            ps->p++;
            hi = (unsigned char)*ps->p++;
            if (hi == '\\') {
                if (ps->p >= ps->end) return fail(ps, "regular expression ends with a backslash");
                hi = (unsigned char)*ps->p++;
                if (!literal_escape(hi)) return fail(ps, "regular expression: unsupported range end \\%s", shown(hi, sb));
            }
            if (hi < c) return fail(ps, "regular expression: bad range %s-%s", shown(c, sb), shown(hi, sb + 8));
        }
        for (int b = c; b <= hi; b++) set_add(s, b);
    }
    for (int b = 0; b < 32; b++) set[b] = neg ? (uint8_t)~s[b] : s[b];
    return 0;
}

static int parse_atom(Parser *ps) {
    char sb[16];
    int c = (unsigned char)*ps->p++, k;
    switch (c) {
    case '(': {
        if (ps->p < ps->end && *ps->p == '?') {
            if (ps->p + 1 < ps->end && ps->p[1] == ':') ps->p += 2;
            else return fail(ps, "regular expression: (?%s... (lookaround, flags, named groups) is not supported",
                             shown(ps->p + 1 < ps->end ? (unsigned char)ps->p[1] : ' ', sb));
        }
        if (++ps->depth > MAX_DEPTH) return fail(ps, "regular expression nests too deeply");
        k = parse_alt(ps);
        ps->depth--;
        if (k < 0) return -1;
        if (ps->p >= ps->end || *ps->p != ')') return fail(ps, "regular expression: missing )");
        ps->p++;
        return k;
    }
    case '^': return node(ps, N_BOL);
    case '$': return node(ps, N_EOL);
    case '*': case '+': case '?': case '{':
        return fail(ps, "regular expression: nothing to repeat before '%c'", c);
    case ')': return fail(ps, "regular expression: unbalanced )");
    }
    if ((k = node(ps, N_CLASS)) < 0) return -1;
    uint8_t *set = ps->nodes[k].set;
    if (c == '.') {
        memset(set, 0xff, 32);
        set[1] &= (uint8_t)~(1u << 2); /* not '\n' */
    } else if (c == '[') {
        if (parse_class(ps, set)) return -1;
    } else if (c == '\\') {
        if (ps->p >= ps->end) return fail(ps, "regular expression ends with a backslash");
        int e = (unsigned char)*ps->p++;
        if (class_escape(e, set) != 0) {
            if (!literal_escape(e)) return fail(ps, "regular expression: unsupported escape \\%s", shown(e, sb));
            set_add(set, e);
        }
    } else {
        set_add(set, c);
    }
    return k;
}

static int parse_number(Parser *ps, int *v) {
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return -1;
    long n = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        n = n * 10 + (*ps->p++ - '0');
        if (n > MAX_COUNT) return fail(ps, "regular expression: a count above %d", MAX_COUNT);
    }
    *v = (int)n;
    return 0;
}

static int parse_repeat(Parser *ps) {
    int k = parse_atom(ps);
    while (k >= 0 && ps->p < ps->end) {
        int c = *ps->p, min, max;
        if (c == '*') min = 0, max = -1;
        else if (c == '+') min = 1, max = -1;
        else if (c == '?') min = 0, max = 1;
        else if (c == '{') {
            const char *save = ps->p++;
            if (parse_number(ps, &min)) {
                if (ps->failed) return -1;
                ps->p = save; /* Python: a '{' that is not a count is a literal; refuse instead */
                return fail(ps, "regular expression: '{' that is not a count {m,n}");
            }
            max = min;
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                max = -1;
                if (ps->p < ps->end && *ps->p != '}' && parse_number(ps, &max))
                    return ps->failed ? -1 : fail(ps, "regular expression: bad {m,n}");
            }
            if (ps->p >= ps->end || *ps->p != '}') return fail(ps, "regular expression: bad {m,n}");
            if (max >= 0 && max < min) return fail(ps, "regular expression: {%d,%d} has max < min", min, max);
        } else break;
        ps->p++;
        if (ps->p < ps->end && *ps->p == '?') ps->p++; /* lazy: the same for fullmatch */
        if (ps->p < ps->end && (*ps->p == '*' || *ps->p == '+' || (*ps->p == '?' && c != '?')))
            return fail(ps, "regular expression: multiple repeat");
        int r = node(ps, N_REP);
        if (r < 0) return -1;
        ps->nodes[r].l = k;
        ps->nodes[r].min = min;
        ps->nodes[r].max = max;
        k = r;
    }
    return k;
}

static int parse_cat(Parser *ps) {
    int k = -2; /* none yet */
    while (ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
        int a = parse_repeat(ps);
        if (a < 0) return -1;
        if (k == -2) { k = a; continue; }
        int c = node(ps, N_CAT);
        if (c < 0) return -1;
        ps->nodes[c].l = k;
        ps->nodes[c].r = a;
        k = c;
    }
    return k == -2 ? node(ps, N_EMPTY) : k;
}

static int parse_alt(Parser *ps) {
    int k = parse_cat(ps);
    while (k >= 0 && ps->p < ps->end && *ps->p == '|') {
        ps->p++;
        int b = parse_cat(ps);
        if (b < 0) return -1;
        int a = node(ps, N_ALT);
        if (a < 0) return -1;
        ps->nodes[a].l = k;
        ps->nodes[a].r = b;
        k = a;
    }
    return k;
}

typedef struct {
    Regex *re;
    const Node *nodes;
    int failed;
} Emit;

static int emit(Emit *e, int op, int x, int y) {
    if (e->re->n >= MAX_PROG) {
        e->failed = 1;
        return 0;
    }
    e->re->prog[e->re->n] = (Inst){op, x, y, 0};
    return e->re->n++;
}

static void gen(Emit *e, int k, int depth) {
    const Node *nd = &e->nodes[k];
    if (e->failed || depth > 2 * MAX_DEPTH + MAX_NODES) return;
    switch (nd->type) {
    case N_CLASS: {
        int i = emit(e, I_CLASS, 0, 0);
        if (e->failed) return;
        e->re->prog[i].set = k; /* sets are indexed by node */
        break;
    }
    case N_CAT: gen(e, nd->l, depth + 1); gen(e, nd->r, depth + 1); break;
    case N_ALT: {
        int s = emit(e, I_SPLIT, 0, 0);
        e->re->prog[s].x = e->re->n;
        gen(e, nd->l, depth + 1);
        int j = emit(e, I_JMP, 0, 0);
        if (e->failed) return;
        e->re->prog[s].y = e->re->n;
        gen(e, nd->r, depth + 1);
        e->re->prog[j].x = e->re->n;
        break;
    }
    case N_REP: {
        for (int i = 0; i < nd->min && !e->failed; i++) gen(e, nd->l, depth + 1);
        if (nd->max < 0) {
            int s = emit(e, I_SPLIT, 0, 0);
            e->re->prog[s].x = e->re->n;
            gen(e, nd->l, depth + 1);
            emit(e, I_JMP, s, 0);
            if (!e->failed) e->re->prog[s].y = e->re->n;
        } else {
            int splits[MAX_COUNT], ns = 0;
            for (int i = nd->min; i < nd->max && !e->failed; i++) {
                splits[ns] = emit(e, I_SPLIT, 0, 0);
                e->re->prog[splits[ns]].x = e->re->n;
                ns++;
                gen(e, nd->l, depth + 1);
            }
            for (int i = 0; i < ns && !e->failed; i++) e->re->prog[splits[i]].y = e->re->n;
        }
        break;
    }
    case N_BOL: emit(e, I_BOL, 0, 0); break;
    case N_EOL: emit(e, I_EOL, 0, 0); break;
    default: break;
    }
}

Regex *regex_compile(const char *pattern, size_t len, char *err, size_t errlen) {
    Parser ps = {pattern, pattern + len, NULL, 0, 0, err, errlen, 0};
    Regex *re = calloc(1, sizeof *re);
    ps.nodes = malloc(MAX_NODES * sizeof *ps.nodes);
    if (re) re->prog = malloc(MAX_PROG * sizeof *re->prog);
    if (!re || !ps.nodes || !re->prog) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        goto bad;
    }
    int root = parse_alt(&ps);
    if (root >= 0 && ps.p < ps.end) root = fail(&ps, "regular expression: unbalanced )");
    if (root < 0) goto bad;
    Emit e = {re, ps.nodes, 0};
    gen(&e, root, 0);
    emit(&e, I_MATCH, 0, 0);
    if (e.failed) {
        if (err && errlen) snprintf(err, errlen, "regular expression is too long once its counts are expanded");
        goto bad;
    }
    /* Keep only the classes' byte sets. */
    re->sets = malloc((size_t)(re->n ? re->n : 1) * sizeof *re->sets);
    if (!re->sets) goto bad;
    for (int i = 0; i < re->n; i++)
        if (re->prog[i].op == I_CLASS) {
            memcpy(re->sets[re->n_sets], ps.nodes[re->prog[i].set].set, 32);
            re->prog[i].set = re->n_sets++;
        }
    free(ps.nodes);
    return re;
bad:
    free(ps.nodes);
    regex_free(re);
    return NULL;
}

void regex_free(Regex *re) {
    if (!re) return;
    free(re->prog);
    free(re->sets);
    free(re);
}

/* Adds pc and every state reachable from it without consuming a byte (at position i of n) to
 * list; mark[] (stamped with gen) keeps each state once per step. */
static void add_state(const Regex *re, int *list, int *nl, int *mark, int gen, int *stack, int pc,
                      size_t i, size_t n) {
    int sp = 0;
    stack[sp++] = pc;
    while (sp) {
        pc = stack[--sp];
        if (mark[pc] == gen) continue;
        mark[pc] = gen;
        const Inst *in = &re->prog[pc];
        switch (in->op) {
        case I_JMP: stack[sp++] = in->x; break;
        case I_SPLIT: stack[sp++] = in->y; stack[sp++] = in->x; break;
        case I_BOL: if (i == 0) stack[sp++] = pc + 1; break;
        case I_EOL: if (i == n) stack[sp++] = pc + 1; break;
        default: list[(*nl)++] = pc; break;
        }
    }
}

int regex_fullmatch(const Regex *re, const char *s, size_t n) {
    int m = re->n, *buf = malloc((size_t)m * 3 * sizeof *buf), matched = 0;
    if (!buf) return 0;
    int *cur = buf, *next = buf + m, *mark = buf + 2 * m, nc = 0, gen = 1;
    /* The stack holds at most two entries per state: SPLIT pushes two, each state is expanded once. */
    int *stack2 = realloc(NULL, (size_t)(2 * m + 2) * sizeof *stack2);
    if (!stack2) {
        free(buf);
        return 0;
    }
    for (int i = 0; i < m; i++) mark[i] = 0;
    add_state(re, cur, &nc, mark, gen, stack2, 0, 0, n);
    for (size_t i = 0;; i++) {
        if (i == n) {
            for (int k = 0; k < nc; k++)
                if (re->prog[cur[k]].op == I_MATCH) matched = 1;
            break;
        }
        int nn = 0, c = (unsigned char)s[i];
        gen++;
        for (int k = 0; k < nc; k++) {
            const Inst *in = &re->prog[cur[k]];
            if (in->op == I_CLASS && set_has(re->sets[in->set], c))
                add_state(re, next, &nn, mark, gen, stack2, cur[k] + 1, i + 1, n);
        }
        int *t = cur;
        cur = next;
        next = t;
        nc = nn;
        if (!nc) break;
    }
    free(stack2);
    free(buf);
    return matched;
}
