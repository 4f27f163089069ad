#include "app/lineedit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* The terminal's settings while a line is read in raw mode, for the signal handlers: a SIGTERM
 * mid-read must not leave the user's shell without echo. */
static struct termios saved_tio;
static int saved_fd = -1;
static struct sigaction old_term, old_hup, old_quit;

static void restore_and_reraise(int sig) {
    if (saved_fd >= 0) tcsetattr(saved_fd, TCSAFLUSH, &saved_tio);
    saved_fd = -1;
    signal(sig, SIG_DFL); /* then die of the signal, as the default action would */
    raise(sig);
}

int lineedit_usable(int fd) {
    const char *term = getenv("TERM");
    return isatty(fd) && term && *term && strcmp(term, "dumb") != 0;
}

void lineedit_init(LineEdit *le, int fd_in, int fd_out, size_t max_len) {
    memset(le, 0, sizeof *le);
    le->fd_in = fd_in;
    le->fd_out = fd_out;
    le->max_len = max_len;
}

void lineedit_free(LineEdit *le) {
    for (int i = 0; i < le->n_hist; i++) free(le->hist[i]);
    free(le->hist);
    memset(le, 0, sizeof *le);
}

static int raw_on(LineEdit *le) {
    struct termios t;
    if (tcgetattr(le->fd_in, &saved_tio)) return -1;
    t = saved_tio;
    /* no echo, byte at a time, Ctrl-C/Ctrl-Z/Ctrl-S as bytes (ISIG, IXON off), CR not turned into
     * NL (Enter is read as '\r'); output processing stays on so '\n' still starts a line */
    t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | ISIG | IEXTEN);
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL | INLCR | ISTRIP | BRKINT);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    saved_fd = le->fd_in;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sigaction(SIGQUIT, &sa, &old_quit);
    if (tcsetattr(le->fd_in, TCSAFLUSH, &t)) {
        saved_fd = -1;
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        return -1;
    }
    return 0;
}

static void raw_off(LineEdit *le) {
    tcsetattr(le->fd_in, TCSAFLUSH, &saved_tio);
    saved_fd = -1;
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
}

typedef struct {
    char *b;
    size_t n, cap, pos; /* bytes, capacity, cursor (a byte offset at a character boundary) */
} Line;

static int line_set(Line *l, const char *s) {
    size_t k = strlen(s);
    if (k + 1 > l->cap) {
        char *p = realloc(l->b, k + 1);
        if (!p) return -1;
        l->b = p;
        l->cap = k + 1;
    }
    memcpy(l->b, s, k + 1);
    l->n = l->pos = k;
    return 0;
}

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* The byte offset of the character before / after pos. */
static size_t prev_char(const Line *l, size_t pos) {
    if (pos == 0) return 0;
    do pos--;
    while (pos > 0 && cont((unsigned char)l->b[pos]));
    return pos;
}

static size_t next_char(const Line *l, size_t pos) {
    if (pos >= l->n) return l->n;
    do pos++;
    while (pos < l->n && cont((unsigned char)l->b[pos]));
    return pos;
}

/* Terminal columns of bytes [a, b): one per character (wide CJK characters count as one; the
 * cursor may then sit a column off until the next redraw, never in a wrong place in the text). */
static size_t columns(const char *s, size_t a, size_t b) {
    size_t c = 0;
    for (size_t i = a; i < b; i++) c += !cont((unsigned char)s[i]);
    return c;
}

static void out(LineEdit *le, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(le->fd_out, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void outs(LineEdit *le, const char *s) { out(le, s, strlen(s)); }

/* Redraw: to column 0, the prompt and the line, clear to the end, cursor back to pos. */
static void redraw(LineEdit *le, const char *prompt, const Line *l) {
    outs(le, "\r");
    outs(le, prompt);
    out(le, l->b, l->n);
    outs(le, "\x1b[K");
    size_t back = columns(l->b, l->pos, l->n);
    if (back) {
        char esc[32];
        snprintf(esc, sizeof esc, "\x1b[%zuD", back);
        outs(le, esc);
    }
}

static int hist_add(LineEdit *le, const char *s) {
    if (!*s || (le->n_hist && !strcmp(le->hist[le->n_hist - 1], s))) return 0;
    if (le->n_hist == le->cap_hist) {
        int cap = le->cap_hist ? 2 * le->cap_hist : 16;
        char **h = realloc(le->hist, (size_t)cap * sizeof *h);
        if (!h) return -1;
        le->hist = h;
        le->cap_hist = cap;
    }
    char *d = strdup(s);
    if (!d) return -1;
    le->hist[le->n_hist++] = d;
    return 0;
}

static int read_byte(LineEdit *le, unsigned char *c) {
    for (;;) {
        ssize_t r = read(le->fd_in, c, 1);
        if (r == 1) return 1;
        if (r < 0 && errno == EINTR) continue;
        return 0;
    }
}

/* Keys after decoding escape sequences. */
enum { K_NONE = 256, K_LEFT, K_RIGHT, K_HOME, K_END, K_UP, K_DOWN, K_DEL };

/* ESC [ A..D, H, F; ESC [ n ~ (1/7 home, 4/8 end, 3 delete); ESC O A..D, H, F. */
static int read_escape(LineEdit *le) {
    unsigned char a, b;
    if (!read_byte(le, &a) || (a != '[' && a != 'O') || !read_byte(le, &b)) return K_NONE;
    if (b >= '0' && b <= '9') {
        int n = b - '0';
        unsigned char c;
        while (read_byte(le, &c) && c >= '0' && c <= '9') n = n * 10 + (c - '0');
        if (c != '~') return K_NONE; /* e.g. ESC [ 1 ; 5 C (Ctrl-arrow): ignored */
        return n == 1 || n == 7 ? K_HOME : n == 4 || n == 8 ? K_END : n == 3 ? K_DEL : K_NONE;
    }
    switch (b) {
    case 'A': return K_UP;
    case 'B': return K_DOWN;
    case 'C': return K_RIGHT;
    case 'D': return K_LEFT;
    case 'H': return K_HOME;
    case 'F': return K_END;
    default: return K_NONE;
    }
}

int lineedit_read(LineEdit *le, const char *prompt, char **line) {
    *line = NULL;
    Line l = {0};
    char *scratch = NULL; /* the line being typed while the history is browsed */
    int idx = le->n_hist, rc = LE_ERROR;
    if (line_set(&l, "") || raw_on(le)) {
        free(l.b);
        return LE_ERROR;
    }
    redraw(le, prompt, &l);
    if (le->intr && *le->intr) rc = LE_INTERRUPT;
    for (; rc != LE_INTERRUPT;) {
        unsigned char c;
        if (!read_byte(le, &c)) {
            rc = l.n ? LE_LINE : LE_EOF; /* the terminal went away: a typed line still counts */
            break;
        }
        int k = c == 27 ? read_escape(le) : c;
        if (k == '\r' || k == '\n') {
            rc = LE_LINE;
            break;
        }
        if (k == 3) { /* Ctrl-C */
            rc = LE_INTERRUPT;
            break;
        }
        if (k == 4 && l.n == 0) { /* Ctrl-D on an empty line: end of input */
            rc = LE_EOF;
            break;
        }
        size_t p;
        switch (k) {
        case K_LEFT: case 2: l.pos = prev_char(&l, l.pos); break;  /* Ctrl-B */
        case K_RIGHT: case 6: l.pos = next_char(&l, l.pos); break; /* Ctrl-F */
        case K_HOME: case 1: l.pos = 0; break;                    /* Ctrl-A */
        case K_END: case 5: l.pos = l.n; break;                   /* Ctrl-E */
        case 127: case 8: /* backspace */
            if (l.pos == 0) break;
            p = prev_char(&l, l.pos);
            memmove(l.b + p, l.b + l.pos, l.n - l.pos + 1);
            l.n -= l.pos - p;
            l.pos = p;
            break;
        case K_DEL: case 4: /* Delete, or Ctrl-D on a non-empty line */
            p = next_char(&l, l.pos);
            memmove(l.b + l.pos, l.b + p, l.n - p + 1);
            l.n -= p - l.pos;
            break;
        case 11: l.b[l.n = l.pos] = 0; break; /* Ctrl-K: delete to the end */
        case 21: /* Ctrl-U: delete to the start */
            memmove(l.b, l.b + l.pos, l.n - l.pos + 1);
            l.n -= l.pos;
            l.pos = 0;
            break;
        case K_UP: case 16: case K_DOWN: case 14: { /* Ctrl-P, Ctrl-N */
            int to = idx + (k == K_UP || k == 16 ? -1 : 1);
            if (to < 0 || to > le->n_hist) break;
            if (idx == le->n_hist) {
                free(scratch);
                scratch = strdup(l.b);
            }
            idx = to;
            if (line_set(&l, idx < le->n_hist ? le->hist[idx] : scratch ? scratch : "")) goto out;
            break;
        }
        default:
            if (k < 0x20 || k >= K_NONE) break; /* other control keys are ignored */
            if (l.n + 1 > le->max_len) {
                outs(le, "\a");
                break;
            }
            if (l.n + 2 > l.cap) {
                char *nb = realloc(l.b, l.cap * 2 + 16);
                if (!nb) goto out;
                l.b = nb;
                l.cap = l.cap * 2 + 16;
            }
            memmove(l.b + l.pos + 1, l.b + l.pos, l.n - l.pos + 1);
            l.b[l.pos++] = (char)k;
            l.n++;
            /* the first bytes of a multi-byte character: draw once it is whole, so the terminal
             * never sees half a character (an invalid sequence is drawn as it comes) */
            if (c >= 0x80) {
                size_t s = prev_char(&l, l.pos);
                unsigned char lead = (unsigned char)l.b[s];
                size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 1;
                if (l.pos - s < need) continue;
            }
            break;
        }
        redraw(le, prompt, &l);
    }
out:
    l.pos = l.n;
    redraw(le, prompt, &l);
    outs(le, rc == LE_INTERRUPT ? "^C\r\n" : "\r\n");
    raw_off(le);
    free(scratch);
    if (rc == LE_LINE) {
        hist_add(le, l.b);
        *line = l.b;
    } else {
        free(l.b);
    }
    return rc;
}
