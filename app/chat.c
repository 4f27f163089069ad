#include "app/chat.h"
#include "app/lineedit.h"

#include "base/cpu.h"
#include "base/errmsg.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ChatKind chat_kind(const char *tpl) {
    if (!tpl) return CHAT_PHI3;
    /* Phi-4-mini builds role tags without a newline: '<|' + message['role'] + '|>' + content */
    if (strstr(tpl, "'<|' + message['role'] + '|>' + message['content']")) return CHAT_PHI4;
    if (!strstr(tpl, "system")) return CHAT_PHI3_USER;
    return CHAT_PHI3;
}

int chat_wants_bos(const char *tpl, int add_bos_token) {
    if (add_bos_token) return 1;
    if (!tpl) return 0;
    while (*tpl == ' ' || *tpl == '\n') tpl++;
    return strncmp(tpl, "{{ bos_token }}", 15) == 0 || strncmp(tpl, "{{bos_token}}", 13) == 0;
}

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) abort(); /* conversations are small; running out here is not recoverable */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

char *chat_render(ChatKind kind, const ChatMessage *msgs, int n) {
    Buf b = {0};
    put(&b, "");
    const char *nl = kind == CHAT_PHI4 ? "" : "\n";
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (kind == CHAT_PHI3_USER) { /* the template emits the assistant tag after each user turn */
            if (!strcmp(role, "user")) {
                put(&b, "<|user|>\n");
                put(&b, msgs[i].content);
                put(&b, "<|end|>\n<|assistant|>\n");
            } else if (!strcmp(role, "assistant")) {
                put(&b, msgs[i].content);
                put(&b, "<|end|>\n");
            }
            continue;
        }
        put(&b, "<|");
        put(&b, role);
        put(&b, "|>");
        put(&b, nl);
        put(&b, msgs[i].content);
        put(&b, "<|end|>");
        put(&b, nl);
    }
    if (kind != CHAT_PHI3_USER) {
        put(&b, "<|assistant|>");
        put(&b, nl);
    }
    return b.p;
}

/* Tokenize with a malloc'd result. */
static int *encode(const Tokenizer *t, const char *text, int bos, int *n, char *err, size_t errlen) {
    size_t len = strlen(text);
    int need = tok_encode(t, text, len, bos, NULL, 0, err, errlen);
    if (need < 0) return NULL;
    int *ids = malloc((size_t)(need ? need : 1) * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *n = tok_encode(t, text, len, bos, ids, need, err, errlen);
    return ids;
}

/* The text of generated ids as Hugging Face's decode gives it (special tokens skipped). */
static char *decode(const Tokenizer *t, const int *ids, int n) {
    Buf b = {0};
    put(&b, "");
    TokDecoder d;
    tok_decoder_init(&d, t);
    char piece[256];
    for (int i = 0; i < n; i++)
        if (tok_decoder_push(&d, ids[i], piece, sizeof piece)) put(&b, piece);
    if (tok_decoder_flush(&d, piece, sizeof piece)) put(&b, piece);
    return b.p;
}

/* A chat line longer than this is refused (the rest of it is read and dropped): 64 KiB is some
 * 16k tokens, four times Phi-3-mini-4k's whole context. */
#define CHAT_LINE_MAX 65536

/* Ctrl-C in -i mode: during a reply it stops the reply (generation checks the flag before each
 * token); at the prompt it interrupts the read, and a second one at an empty prompt ends the
 * chat. The handler only sets flags; no SA_RESTART, so a blocked read returns EINTR. */
static volatile int interrupted;
static volatile sig_atomic_t sigint_count;

static void on_sigint(int sig) {
    interrupted = 1;
    sigint_count++;
}

/* One line without its newline (malloc'd), or NULL at end of input; *too_long set (and the line
 * discarded) when it has more than CHAT_LINE_MAX bytes. */
static char *read_line(FILE *in, int *too_long) {
    Buf b = {0};
    char chunk[4096];
    *too_long = 0;
    for (;;) {
        if (!fgets(chunk, sizeof chunk, in)) {
            if (ferror(in) && errno == EINTR && interrupted) {
                /* Ctrl-C at the prompt: the line so far is dropped; twice in a row ends the chat */
                clearerr(in);
                interrupted = 0;
                b.n = 0;
                if (sigint_count >= 2) break;
                fputs("\n(Ctrl-C again to exit)\n> ", stderr);
                continue;
            }
            break;
        }
        sigint_count = 0;
        size_t k = strlen(chunk);
        int end = k && chunk[k - 1] == '\n';
        if (!*too_long) put(&b, chunk);
        if (b.n > CHAT_LINE_MAX + (size_t)end) {
            *too_long = 1;
            b.n = 0;
            if (b.p) b.p[0] = 0;
        }
        if (end) {
            if (b.n) b.p[--b.n] = 0;
            return b.p ? b.p : strdup("");
        }
    }
    if (b.n || *too_long) return b.p ? b.p : strdup(""); /* last line without newline */
    free(b.p);
    return NULL;
}

/* One line from the terminal through the editor, or NULL at the end of input (Ctrl-D, or Ctrl-C
 * twice in a row at the prompt: the same rule as a plain read). */
static char *edit_line(LineEdit *le) {
    for (;;) {
        char *line;
        int r = lineedit_read(le, "> ", &line);
        if (r == LE_LINE) {
            sigint_count = 0;
            return line;
        }
        if (r != LE_INTERRUPT) return NULL;
        if (interrupted) interrupted = 0; /* a SIGINT before the terminal was raw: the handler counted it */
        else sigint_count++;
        if (sigint_count >= 2) return NULL;
        fputs("(Ctrl-C again to exit)\n", stderr);
    }
}

/* Chat commands: a line starting with '/' in -i mode. A handler returns 1 to end the chat. */
typedef struct {
    ChatMessage *msgs;
    int *n_msgs, n_keep; /* messages kept by /clear: the system prompt */
    Sampler *smp;
    int has_command; /* the caller handles /lora */
} ChatCtx;

typedef struct {
    const char *name, *help;
    int (*run)(ChatCtx *c, const char *arg);
} ChatCommand;

static int cmd_help(ChatCtx *c, const char *arg);

static int cmd_exit(ChatCtx *c, const char *arg) { return 1; }

static int cmd_clear(ChatCtx *c, const char *arg) {
    for (int i = c->n_keep; i < *c->n_msgs; i++) free(c->msgs[i].content);
    *c->n_msgs = c->n_keep;
    sampler_reset(c->smp);
    fprintf(stderr, "phi: conversation cleared%s\n", c->n_keep ? " (the system prompt kept)" : "");
    return 0;
}

static const ChatCommand commands[] = {
    {"/help", "this list", cmd_help},
    {"/clear", "forget the conversation (the system prompt stays)", cmd_clear},
    {"/exit", "end the chat (so does end of input)", cmd_exit},
};

static int cmd_help(ChatCtx *c, const char *arg) {
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(stderr, "  %-8s %s\n", commands[i].name, commands[i].help);
    if (c->has_command) fprintf(stderr, "  %-8s %s\n", "/lora", "DIR [SCALE]: attach a LoRA adapter; /lora off detaches them all");
    return 0;
}

/* Runs the command on `line`: 1 to end the chat, 0 otherwise (an unknown one says so). */
static int chat_command(ChatCtx *c, const char *line) {
    size_t k = strcspn(line, " \t");
    const char *arg = line + k + strspn(line + k, " \t");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strlen(commands[i].name) == k && strncmp(commands[i].name, line, k) == 0) return commands[i].run(c, arg);
    fprintf(stderr, "phi: unknown command '%.*s' (/help lists them)\n", (int)(k > 64 ? 64 : k), line);
    return 0;
}

int chat_run(const Model *m, State *s, Sampler *smp, const ChatOptions *o, FILE *in, char *err,
             size_t errlen) {
    ChatKind kind = chat_kind(tok_chat_template(m->tok));
    int bos = chat_wants_bos(tok_chat_template(m->tok), tok_add_bos(m->tok)), rc = 0;
    int n_msgs = 0, cap_msgs = 8;
    ChatMessage *msgs = malloc((size_t)cap_msgs * sizeof *msgs);
    int *past = malloc((size_t)s->n_ctx * sizeof *past), n_past = 0; /* ids in the KV cache */
    if (!msgs || !past) {
        free(msgs);
        free(past);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (o->system && *o->system) {
        if (kind == CHAT_PHI3_USER)
            fprintf(stderr, "phi: this model's chat template has no system role; --system is ignored\n");
        else if (!(msgs[n_msgs].content = strdup(o->system)))
            rc = errorf(err, errlen, "out of memory");
        else
            msgs[n_msgs++].role = "system";
    }
    int n_keep = n_msgs; /* the system prompt survives /clear and context overflow */
    struct sigaction old_sa, sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    if (o->interactive) sigaction(SIGINT, &sa, &old_sa);
    interrupted = 0;
    sigint_count = 0;
    ChatCtx ctx = {msgs, &n_msgs, n_keep, smp, o->command != NULL};
    /* a terminal gets the line editor; a pipe or file is read as it is */
    LineEdit le;
    int le_on = o->interactive && lineedit_usable(fileno(in));
    if (le_on) {
        lineedit_init(&le, fileno(in), 2, CHAT_LINE_MAX);
        le.intr = &interrupted;
    }
    int cache_pending = o->prompt_cache != NULL; /* the first evaluated prompt meets the file */
    for (int turn = 0; rc == 0; turn++) {
        char *user = NULL;
        if (turn == 0 && o->prompt) {
            if (!(user = strdup(o->prompt))) { rc = errorf(err, errlen, "out of memory"); break; }
        } else if (o->interactive || (turn == 0 && !o->prompt)) {
            int too_long = 0;
            if (le_on) {
                fputs("\n", stderr);
                user = edit_line(&le);
            } else {
                if (o->interactive) fputs("\n> ", stderr);
                user = read_line(in, &too_long);
            }
            if (!user) break; /* end of input */
            if (too_long && o->interactive) {
                fprintf(stderr, "phi: the line is longer than %d bytes; not sent\n", CHAT_LINE_MAX);
                free(user);
                continue;
            }
            if (too_long) { free(user); rc = errorf(err, errlen, "the message is longer than %d bytes", CHAT_LINE_MAX); break; }
            if (o->interactive && user[0] == '/' && o->command && o->command(o->command_ctx, user)) {
                free(user);
                n_past = 0; /* the model changed: nothing in the cache is reused */
                continue;
            }
            if (o->interactive && user[0] == '/') {
                ctx.msgs = msgs;
                int end = chat_command(&ctx, user);
                free(user);
                if (end) break;
                continue;
            }
        } else {
            break;
        }
        if (n_msgs + 2 > cap_msgs) {
            cap_msgs *= 2;
            ChatMessage *nm = realloc(msgs, (size_t)cap_msgs * sizeof *msgs);
            if (!nm) { free(user); rc = -1; snprintf(err, errlen, "out of memory"); break; }
            msgs = nm;
        }
        msgs[n_msgs++] = (ChatMessage){"user", user};
        char *text = chat_render(kind, msgs, n_msgs);
        int n_ids = 0, *ids = encode(m->tok, text, bos, &n_ids, err, errlen);
        free(text);
        if (!ids && o->interactive) { /* invalid UTF-8: refuse the line, keep the chat */
            fprintf(stderr, "phi: %s; message not sent\n", err);
            free(msgs[--n_msgs].content);
            continue;
        }
        if (!ids) { rc = -1; break; }
        /* In -i mode a full context drops the oldest exchange (the system prompt stays) until
         * the conversation leaves a quarter of the context to answer in. */
        int dropped = 0;
        while (o->interactive && n_msgs - n_keep > 1 && n_ids + s->n_ctx / 4 > s->n_ctx) {
            int k = n_msgs - n_keep > 2 && !strcmp(msgs[n_keep + 1].role, "assistant") ? 2 : 1;
            for (int i = 0; i < k; i++) free(msgs[n_keep + i].content);
            memmove(msgs + n_keep, msgs + n_keep + k, (size_t)(n_msgs - n_keep - k) * sizeof *msgs);
            n_msgs -= k;
            dropped += k;
            free(ids);
            text = chat_render(kind, msgs, n_msgs);
            ids = encode(m->tok, text, bos, &n_ids, err, errlen);
            free(text);
            if (!ids) break;
        }
        if (!ids) { rc = -1; break; }
        if (dropped) fprintf(stderr, "phi: context full: dropped the %d oldest messages\n", dropped);
        if (check_fits_context("the conversation", n_ids, 1, s->n_ctx, err, errlen)) { /* room to answer */
            free(ids);
            if (o->interactive) {
                fprintf(stderr, "phi: %s; message not sent\n", err);
                free(msgs[--n_msgs].content);
                continue;
            }
            rc = -1;
            break;
        }
        /* Reuse the cached prefix; recompute from the first token that differs. At least the
         * last token is evaluated, for its logits. */
        if (o->interactive) interrupted = 0; /* a Ctrl-C from here on stops this reply */
        int keep = 0;
        int adapters = m->lora || s->lora; /* they change the keys and values */
        if (cache_pending && adapters) {
            fprintf(stderr, "phi: prompt cache not used: LoRA adapters are attached\n");
            cache_pending = 0;
        }
        if (cache_pending) {
            n_past = prompt_cache_load(o->prompt_cache, o->cache_key, s, m, ids, n_ids);
            memcpy(past, ids, (size_t)n_past * sizeof *ids);
            fprintf(stderr, "phi: prompt cache: %d of %d prompt tokens reused\n", n_past, n_ids);
        }
        while (keep < n_past && keep < n_ids - 1 && past[keep] == ids[keep]) keep++;
        double t_prompt = now_seconds();
        model_forward(m, s, ids + keep, n_ids - keep, keep, NULL);
        t_prompt = now_seconds() - t_prompt;
        int n_evaluated = n_ids - keep;
        if (o->n_prompt_evaluated) *o->n_prompt_evaluated += n_ids - keep;
        if (cache_pending && !o->prompt_cache_ro && keep < n_ids - 1)
            prompt_cache_save(o->prompt_cache, o->cache_key, s, m, ids, n_ids);
        cache_pending = 0;
        memcpy(past, ids, (size_t)n_ids * sizeof *ids);
        n_past = n_ids;
        /* The penalties look at the conversation so far, prompt included (llama.cpp; as one-shot
         * generation does): the history is the last last_n tokens of the context. */
        sampler_reset(smp);
        for (int i = 0; i < n_ids; i++) sampler_accept(smp, past[i]);
        free(ids);

        int room = s->n_ctx - n_past;
        GenOptions g = o->gen;
        if (o->interactive) g.stop = &interrupted; /* set during the prompt: no reply */
        /* a reply cut by the end of the context, not by -n: the notice below */
        int to_the_end = g.n_predict < 0 || g.n_predict >= room;
        if (g.n_predict < 0 || g.n_predict > room) g.n_predict = room;
        GenStats st;
        int *reply = malloc((size_t)(room > 0 ? room : 1) * sizeof *reply);
        if (!reply) { rc = errorf(err, errlen, "out of memory"); break; }
        n_past = generate_tokens(m, s, smp, n_past, &g, &st, reply, room);
        if (gen_stop_error(&st, err, errlen)) { free(reply); rc = -1; break; } /* NaN, write error */
        /* The cache now holds the reply except its last token (sampled, not yet evaluated). */
        int n_rep = st.n_gen < room ? st.n_gen : room;
        memcpy(past + n_ids, reply, (size_t)(n_past - n_ids) * sizeof *reply);
        fputc('\n', g.out);
        fflush(g.out);
        msgs[n_msgs++] = (ChatMessage){"assistant", decode(m->tok, reply, n_rep)};
        if (o->perf) /* llama.cpp's --perf: this reply's timings; the prompt counts only the
                      * tokens evaluated (the cached prefix is reused) */
            fprintf(stderr, "phi: prompt %d tok, %.2f tok/s | gen %d tok, %.2f tok/s\n", n_evaluated,
                    t_prompt > 0 ? n_evaluated / t_prompt : 0, st.n_gen, st.gen_s > 0 ? st.n_gen / st.gen_s : 0);
        if (o->interactive && interrupted) {
            fprintf(stderr, "phi: reply stopped (Ctrl-C)\n");
            interrupted = 0;
            sigint_count = 0;
        }
        free(reply);
        if (st.stopped_by == GEN_STOP_CONTEXT || (st.stopped_by == GEN_STOP_COUNT && to_the_end && st.n_gen >= room)) {
            fprintf(stderr, "phi: the context is full (%d tokens)%s\n", s->n_ctx,
                    o->interactive ? "; the oldest messages go at the next turn" : "; raise -c for longer conversations");
            if (!o->interactive) break;
        }
    }
    if (o->interactive) sigaction(SIGINT, &old_sa, NULL);
    if (le_on) lineedit_free(&le);
    for (int i = 0; i < n_msgs; i++) free(msgs[i].content);
    free(msgs);
    free(past);
    return rc;
}
