#include "app/chat.h"

#include "base/errmsg.h"

#include <stdlib.h>
#include <string.h>

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

static char *read_line(FILE *in) {
    Buf b = {0};
    char chunk[4096];
    while (fgets(chunk, sizeof chunk, in)) {
        put(&b, chunk);
        if (b.n && b.p[b.n - 1] == '\n') {
            b.p[--b.n] = 0;
            return b.p;
        }
    }
    if (b.n) return b.p; /* last line without newline */
    free(b.p);
    return NULL;
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
    for (int turn = 0; rc == 0; turn++) {
        char *user = NULL;
        if (turn == 0 && o->prompt) {
            if (!(user = strdup(o->prompt))) { rc = errorf(err, errlen, "out of memory"); break; }
        } else if (o->interactive || (turn == 0 && !o->prompt)) {
            if (o->interactive) fputs("\n> ", stderr);
            user = read_line(in);
            if (!user) break; /* end of input */
            if (user[0] == '/' && o->command && o->command(o->command_ctx, user)) {
                free(user);
                n_past = 0; /* the model changed: nothing in the cache is reused */
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
        if (!ids) { rc = -1; break; }
        if (check_fits_context("the conversation", n_ids, 1, s->n_ctx, err, errlen)) { /* room to answer */
            free(ids);
            rc = -1;
            break;
        }
        /* Reuse the cached prefix; recompute from the first token that differs. At least the
         * last token is evaluated, for its logits. */
        int keep = 0;
        while (keep < n_past && keep < n_ids - 1 && past[keep] == ids[keep]) keep++;
        model_forward(m, s, ids + keep, n_ids - keep, keep, NULL);
        if (o->n_prompt_evaluated) *o->n_prompt_evaluated += n_ids - keep;
        memcpy(past, ids, (size_t)n_ids * sizeof *ids);
        n_past = n_ids;
        free(ids);

        int room = s->n_ctx - n_past;
        GenOptions g = o->gen;
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
        free(reply);
        if (st.stopped_by == 2) {
            fprintf(stderr, "phi: the context is full (%d tokens); raise -c for longer conversations\n",
                    s->n_ctx);
            break;
        }
    }
    for (int i = 0; i < n_msgs; i++) free(msgs[i].content);
    free(msgs);
    free(past);
    return rc;
}
