/* The smallest program on the phi library: chat-render one message, stream the reply.
 *   make examples && build/examples/simple model.phi "Write a haiku about the sea." [n_tokens] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phi.h"

static int print_piece(void *user, int id, const char *text, size_t len) {
    (void)user, (void)id;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop generation here */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    phi_model *m = NULL;
    phi_session *s = NULL;
    char *text = NULL;
    int *ids = NULL, bos = 0, rc = 1;
    if (phi_model_open(argv[1], 0, &m)) goto out;
    phi_session_params p = phi_session_default_params(); /* greedy, the model's context */
    if (phi_session_new(m, &p, &s)) goto out;
    phi_message msg = {"user", argv[2]};
    if (phi_chat_render(m, &msg, 1, &text, &bos)) goto out;
    int n = phi_tokenize(m, text, strlen(text), bos, NULL, 0);
    if (n < 0 || !(ids = malloc((size_t)n * sizeof *ids))) goto out;
    phi_tokenize(m, text, strlen(text), bos, ids, n);
    if (phi_session_prompt(s, ids, n)) goto out;
    phi_gen_result r;
    if (phi_generate(s, argc > 3 ? atoi(argv[3]) : 32, print_piece, NULL, &r)) goto out;
    printf("\n");
    fprintf(stderr, "%d tokens, finish %s\n", r.n_tokens, r.finish == PHI_FINISH_STOP ? "stop" : "length");
    rc = 0;
out:
    if (rc) fprintf(stderr, "simple: %s\n", phi_last_error());
    free(ids);
    phi_free(text);
    phi_session_free(s);
    phi_model_free(m);
    return rc;
}
