#include "server/server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/phi_internal.h"
#include "base/cpu.h"
#include "phi.h"
#include "model/generate.h"
#include "server/http.h"
#include "server/oai.h"
#include "server/sbuf.h"
#include "server/sched.h"

#define IDLE_KEEPALIVE_S 5 /* a kept-alive connection waits this long for its next request */

typedef struct {
    const ServerOptions *o;
    phi_model *pm;
    const Model *m;
    Sched *sched;
    Adapters *ad;       /* --lora adapters (server/adapters.h) */
    const char *model_id;
    long long started;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t gone;
    int *fds;           /* open connections, -1 = free */
    int n_conn;
    unsigned long long counter;
} Server;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "phi-server: %s\n", line);
}

/* ---- sockets ---- */

/* Send everything (MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE). -1 when the peer is gone
 * or a write timed out. */
static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Whether the peer has closed or reset the connection (checked while a request waits). */
static int peer_gone(int fd) {
    struct pollfd p = {fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int send_response(int fd, int status, const char *type, const char *body, size_t n, int keep_alive,
                         const char *extra) {
    char head[512];
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n%s\r\n",
                     status, http_reason(status), type, n, keep_alive ? "keep-alive" : "close", extra ? extra : "");
    if (send_all(fd, head, (size_t)k)) return -1;
    return send_all(fd, body, n);
}

static int send_error(int fd, int status, const char *msg, const char *type, const char *param, const char *code,
                      int keep_alive) {
    Sb b = {0};
    oai_error(&b, msg, type, param, code);
    const char *extra = status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL;
    int rc = b.oom ? -1 : send_response(fd, status, "application/json", b.p, b.n, keep_alive, extra);
    sb_free(&b);
    return rc;
}

/* ---- requests ---- */

typedef struct {
    int status, n_prompt, n_gen, n_reused;
    int n_drafted, n_accepted; /* prompt lookup (--lookup) */
    int keep_alive; /* the response allows the next request on this connection */
} Outcome;

static int bad_request(int fd, Outcome *oc, int status, const char *msg, const char *param, const char *code) {
    oc->status = status;
    const char *type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error";
    return send_error(fd, status, msg, type, param, code, oc->keep_alive);
}

static int *prompt_ids(Server *S, const OaiRequest *r, int *n, char *err, size_t errlen) {
    char *text = NULL;
    int bos = -1, *ids = NULL;
    if (r->chat) {
        if (phi_chat_render(S->pm, r->msgs, r->n_msgs, &text, &bos)) {
            snprintf(err, errlen, "%s", phi_last_error());
            return NULL;
        }
    } else if (r->prompt) {
        text = strdup(r->prompt);
        if (!text) return snprintf(err, errlen, "out of memory"), NULL;
    } else {
        int vocab = phi_model_n_vocab(S->pm);
        for (int i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= vocab) {
                snprintf(err, errlen, "prompt token id %d is outside the vocabulary (0..%d)", r->prompt_ids[i], vocab - 1);
                return NULL;
            }
        ids = malloc((size_t)r->n_prompt_ids * sizeof *ids);
        if (!ids) return snprintf(err, errlen, "out of memory"), NULL;
        memcpy(ids, r->prompt_ids, (size_t)r->n_prompt_ids * sizeof *ids);
        *n = r->n_prompt_ids;
        return ids;
    }
    size_t len = strlen(text);
    int need = phi_tokenize(S->pm, text, len, bos, NULL, 0);
    if (need >= 0 && (ids = malloc((size_t)(need ? need : 1) * sizeof *ids)))
        *n = phi_tokenize(S->pm, text, len, bos, ids, need);
    else if (need < 0) snprintf(err, errlen, "%s", phi_last_error());
    else snprintf(err, errlen, "out of memory");
    free(text);
    return ids;
}

/* The request's adapter set: its "lora" list (adapters not named get 0, as llama-server does) or
 * else the global scales; one reference taken. 0, or -1 with a message for a 400 (-2: out of
 * memory, a 500). */
static int request_loras(Server *S, const OaiRequest *r, const LoraSet **set, char *err, size_t errlen) {
    int n = adapters_count(S->ad);
    float sc[64] = {0};
    *set = NULL;
    if (!r->has_lora) {
        if (n) adapters_get_scales(S->ad, sc);
    } else {
        for (int i = 0; i < r->n_lora; i++) {
            if (r->lora_id[i] >= n) {
                snprintf(err, errlen, "lora[%d]: id %d is not a preloaded adapter (%d loaded with --lora; GET /lora-adapters lists them)",
                         i, r->lora_id[i], n);
                return -1;
            }
            sc[r->lora_id[i]] = r->lora_scale[i]; /* a repeated id: the last one counts */
        }
    }
    if (n && adapters_acquire(S->ad, sc, set)) return snprintf(err, errlen, "out of memory"), -2;
    return 0;
}

/* GET /lora-adapters: the preloaded list with the global scales; POST: new global scales from
 * [{"id": N, "scale": S}, ...] (adapters not named get 0), answered {"success": true}. Requests
 * that name no "lora" use the global scales from then on; running ones keep theirs. */
static void lora_adapters(Server *S, int fd, int post, const char *body, size_t len, Outcome *oc) {
    Sb b = {0};
    char err[300];
    if (post) {
        int n = 0, *ids = NULL, na = adapters_count(S->ad);
        float *scales = NULL, sc[64] = {0};
        if (oai_parse_lora(body, len, &n, &ids, &scales, err, sizeof err)) {
            bad_request(fd, oc, 400, err, NULL, NULL);
            return;
        }
        for (int i = 0; i < n; i++) {
            if (ids[i] >= na) {
                snprintf(err, sizeof err, "[%d]: id %d is not a preloaded adapter (%d loaded with --lora)", i, ids[i], na);
                bad_request(fd, oc, 400, err, NULL, NULL);
                free(ids), free(scales);
                return;
            }
            sc[ids[i]] = scales[i];
        }
        free(ids), free(scales);
        if (na) adapters_set_scales(S->ad, sc);
        sb_puts(&b, "{\"success\":true}");
    } else {
        adapters_json(S->ad, &b);
    }
    if (b.oom) {
        bad_request(fd, oc, 500, "out of memory", NULL, NULL);
    } else {
        oc->status = 200;
        send_response(fd, 200, "application/json", b.p, b.n, oc->keep_alive, NULL);
    }
    sb_free(&b);
}

static const char *finish_name(int f) { return f == FINISH_STOP ? "stop" : "length"; }

static void completion(Server *S, int fd, const char *body, size_t len, int chat, Outcome *oc) {
    OaiRequest r;
    char err[512];
    const char *param = NULL;
    if (oai_parse(body, len, chat, &r, &param, err, sizeof err)) {
        bad_request(fd, oc, 400, err, param, NULL);
        return;
    }
    int n = 0, n_ctx = sched_n_ctx(S->sched);
    int *ids = prompt_ids(S, &r, &n, err, sizeof err);
    if (!ids) {
        bad_request(fd, oc, 400, err, chat ? "messages" : "prompt", NULL);
        oai_free(&r);
        return;
    }
    oc->n_prompt = n;
    if (n < 1 || (long long)n + (r.max_tokens > 0 ? r.max_tokens : 1) > n_ctx) { /* 64-bit: armv7 */
        snprintf(err, sizeof err, "This model's context per slot is %d tokens; the prompt has %d and "
                 "max_tokens asks for %d more (raise -c or lower --parallel)", n_ctx, n, r.max_tokens > 0 ? r.max_tokens : 1);
        if (n < 1) snprintf(err, sizeof err, "the prompt is empty");
        bad_request(fd, oc, 400, err, chat ? "messages" : "prompt", n < 1 ? NULL : "context_length_exceeded");
        free(ids);
        oai_free(&r);
        return;
    }
    const LoraSet *set = NULL;
    int lrc = request_loras(S, &r, &set, err, sizeof err);
    if (lrc) {
        bad_request(fd, oc, lrc == -2 ? 500 : 400, err, lrc == -2 ? NULL : "lora", NULL);
        free(ids);
        oai_free(&r);
        return;
    }
    Task t;
    task_init(&t);
    t.ids = ids;
    t.lora = set;
    t.n_ids = n;
    t.n_predict = r.max_tokens >= 0 ? r.max_tokens : n_ctx - n;
    t.temperature = r.temperature;
    t.top_p = r.top_p;
    t.top_k = r.top_k;
    t.min_p = r.min_p;
    t.presence_penalty = r.presence_penalty;
    t.frequency_penalty = r.frequency_penalty;
    t.repeat_penalty = r.repeat_penalty;
    t.ignore_eos = r.ignore_eos;
    t.stop = r.stop;
    t.n_stop = r.n_stop;
    pthread_mutex_lock(&S->mu);
    unsigned long long serial = ++S->counter;
    pthread_mutex_unlock(&S->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t nonce = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^ serial << 40;
    t.seed = r.has_seed ? r.seed : (nonce | 1);
    char id[64];
    snprintf(id, sizeof id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)nonce, serial);
    OaiMeta meta = {id, S->model_id, (long long)ts.tv_sec, chat};

    if (sched_submit(S->sched, &t)) {
        bad_request(fd, oc, 503, "the server is busy: every slot is working and the queue is full; retry later",
                    NULL, NULL);
        goto out;
    }
    Sb all = {0}, ev = {0};
    int gone = 0, sent_head = 0;
    if (r.stream) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                        "Connection: close\r\n\r\n";
        gone = send_all(fd, h, strlen(h)) != 0;
        sent_head = 1;
        oc->keep_alive = 0;
        if (!gone && chat) {
            oai_chunk(&ev, &meta, 1, "", 0, NULL, r.include_usage);
            gone = send_all(fd, ev.p, ev.n) != 0;
            ev.n = 0;
        }
    }
    sched_lock(S->sched);
    while (!gone) {
        if (t.text.n) {
            if (r.stream) {
                ev.n = 0;
                oai_chunk(&ev, &meta, 0, t.text.p, t.text.n, NULL, r.include_usage);
                t.text.n = 0;
                sched_unlock(S->sched);
                gone = ev.oom || send_all(fd, ev.p, ev.n) != 0;
                sched_lock(S->sched);
            } else {
                sb_put(&all, t.text.p, t.text.n);
                t.text.n = 0;
            }
            continue;
        }
        if (t.done) break;
        sched_wait(S->sched, &t, 200);
        if (!t.done && !t.text.n && peer_gone(fd)) gone = 1;
    }
    sched_unlock(S->sched);
    if (gone) {
        sched_cancel(S->sched, &t); /* frees the slot at once */
        oc->status = 499;           /* nginx's "client closed request", for the log */
        oc->keep_alive = 0;
    } else if (t.finish == FINISH_ERROR || t.finish == FINISH_ABORT) {
        const char *msg = t.finish == FINISH_ERROR ? "the model produced non-finite logits"
                                                   : "generation was aborted (server shutting down or a failed forward pass)";
        if (r.stream) { /* the head is out: an error event, as llama-server sends, and no [DONE] */
            oc->status = 500;
            ev.n = 0;
            sb_puts(&ev, "data: {\"error\":{\"message\":\"");
            sb_puts(&ev, msg);
            sb_puts(&ev, "\",\"type\":\"server_error\",\"code\":500}}\n\n");
            send_all(fd, ev.p, ev.n);
        } else {
            bad_request(fd, oc, 500, msg, NULL, NULL);
        }
    } else {
        oc->status = 200;
        const char *fin = finish_name(t.finish);
        if (r.stream) {
            ev.n = 0;
            oai_chunk(&ev, &meta, 0, chat ? NULL : "", 0, fin, r.include_usage);
            if (r.include_usage) oai_usage_chunk(&ev, &meta, n, t.n_gen, t.n_reused);
            sb_puts(&ev, "data: [DONE]\n\n");
            send_all(fd, ev.p, ev.n);
        } else {
            Sb b = {0};
            oai_response(&b, &meta, all.p ? all.p : "", all.n, fin, n, t.n_gen, t.n_reused);
            if (b.oom) bad_request(fd, oc, 500, "out of memory", NULL, NULL);
            else send_response(fd, 200, "application/json", b.p, b.n, oc->keep_alive, NULL);
            sb_free(&b);
        }
    }
    (void)sent_head;
    oc->n_gen = t.n_gen;
    oc->n_reused = t.n_reused;
    oc->n_drafted = t.n_drafted;
    oc->n_accepted = t.n_accepted;
    sb_free(&all);
    sb_free(&ev);
out:
    task_destroy(&t);
    adapters_release(S->ad, set);
    free(ids);
    oai_free(&r);
}

static int authorized(const Server *S, const HttpRequest *rq) {
    if (!S->o->api_key) return 1;
    const char *h = http_header(rq, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    while (*h == ' ') h++;
    /* compare without an early exit (no timing hint about the key) */
    const char *k = S->o->api_key;
    size_t hn = strlen(h), kn = strlen(k);
    unsigned diff = hn != kn;
    for (size_t i = 0; i < kn; i++) diff |= (unsigned char)k[i] ^ (unsigned char)(i < hn ? h[i] : 0);
    return diff == 0;
}

static void route(Server *S, int fd, const HttpRequest *rq, const char *body, size_t len, Outcome *oc) {
    const char *p = rq->path;
    int get = !strcmp(rq->method, "GET"), post = !strcmp(rq->method, "POST");
    if (!strcmp(p, "/health")) {
        if (!get) { bad_request(fd, oc, 405, "use GET", NULL, NULL); return; }
        oc->status = 200;
        const char *ok = "{\"status\":\"ok\"}";
        send_response(fd, 200, "application/json", ok, strlen(ok), oc->keep_alive, NULL);
        return;
    }
    int models = !strcmp(p, "/v1/models") || !strcmp(p, "/models");
    int chat = !strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions");
    int lora = !strcmp(p, "/lora-adapters");
    int compl = !strcmp(p, "/v1/completions") || !strcmp(p, "/completions");
    if (!models && !chat && !compl && !lora) {
        bad_request(fd, oc, 404, "unknown endpoint (POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET/POST /lora-adapters)",
                    NULL, NULL);
        return;
    }
    if (!authorized(S, rq)) {
        bad_request(fd, oc, 401, "invalid or missing API key (Authorization: Bearer KEY)", NULL, "invalid_api_key");
        return;
    }
    if (lora) {
        if (!get && !post) { bad_request(fd, oc, 405, "use GET or POST", NULL, NULL); return; }
        lora_adapters(S, fd, post, body, len, oc);
        return;
    }
    if (models) {
        if (!get) { bad_request(fd, oc, 405, "use GET", NULL, NULL); return; }
        Sb b = {0};
        sb_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
        sb_json_str(&b, S->model_id, strlen(S->model_id));
        sb_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"phi\",\"meta\":{\"n_ctx_train\":%d,"
                  "\"n_vocab\":%d,\"n_ctx_slot\":%d,\"slots\":%d}}]}", S->started, phi_model_n_ctx_train(S->pm),
                  phi_model_n_vocab(S->pm), sched_n_ctx(S->sched), sched_n_slots(S->sched));
        oc->status = 200;
        send_response(fd, 200, "application/json", b.p, b.n, oc->keep_alive, NULL);
        sb_free(&b);
        return;
    }
    if (!post) { bad_request(fd, oc, 405, "use POST", NULL, NULL); return; }
    completion(S, fd, body, len, chat, oc);
}

/* ---- connections ---- */

typedef struct {
    Server *S;
    int fd, slot;
} Conn;

/* Receive into buf until it holds want bytes or a complete head (want 0); the deadline bounds the
 * whole request (a slow client cannot hold the thread). 1 done, 0 peer closed, -1 timeout/error. */
static int recv_more(int fd, char *buf, size_t *have, size_t cap, double deadline) {
    if (*have >= cap) return -1;
    for (;;) {
        double left = deadline - now_seconds();
        if (left <= 0 || stop_flag) return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left > 0.2 ? 200 : (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return -1;
        if (r <= 0) continue;
        ssize_t k = recv(fd, buf + *have, cap - *have, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return 0;
        *have += (size_t)k;
        return 1;
    }
}

static void *conn_main(void *arg) {
    Conn *c = arg;
    Server *S = c->S;
    const ServerOptions *o = S->o;
    int fd = c->fd;
    size_t cap = HTTP_MAX_HEAD + 1, have = 0;
    char *buf = malloc(cap);
    for (int first = 1; buf; first = 0) {
        HttpRequest rq;
        char err[256];
        Outcome oc = {.keep_alive = 1};
        double t0 = now_seconds();
        /* the head: a kept-alive connection waits IDLE_KEEPALIVE_S for it to start */
        double deadline = t0 + (first ? o->timeout_s : IDLE_KEEPALIVE_S);
        int head = 0, rc = 1;
        while (!(head = http_parse_head(buf, have, &rq, err, sizeof err))) {
            if (have > 0 && !first) deadline = t0 + o->timeout_s;
            if ((rc = recv_more(fd, buf, &have, cap, deadline)) <= 0) break;
        }
        if (rc == 0 || (rc < 0 && have == 0)) break; /* closed, or idle: just close */
        if (rc < 0) {
            oc.keep_alive = 0;
            bad_request(fd, &oc, 408, "timed out reading the request", NULL, NULL);
            logf_("- - 408 (timeout reading the head)");
            break;
        }
        if (head < 0) {
            oc.keep_alive = 0;
            bad_request(fd, &oc, -head, err, NULL, NULL);
            logf_("- - %d (%s)", -head, err);
            break;
        }
        oc.keep_alive = rq.keep_alive;
        char method[16], path[sizeof rq.path];
        snprintf(method, sizeof method, "%s", rq.method);
        memcpy(path, rq.path, sizeof path);
        if (rq.content_length > o->max_body) {
            oc.keep_alive = 0;
            snprintf(err, sizeof err, "the body is %lld bytes; the limit is %lld", rq.content_length, o->max_body);
            bad_request(fd, &oc, 413, err, NULL, NULL);
            logf_("%s %s 413 (%lld-byte body)", method, path, rq.content_length);
            break;
        }
        /* the body follows the head in buf; grow buf to hold it */
        size_t need = (size_t)head + (size_t)rq.content_length;
        if (need + 1 > cap) {
            /* the head's pointers move with buf: keep them as offsets */
            size_t mo = (size_t)(rq.method - buf), to = (size_t)(rq.target - buf), no[HTTP_MAX_HEADERS], vo[HTTP_MAX_HEADERS];
            for (int i = 0; i < rq.n_headers; i++) {
                no[i] = (size_t)(rq.headers[i].name - buf);
                vo[i] = (size_t)(rq.headers[i].value - buf);
            }
            char *nb = realloc(buf, need + 1);
            if (!nb) break;
            buf = nb;
            cap = need + 1;
            rq.method = buf + mo;
            rq.target = buf + to;
            for (int i = 0; i < rq.n_headers; i++) {
                rq.headers[i].name = buf + no[i];
                rq.headers[i].value = buf + vo[i];
            }
        }
        /* curl and others wait for this before sending a body of more than 1 KiB */
        const char *expect = http_header(&rq, "expect");
        if (expect && !strcasecmp(expect, "100-continue") && have < need)
            send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        deadline = t0 + o->timeout_s;
        while (have < need && (rc = recv_more(fd, buf, &have, need, deadline)) > 0) {}
        if (have < need) {
            if (rc < 0) {
                oc.keep_alive = 0;
                bad_request(fd, &oc, 408, "timed out reading the body", NULL, NULL);
                logf_("%s %s 408 (timeout reading the body)", method, path);
            }
            break;
        }
        char saved = buf[need];
        buf[need] = 0;
        route(S, fd, &rq, buf + head, (size_t)rq.content_length, &oc);
        buf[need] = saved;
        char look[64] = "";
        if (oc.n_drafted) snprintf(look, sizeof look, " | lookup %d of %d drafts kept", oc.n_accepted, oc.n_drafted);
        logf_("%s %s %d | prompt %d tok (%d cached) | gen %d tok%s | %.0f ms", method, path, oc.status, oc.n_prompt,
              oc.n_reused, oc.n_gen, look, (now_seconds() - t0) * 1e3);
        if (!oc.keep_alive || stop_flag) break;
        memmove(buf, buf + need, have - need); /* a pipelined next request */
        have -= need;
        if (cap > 4 * (HTTP_MAX_HEAD + 1) && have <= HTTP_MAX_HEAD) { /* give a big body's memory back */
            char *nb = realloc(buf, HTTP_MAX_HEAD + 1);
            if (nb) buf = nb, cap = HTTP_MAX_HEAD + 1;
        }
    }
    free(buf);
    pthread_mutex_lock(&S->mu);
    S->fds[c->slot] = -1;
    S->n_conn--;
    pthread_cond_broadcast(&S->gone);
    pthread_mutex_unlock(&S->mu);
    close(fd);
    free(c);
    return NULL;
}

/* --host is a numeric IPv4 or IPv6 address (or "localhost"): no name lookup, so static builds need no
 * NSS libraries at run time. */
static int listen_on(const char *host, int port, int *actual, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    const char *h = strcmp(host, "localhost") ? host : "127.0.0.1";
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        return snprintf(err, errlen, "--host %s: not an IPv4 or IPv6 address", host), -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return snprintf(err, errlen, "socket: %s", strerror(errno)), -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64)) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof ss;
    *actual = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *actual = ntohs(ss.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    return fd;
}

static void refuse_busy(int fd) {
    const char *b = "{\"error\":{\"message\":\"too many open connections; retry later\",\"type\":\"server_error\","
                    "\"param\":null,\"code\":null}}";
    char head[256];
    int k = snprintf(head, sizeof head, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(b));
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (send_all(fd, head, (size_t)k) == 0) send_all(fd, b, strlen(b));
    close(fd);
}

int server_run(const ServerOptions *o) {
    Server S;
    memset(&S, 0, sizeof S);
    S.o = o;
    char err[512];
    if (phi_model_open(o->model_path, o->mmap ? PHI_OPEN_MMAP : 0, &S.pm)) {
        logf_("%s", phi_last_error());
        return 1;
    }
    S.m = phi_model_get(S.pm);
    int max = phi_model_n_ctx_train(S.pm), total = o->n_ctx ? o->n_ctx : (max < 4096 ? max : 4096);
    int per_slot = total / o->n_parallel;
    if (per_slot < 8 || per_slot > max) {
        logf_("-c %d split among %d slots gives %d positions each; it must be 8..%d (the model's maximum)", total,
              o->n_parallel, per_slot, max);
        phi_model_free(S.pm);
        return 1;
    }
    S.ad = adapters_new(S.pm);
    if (!S.ad) {
        logf_("out of memory");
        phi_model_free(S.pm);
        return 1;
    }
    for (int i = 0; i < o->n_lora; i++) {
        float sc = o->lora_init_without_apply ? 0 : o->lora_scale[i];
        if (adapters_load(S.ad, o->lora_path[i], sc, err, sizeof err)) {
            logf_("%s", err);
            adapters_free(S.ad);
            phi_model_free(S.pm);
            return 1;
        }
        logf_("LoRA adapter %d: %s (scale %g)", i, o->lora_path[i], (double)sc);
    }
    S.sched = sched_create(S.m, S.ad, o->n_parallel, per_slot, o->n_threads, o->queue,
                           STATE_CACHE_K(o->cache_type_k) | STATE_CACHE_V(o->cache_type_v), o->draft_max, err,
                           sizeof err);
    if (!S.sched) {
        logf_("%s", err);
        adapters_free(S.ad);
        phi_model_free(S.pm);
        return 1;
    }
    {
        double row = (double)S.m->hp.n_layers * S.m->hp.n_kv_heads * S.m->hp.head_dim * per_slot;
        logf_("KV cache: keys %s, values %s, %.1f MiB per slot", kv_type_name(o->cache_type_k),
              kv_type_name(o->cache_type_v),
              (kv_type_bytes(o->cache_type_k, row) + kv_type_bytes(o->cache_type_v, row)) / (1 << 20));
    }
    if (o->draft_max) {
        if (lookup_exact(S.m, NULL))
            logf_("prompt lookup: up to %d drafts a step for greedy requests without adapters", o->draft_max);
        else
            logf_("prompt lookup: off (this model's batched products are not bit-exact on these kernels: K-quant weights)");
    }
    const char *base = strrchr(o->model_path, '/');
    S.model_id = o->alias ? o->alias : base ? base + 1 : o->model_path;
    S.started = (long long)time(NULL);
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.gone, NULL);
    S.fds = malloc((size_t)o->max_conn * sizeof *S.fds);
    int port = 0, lfd = S.fds ? listen_on(o->host, o->port, &port, err, sizeof err) : -1;
    if (lfd < 0) {
        logf_("%s", S.fds ? err : "out of memory");
        sched_free(S.sched);
        adapters_free(S.ad);
        phi_model_free(S.pm);
        free(S.fds);
        return 1;
    }
    for (int i = 0; i < o->max_conn; i++) S.fds[i] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int v6 = strchr(o->host, ':') != NULL;
    logf_("%s | %d slots x %d positions | %d threads | listening on http://%s%s%s:%d", S.model_id, o->n_parallel,
          per_slot, o->n_threads, v6 ? "[" : "", o->host, v6 ? "]" : "", port);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!stop_flag) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        struct timeval tv = {o->timeout_s, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* a client that stops reading */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* streamed tokens go out at once */
        pthread_mutex_lock(&S.mu);
        int slot = -1;
        for (int i = 0; i < o->max_conn && slot < 0; i++)
            if (S.fds[i] < 0) slot = i;
        Conn *c = slot >= 0 ? malloc(sizeof *c) : NULL;
        pthread_t th;
        if (c) {
            *c = (Conn){&S, fd, slot};
            S.fds[slot] = fd;
            S.n_conn++;
            if (pthread_create(&th, &attr, conn_main, c)) {
                S.fds[slot] = -1;
                S.n_conn--;
                free(c);
                c = NULL;
            }
        }
        pthread_mutex_unlock(&S.mu);
        if (!c) refuse_busy(fd);
    }
    pthread_attr_destroy(&attr);
    close(lfd);
    /* SIGINT/SIGTERM: let running generations finish briefly, then end the rest */
    logf_("stopping: finishing the requests in flight (at most 10 s)");
    sched_drain(S.sched, 10);
    sched_stop(S.sched);
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < o->max_conn; i++)
        if (S.fds[i] >= 0) shutdown(S.fds[i], SHUT_RD); /* wake readers of idle connections */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (S.n_conn > 0 && pthread_cond_timedwait(&S.gone, &S.mu, &ts) != ETIMEDOUT) {}
    int left = S.n_conn;
    pthread_mutex_unlock(&S.mu);
    if (left) { /* a connection thread stuck in a write: do not free what it uses */
        logf_("stopped with %d connections still open", left);
        return 0;
    }
    sched_free(S.sched);
    adapters_free(S.ad);
    phi_model_free(S.pm);
    free(S.fds);
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.gone);
    logf_("stopped");
    return 0;
}
