/* Loading a phi file: mmap, validate, and bind the tensors the forward pass reads. */
#include "base/errmsg.h"
#include "base/fileio.h"
#include "base/pool.h"
#include "model/model.h"
#include "model/lora.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Find a tensor and check its shape: rows x cols for matrices (cols = 0 for a 1-D F32 vector). */
static const PhiTensorInfo *need(const PhiFile *f, const char *name, uint64_t rows, uint64_t cols,
                                 char *err, size_t errlen) {
    const PhiTensorInfo *t = phi_file_find(f, name);
    if (!t) {
        errorf(err, errlen, "model file has no tensor '%s'", name);
        return NULL;
    }
    int ok = cols ? t->ndim == 2 && t->ne[0] == rows && t->ne[1] == cols
                  : t->ndim == 1 && t->ne[0] == rows && t->type == TENSOR_F32;
    if (!ok) {
        errorf(err, errlen, "tensor '%s' has shape [%llu, %llu] (%s), expected [%llu, %llu]%s", name,
             (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
             type_traits(t->type)->name, (unsigned long long)rows, (unsigned long long)cols,
             cols ? "" : " f32");
        return NULL;
    }
    return t;
}

/* Every tensor of the schema, present or not: a present one must be in the file with its shape;
 * an absent one binds its alias (tied embeddings) or stays NULL. */
static int bind(Model *m, char *err, size_t errlen) {
    const PhiFile *f = &m->file;
    m->layers = calloc(m->hp.n_layers ? m->hp.n_layers : 1, sizeof *m->layers);
    if (!m->layers) return errorf(err, errlen, "out of memory");
    SchemaIter it = schema_iter(&m->hp);
    it.with_absent = 1;
    while (schema_next(&it)) {
        const SchemaItem *e = &it.item;
        const SchemaTensor *t = e->t;
        char *base = t->per_layer ? (char *)&m->layers[e->layer] : (char *)m;
        const PhiTensorInfo *ti;
        if (schema_present(&m->hp, t)) ti = need(f, e->name, e->rows, e->cols, err, errlen);
        else if (t->absent_alias) ti = need(f, t->absent_alias, e->rows, e->cols, err, errlen);
        else continue;
        if (!ti) return -1;
        if (t->ndim == 2) *(MatView *)(base + t->bind) = matview(ti->type, ti->data, (int)e->rows, (int)e->cols);
        else *(const float **)(base + t->bind) = ti->data;
    }
    return 0;
}

int model_from_buffer(const uint8_t *buf, uint64_t size, Model *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (phi_file_parse(buf, size, &m->file, err, errlen)) return -1;
    m->hp = m->file.hp;
    char terr[256];
    if (bind(m, err, errlen)) goto bad;
    m->tok = tok_load(m->file.tokenizer, m->file.tokenizer_size, terr, sizeof terr);
    if (!m->tok) {
        errorf(err, errlen, "tokenizer section: %s", terr);
        goto bad;
    }
    if (tok_vocab_size(m->tok) > (int)m->hp.vocab_size) {
        errorf(err, errlen, "tokenizer has %d pieces but the model only %u rows",
             tok_vocab_size(m->tok), m->hp.vocab_size);
        goto bad;
    }
    return 0;
bad:
    model_free(m);
    return -1;
}

/* The whole file in anonymous memory backed by 2 MiB pages where the kernel allows: streaming
 * the weights then walks 512x fewer page-table entries and the hardware prefetchers are not
 * stopped at every 4 KiB boundary (on a 2-core EPYC, reading 2 GB this way measured about twice
 * the bandwidth of the same bytes through a file mapping).
 *
 * Every CPU (up to 8) reads at once, each claiming the next 64 MiB chunk: most of a load is the
 * kernel zeroing each huge page as it is first written (85 % of the samples of a warm 2.2 GB
 * load), and each thread then zeroes the pages it reads into. Phi-3-mini q4 (2.2 GB) from the
 * page cache on the 2-core Zen 4 VM, one thread against two alternated: 0.49-0.86 s -> 0.21-0.24 s. */
#define READ_CHUNK ((size_t)64 << 20)

typedef struct {
    int fd;
    char *p;
    size_t size;
    atomic_size_t next;
    atomic_int failed; /* errno of the first failed read (EIO for a short file) */
} ReadJob;

static void read_job(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    ReadJob *j = arg;
    for (;;) {
        size_t a = atomic_fetch_add(&j->next, READ_CHUNK);
        if (a >= j->size || atomic_load(&j->failed)) return;
        size_t b = j->size - a < READ_CHUNK ? j->size : a + READ_CHUNK;
        while (a < b) {
            ssize_t k = pread(j->fd, j->p + a, b - a, (off_t)a);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                int zero = 0;
                atomic_compare_exchange_strong(&j->failed, &zero, k < 0 ? errno : EIO);
                return;
            }
            a += (size_t)k;
        }
    }
}

static void *read_to_huge_pages(int fd, size_t size) {
    void *p = huge_alloc(size);
    if (!p) return NULL;
    ReadJob j = {.fd = fd, .p = p, .size = size};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    /* every CPU up to 8; a file of one chunk on the caller alone */
    Pool *pool = size > READ_CHUNK ? pool_create_upto(8) : NULL;
    pool_run(pool, read_job, &j);
    pool_destroy(pool);
    int failed = atomic_load(&j.failed);
    if (failed) {
        huge_free(p, size);
        errno = failed;
        return NULL;
    }
    mprotect(p, size, PROT_READ);
    return p;
}

static struct {
    ModelNoteFn fn;
    void *ctx;
    int verbose;
} notes;

void model_set_notes(ModelNoteFn fn, void *ctx, int verbose) {
    notes.fn = fn;
    notes.ctx = ctx;
    notes.verbose = verbose;
}

/* A GGUF file: its phi image built once in anonymous memory (model/gguf_model.c), the file's
 * mapping released after. The weights are the GGUF's values; only the layout changes. */
static int load_gguf(int fd, size_t size, const char *path, Model *m, char *err, size_t errlen) {
    void *src = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (src == MAP_FAILED) return errorf(err, errlen, "cannot mmap %s: %s", path, strerror(errno));
    Gguf g;
    char e[512];
    uint8_t *img = NULL;
    uint64_t img_size = 0;
    GgufModelOptions o = {notes.fn, notes.ctx, notes.verbose};
    int rc = gguf_parse(src, size, &g, e, sizeof e);
    if (!rc) {
        rc = gguf_model_image(&g, &o, &img, &img_size, e, sizeof e);
        gguf_free(&g);
    }
    munmap(src, size);
    if (rc) return errorf(err, errlen, "%s: %s", path, e);
    if (model_from_buffer(img, img_size, m, e, sizeof e)) {
        munmap(img, (size_t)img_size);
        return errorf(err, errlen, "%s: %s", path, e);
    }
    m->map = img;
    m->map_size = (size_t)img_size;
    if (notes.fn) {
        char line[600];
        snprintf(line, sizeof line, "%s is GGUF: converted in memory; 'quant %s OUT.bin' writes it as a "
                 "phi file that loads in place (mmap)", path, path);
        notes.fn(notes.ctx, line);
    }
    return 0;
}

int model_load_ex(const char *path, Model *m, int flags, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errorf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return errorf(err, errlen, "%s is not a regular file", path);
    }
    char magic[4];
    if (st.st_size >= 4 && pread(fd, magic, 4, 0) == 4 && gguf_is_gguf(magic, 4) &&
        (uint64_t)st.st_size <= (uint64_t)SIZE_MAX / 2) {
        int rc = load_gguf(fd, (size_t)st.st_size, path, m, err, errlen);
        close(fd);
        return rc;
    }
    if (st.st_size < PHI_HEADER_SIZE) {
        close(fd);
        return errorf(err, errlen, "%s: not a phi model file (only %lld bytes)", path,
                    (long long)st.st_size);
    }
    /* A 32-bit build addresses less than the file (off_t is 64-bit, see the Makefile). */
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return errorf(err, errlen, "%s: %.2f GiB does not fit this %d-bit build's address space",
                      path, (double)st.st_size / (1u << 30), (int)sizeof(void *) * 8);
    }
    void *map;
    if (flags & MODEL_LOAD_COPY) {
        map = read_to_huge_pages(fd, (size_t)st.st_size);
        if (!map) map = MAP_FAILED;
    } else {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return errorf(err, errlen, "cannot %s %s: %s", flags & MODEL_LOAD_COPY ? "read" : "mmap", path,
                    strerror(map_errno));
    char e[512];
    if (model_from_buffer(map, (uint64_t)st.st_size, m, e, sizeof e)) {
        munmap(map, (size_t)st.st_size);
        return errorf(err, errlen, "%s: %s", path, e);
    }
    m->map = map;
    m->map_size = (size_t)st.st_size;
    return 0;
}

int model_load(const char *path, Model *m, char *err, size_t errlen) {
    return model_load_ex(path, m, 0, err, errlen);
}

void model_free(Model *m) {
    lora_detach_all(m);
    phi_file_free(&m->file);
    free(m->layers);
    if (m->tok) tok_free(m->tok);
    if (m->map) munmap(m->map, m->map_size);
    memset(m, 0, sizeof *m);
}
