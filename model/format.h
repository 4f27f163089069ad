/* phi file format: on-disk structures, writer and validating reader.
 * docs/FORMAT.md is the specification; this header mirrors it. Little-endian. */
#ifndef PHI_FORMAT_H
#define PHI_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define PHI_MAGIC "PHIMODEL"
#define PHI_VERSION 2
#define PHI_ALIGN 64
#define PHI_HEADER_SIZE 128
#define PHI_HPARAMS_SIZE 256
#define PHI_TENSOR_ENTRY_SIZE 128
#define PHI_NAME_MAX 64 /* bytes in a directory name field, NUL included */
#define PHI_MAX_STOP_IDS 8
#define PHI_MAX_TENSORS 100000

/* Hyperparameter bounds (docs/FORMAT.md, "Hyperparameters"). They keep every size and position
 * the forward pass forms in int below 2^31: see phi_hparams_check. */
#define PHI_MAX_VOCAB (1u << 22)
#define PHI_MAX_DIM (1u << 17)       /* dim, and n_heads x head_dim */
#define PHI_MAX_LAYERS 1024u
#define PHI_MAX_HEADS 4096u
#define PHI_MAX_HEAD_DIM 4096u
#define PHI_MAX_HIDDEN (1u << 20)
#define PHI_MAX_POSITIONS (1u << 24) /* max_seq_len, orig_max_seq_len */
#define PHI_MAX_WINDOW (1u << 30)    /* sliding_window as stored; >= max_seq_len reads as 0 */

enum { PHI_ARCH_PHI3 = 1 };
enum { PHI_ROPE_NONE = 0, PHI_ROPE_LONGROPE = 1 };

/* Hyperparameters: a fixed 256-byte record of 32-bit fields. */
typedef struct {
    uint32_t arch;             /* PHI_ARCH_PHI3 */
    uint32_t vocab_size;       /* rows of the embedding and of the LM head */
    uint32_t dim;              /* hidden_size */
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t hidden_dim;       /* intermediate_size */
    uint32_t max_seq_len;      /* max_position_embeddings */
    uint32_t orig_max_seq_len; /* original_max_position_embeddings */
    uint32_t rope_dims;        /* rotated dimensions per head (even, <= head_dim) */
    uint32_t sliding_window;   /* 0: none */
    uint32_t rope_scaling;     /* PHI_ROPE_* */
    uint32_t tie_embeddings;   /* 1: no LM head tensor, the embedding is used */
    uint32_t bos_id;
    uint32_t eos_id;
    uint32_t pad_id;
    uint32_t n_stop_ids;
    uint32_t stop_ids[PHI_MAX_STOP_IDS];
    float rope_theta;
    float rms_eps;
    float rope_attn_factor; /* multiplies cos and sin (LongRoPE); 1 otherwise */
    float partial_rotary_factor;
    uint32_t file_type; /* tensor type of the big matrices, informational */
    uint32_t reserved[33];
} PhiHParams;

_Static_assert(sizeof(PhiHParams) == PHI_HPARAMS_SIZE, "hparams record is 256 bytes");

/* One tensor of the directory, as used in memory. */
typedef struct {
    char name[PHI_NAME_MAX];
    uint32_t type;  /* TensorType from kernels/blocks.h */
    uint32_t ndim;  /* 1 or 2 */
    uint64_t ne[2]; /* ne[0] = rows (or length when 1-D), ne[1] = columns */
    uint64_t offset; /* from the start of the file, multiple of PHI_ALIGN */
    uint64_t size;   /* bytes, = tensor_nbytes(type, rows, cols) */
    const void *data; /* reader only: pointer into the mapping */
} PhiTensorInfo;

/* A parsed, validated file image (pointers into the caller's buffer). */
typedef struct {
    PhiHParams hp;
    const uint8_t *tokenizer; /* opaque section, see tokenizer/tokenizer.h */
    uint64_t tokenizer_size;
    uint32_t n_tensors;
    PhiTensorInfo *tensors; /* malloc'd, n_tensors */
} PhiFile;

/* Validate every byte of the header, hyperparameters and directory of the image buf[0..size)
 * and fill *out. Returns 0, or -1 with a one-line message in err. Never reads outside buf. */
int phi_file_parse(const uint8_t *buf, uint64_t size, PhiFile *out, char *err, size_t errlen);
void phi_file_free(PhiFile *f);
const PhiTensorInfo *phi_file_find(const PhiFile *f, const char *name);

/* Check hyperparameters for consistency and the ranges of docs/FORMAT.md. 0 or -1 with err.
 * phi_file_parse then reads a sliding_window >= max_seq_len as 0 (none): no position the model
 * accepts is that far back, so the two mean the same. */
int phi_hparams_check(const PhiHParams *hp, char *err, size_t errlen);

/* Writer. Usage: phi_writer_open; phi_writer_add_tensor for every tensor (this fixes the
 * directory and every offset); phi_writer_begin_data (writes header, hyperparameters, tokenizer
 * and directory, and sizes the file); phi_writer_write_at any number of times, in any order, to
 * fill tensor bytes; phi_writer_finish. Unwritten bytes (padding) are zero, so output is
 * deterministic. On any error call phi_writer_abort.
 * The output PATH must pass phi_output_check (at open, and again before the rename). Data go to a
 * new file PATH.tmp.PID.N created exclusively (O_EXCL: an existing file of that name is never
 * touched), renamed to PATH by finish; abort and failures remove it, and so does SIGINT, SIGTERM
 * or SIGHUP after phi_cleanup_on_signals. A failed conversion never leaves a file behind, and no
 * file but PATH is ever replaced. Every write, ftruncate, fsync and close is checked. */
typedef struct PhiWriter PhiWriter;
PhiWriter *phi_writer_open(const char *path, const PhiHParams *hp, const void *tokenizer,
                           uint64_t tokenizer_size, char *err, size_t errlen);
/* Returns the tensor's index (>= 0) or -1. */
int phi_writer_add_tensor(PhiWriter *w, const char *name, uint32_t type, uint32_t ndim,
                          uint64_t rows, uint64_t cols, char *err, size_t errlen);
int phi_writer_begin_data(PhiWriter *w, char *err, size_t errlen);
int phi_writer_write_at(PhiWriter *w, int tensor, uint64_t offset, const void *data, uint64_t n,
                        char *err, size_t errlen);
int phi_writer_finish(PhiWriter *w, char *err, size_t errlen);
void phi_writer_abort(PhiWriter *w);
/* The same writer building the image in memory instead of a file (a GGUF run directly,
 * model/gguf_model.c): open_mem, add tensors, begin_data, write_at, then finish_mem hands over
 * the read-only image (anonymous memory of *size bytes: release it with munmap), or abort. */
PhiWriter *phi_writer_open_mem(const PhiHParams *hp, const void *tokenizer, uint64_t tokenizer_size,
                               char *err, size_t errlen);
int phi_writer_finish_mem(PhiWriter *w, uint8_t **image, uint64_t *size, char *err, size_t errlen);

/* Whether PATH can be the output of a writer, checked before any work: not empty, not ending in
 * '/', and if it exists a regular file (not a symbolic link, even to a regular file: links are
 * refused rather than replaced or written through; not a folder, device, FIFO or socket); its
 * folder exists and is writable. 0 or -1 with err. */
int phi_output_check(const char *path, char *err, size_t errlen);
/* Install handlers for SIGINT, SIGTERM and SIGHUP (those not ignored at startup) that remove the
 * temporary file of the writer in progress and the file given to phi_cleanup_also, then end the
 * process by the same signal. 0 or -1. */
int phi_cleanup_on_signals(void);
/* One more file (or NULL: none) for the handlers above to remove; the caller's own temporary. */
void phi_cleanup_also(const char *path);

#endif
