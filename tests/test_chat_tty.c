/* phi -i on a pseudo-terminal: the line editor (left/home/delete/backspace edits, UTF-8 aware
 * cursor, up-arrow history), Ctrl-C mid-reply back to the prompt, a bad-UTF-8 line refused, Ctrl-D
 * and Ctrl-C twice ending the chat, and the terminal's settings restored afterwards. What reached
 * the model is checked by comparing the replies with a run of the intended text through a pipe
 * (greedy, so the same text gives the same reply). Every wait has a deadline: a hang is a FAIL. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"

#define WAIT_S 30.0 /* per expected output; a tiny model answers in well under a second */

static const char *phi, *model;
static char tmpdir[512];

typedef struct {
    int master;
    pid_t pid;
    char *out; /* everything the terminal showed, '\r' removed */
    size_t n, cap;
} Tty;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int tty_start(Tty *t, char *const argv[]) {
    memset(t, 0, sizeof *t);
    t->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (t->master < 0 || grantpt(t->master) || unlockpt(t->master)) return -1;
    const char *slave = ptsname(t->master);
    if (!slave) return -1;
    t->pid = fork();
    if (t->pid < 0) return -1;
    if (t->pid == 0) {
        setsid(); /* a new session whose controlling terminal is the pty: Ctrl-C sends SIGINT */
        int s = open(slave, O_RDWR);
        if (s < 0) _exit(126);
        ioctl(s, TIOCSCTTY, 0);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2) close(s);
        close(t->master);
        setenv("TERM", "xterm", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return 0;
}

/* Read what is there within `wait` seconds; 0 at end (the child closed the terminal). */
static int tty_pump(Tty *t, double wait) {
    struct pollfd p = {t->master, POLLIN, 0};
    int r = poll(&p, 1, (int)(wait * 1000));
    if (r <= 0) return 1;
    char buf[4096];
    ssize_t k = read(t->master, buf, sizeof buf);
    if (k <= 0) return 0; /* EIO once the slave side is closed */
    if (t->n + (size_t)k + 1 > t->cap) {
        t->cap = (t->n + (size_t)k + 1) * 2;
        t->out = realloc(t->out, t->cap);
        if (!t->out) abort();
    }
    for (ssize_t i = 0; i < k; i++)
        if (buf[i] != '\r') t->out[t->n++] = buf[i];
    t->out[t->n] = 0;
    return 1;
}

static int count(const char *hay, const char *needle) {
    int c = 0;
    for (const char *p = hay; hay && (p = strstr(p, needle)); p += strlen(needle)) c++;
    return c;
}

/* Wait until `needle` has appeared at least `times` times; 0 on time-out. */
static int tty_wait(Tty *t, const char *needle, int times) {
    double end = now() + WAIT_S;
    while (now() < end) {
        if (t->out && count(t->out, needle) >= times) return 1;
        if (!tty_pump(t, 0.05)) break;
    }
    return t->out && count(t->out, needle) >= times;
}

static void tty_keys(Tty *t, const char *keys) {
    /* one key at a time with a pause, as typed: the editor reads byte by byte either way */
    for (const char *k = keys; *k;) {
        size_t n = *k == 27 ? strcspn(k + 1, "\x1b") + 1 : 1; /* an escape sequence goes whole */
        if (write(t->master, k, n) < 0) return;
        k += n;
        tty_pump(t, 0.005);
    }
}

/* Wait for the child (killed after WAIT_S); its exit status, or -1 if it had to be killed. */
static int tty_end(Tty *t, struct termios *after) {
    double end = now() + WAIT_S;
    int st = 0, got = 0;
    while (now() < end && !(got = waitpid(t->pid, &st, WNOHANG) == t->pid)) tty_pump(t, 0.05);
    if (after) tcgetattr(t->master, after); /* the terminal's settings as phi left them */
    close(t->master);
    if (!got) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The stdout of phi -i given `input` through a pipe (the replies, one line each). */
static char *pipe_run(const char *input, const char *extra) {
    char in[600], out[600], cmd[2048];
    snprintf(in, sizeof in, "%s/in", tmpdir);
    snprintf(out, sizeof out, "%s/out", tmpdir);
    FILE *f = fopen(in, "wb");
    if (!f) return NULL;
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -m %s -i --temp 0 -t 1 %s < %s > %s 2> /dev/null", phi, model, extra, in, out);
    if (system(cmd) != 0) return NULL;
    size_t len;
    char err[256];
    return read_file(out, &len, err, sizeof err);
}

/* The n-th line (0-based) of s, malloc'd. */
static char *nth_line(const char *s, int n) {
    for (; s && n > 0; n--) s = (s = strchr(s, '\n')) ? s + 1 : NULL;
    return s ? strndup(s, strcspn(s, "\n")) : NULL;
}

/* An empty prompt being drawn: carriage return (removed), "> ", clear to the end of the line. */
#define PROMPT "> \x1b[K"
#define LEFT "\x1b[D"
#define HOME "\x1b[H"
#define DEL "\x1b[3~"
#define UP "\x1b[A"

static void editing_and_history(void) {
    /* the intended messages through a pipe; an edit that went wrong would change the reply */
    char *want = pipe_run("hello world\nhello world\nca\xc3\xa9!\n", "-n 8 --ignore-eos");
    char *wrong = pipe_run("ello wxorld\n", "-n 8 --ignore-eos");
    char *r1 = nth_line(want, 0), *r2 = nth_line(want, 1), *r3 = nth_line(want, 2), *w1 = nth_line(wrong, 0);
    if (!t_check(r1 && r2 && r3 && w1 && *r1 && *r2 && *r3 && strcmp(r1, w1), "tty_pipe_references",
                 "'%s' / '%s' / '%s' (unedited: '%s')", r1 ? r1 : "?", r2 ? r2 : "?", r3 ? r3 : "?", w1 ? w1 : "?"))
        goto done;
    Tty t;
    char *argv[] = {(char *)phi, "-m", (char *)model, "-i", "--temp", "0", "-t", "1", "-n", "8", "--ignore-eos", NULL};
    if (!t_check(tty_start(&t, argv) == 0, "tty_start", "%s", strerror(errno))) goto done;
    int ok = tty_wait(&t, PROMPT, 1);
    /* "ello wxorld": 4 left, backspace (the x); home, "hz", left, delete (the z); Ctrl-E, Enter */
    tty_keys(&t, "ello wxorld" LEFT LEFT LEFT LEFT "\x7f" HOME "hz" LEFT DEL "\x05\r");
    ok = ok && tty_wait(&t, PROMPT, 2);
    t_check(ok && strstr(t.out, r1) != NULL, "tty_edit_left_home_delete", "reply '%s' %s", r1,
            ok ? "" : "(no second prompt)");
    tty_keys(&t, UP "\r"); /* the previous line again */
    ok = ok && tty_wait(&t, PROMPT, 3);
    const char *after1 = ok ? strstr(t.out, r1) : NULL;
    t_check(after1 && strstr(after1 + strlen(r1), r2) != NULL, "tty_up_arrow_history", "second reply '%s'", r2);
    /* "caf\xc3\xa9!" then two lefts (over '!' and the two-byte e-acute: one character) and a
     * backspace removes the f; a byte-wise cursor would cut the e-acute and the line be refused */
    tty_keys(&t, "caf\xc3\xa9!" LEFT LEFT "\x7f\r");
    ok = ok && tty_wait(&t, PROMPT, 4);
    t_check(ok && strstr(t.out, r3) && !strstr(t.out, "not sent"), "tty_utf8_cursor", "reply '%s'", r3);
    /* a line of invalid UTF-8 is refused and the chat goes on */
    tty_keys(&t, "\xff\xfe bad\r");
    ok = ok && tty_wait(&t, "not sent", 1) && tty_wait(&t, PROMPT, 5);
    t_check(ok, "tty_bad_utf8_refused", "%s", ok ? "" : t.out);
    tty_keys(&t, "\x04"); /* Ctrl-D on an empty line: end of input */
    struct termios after;
    int rc = tty_end(&t, &after);
    t_check(rc == 0, "tty_ctrl_d_ends_chat", "exit status %d", rc);
    t_check((after.c_lflag & (ECHO | ICANON | ISIG)) == (ECHO | ICANON | ISIG), "tty_terminal_restored",
            "lflag %#lx", (unsigned long)after.c_lflag);
    free(t.out);
done:
    free(want), free(wrong), free(r1), free(r2), free(r3), free(w1);
}

static void ctrl_c(void) {
    /* --ref (the scalar kernels) makes a reply of the whole context take seconds: long enough
     * for the Ctrl-C to land mid-reply */
    Tty t;
    char *argv[] = {(char *)phi, "-m", (char *)model, "-i", "--temp", "0", "-t", "1", "--ref", "-n", "-1",
                    "--ignore-eos", NULL};
    if (!t_check(tty_start(&t, argv) == 0, "tty_start_ref", "%s", strerror(errno))) return;
    int ok = tty_wait(&t, PROMPT, 1);
    tty_keys(&t, "tell me a story\r");
    /* the reply has begun: 20 bytes after the line's last redraw and its newline (raw mode is
     * off by then, so the Ctrl-C is a signal, not a byte the editor reads) */
    const char *echo = "tell me a story\x1b[K\n";
    ok = ok && tty_wait(&t, echo, 1);
    double end = now() + WAIT_S;
    while (ok && now() < end) {
        const char *e = strstr(t.out, echo);
        if (strlen(e + strlen(echo)) >= 20) break;
        tty_pump(&t, 0.02);
    }
    tty_keys(&t, "\x03");
    ok = ok && tty_wait(&t, "reply stopped (Ctrl-C)", 1) && tty_wait(&t, PROMPT, 2);
    t_check(ok, "tty_ctrl_c_mid_reply", "%s", ok ? "back at the prompt" : t.out);
    /* Ctrl-C twice at the prompt ends the chat */
    tty_keys(&t, "abc\x03");
    ok = ok && tty_wait(&t, "Ctrl-C again", 1);
    tty_keys(&t, "\x03");
    int rc = tty_end(&t, NULL);
    t_check(ok && rc == 0, "tty_ctrl_c_twice_exits", "exit status %d", rc);
    free(t.out);
}

static void overflow_and_sigterm(void) {
    /* a small context: the oldest messages go with a notice and the chat goes on */
    Tty t;
    char *argv[] = {(char *)phi, "-m", (char *)model, "-i", "--temp", "0", "-t", "1", "-c", "64", "-n", "12",
                    "--ignore-eos", NULL};
    if (!t_check(tty_start(&t, argv) == 0, "tty_start_small_context", "%s", strerror(errno))) return;
    int ok = tty_wait(&t, PROMPT, 1);
    for (int i = 0; ok && i < 4; i++) {
        tty_keys(&t, "tell me about the sea\r");
        ok = tty_wait(&t, PROMPT, i + 2);
    }
    t_check(ok && strstr(t.out, "context full: dropped"), "tty_context_overflow", "%s",
            ok ? "oldest messages dropped, prompt back" : t.out);
    tty_keys(&t, "\x04");
    int rc = tty_end(&t, NULL);
    t_check(rc == 0, "tty_overflow_exit", "exit status %d", rc);
    free(t.out);
    /* SIGTERM while a line is being typed (raw mode): the terminal's settings come back */
    char *argv2[] = {(char *)phi, "-m", (char *)model, "-i", NULL};
    if (!t_check(tty_start(&t, argv2) == 0, "tty_start_sigterm", "%s", strerror(errno))) return;
    ok = tty_wait(&t, PROMPT, 1);
    tty_keys(&t, "abc");
    struct termios raw, after;
    tcgetattr(t.master, &raw);
    kill(t.pid, SIGTERM);
    rc = tty_end(&t, &after);
    t_check(ok && !(raw.c_lflag & ECHO) && (after.c_lflag & (ECHO | ICANON | ISIG)) == (ECHO | ICANON | ISIG) &&
                rc == 128 + SIGTERM,
            "tty_sigterm_restores_terminal", "raw lflag %#lx, after %#lx, status %d", (unsigned long)raw.c_lflag,
            (unsigned long)after.c_lflag, rc);
    free(t.out);
}

int main(void) {
    phi = getenv("PHI") ? getenv("PHI") : "./phi";
    const char *quant = getenv("QUANT") ? getenv("QUANT") : "./quant";
    const char *data = getenv("PHI_DATA") ? getenv("PHI_DATA") : "../shared/data";
    snprintf(tmpdir, sizeof tmpdir, "%s/chat_tty", getenv("PHI_TMP") ? getenv("PHI_TMP") : "build/tmp");
    static char mpath[600], cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd)) return 1;
    snprintf(mpath, sizeof mpath, "%s/trained.phi", tmpdir);
    snprintf(cmd, sizeof cmd, "%s -q q8 %s/phi3-trained-tiny %s 2> /dev/null", quant, data, mpath);
    if (system(cmd) != 0) {
        t_skip("chat_tty", "no %s/phi3-trained-tiny", data);
        return 0;
    }
    model = mpath;
    signal(SIGPIPE, SIG_IGN);
    editing_and_history();
    ctrl_c();
    overflow_and_sigterm();
    return t_failed_count ? 1 : 0;
}
