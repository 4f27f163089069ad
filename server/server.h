/* phi-server: the OpenAI-compatible HTTP server (POSIX sockets, pthreads). One thread accepts,
 * one thread per connection reads, validates and answers (bounded: --conn), and the scheduler
 * (server/sched.h) runs every generation. */
#ifndef PHI_SERVER_SERVER_H
#define PHI_SERVER_SERVER_H

typedef struct {
    const char *model_path, *host, *api_key, *alias;
    int port;        /* 0: any free port (the listening line says which) */
    int n_parallel;  /* slots */
    int n_ctx;       /* total positions, split evenly among the slots; 0: the model's, at most 4096 */
    int n_threads;   /* 0: one per CPU */
    int cache_type_k, cache_type_v; /* KV cache types of the slots (model/model.h KV_*; 0: F16) */
    int timeout_s;   /* reading one request (head and body) and each write */
    int queue;       /* requests waiting for a slot before 503 */
    int max_conn;    /* open connections before 503 */
    long long max_body;
    int mmap;        /* map the model file instead of copying it */
    int draft_max;   /* --lookup / --draft-max: prompt-lookup drafts per pass for greedy requests (0: off) */
    const char *lora_path[64]; /* --lora / --lora-scaled, in order (ids 0..n_lora-1) */
    float lora_scale[64];
    int n_lora;
    int lora_init_without_apply; /* every adapter starts at scale 0 (POST /lora-adapters sets them) */
} ServerOptions;

/* Runs until SIGINT/SIGTERM; returns the process exit status (having printed one line on error). */
int server_run(const ServerOptions *o);

#endif
