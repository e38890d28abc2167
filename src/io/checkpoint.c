/* checkpoint.c — the checkpoint file: a fixed little-endian header and one zstd frame of
 * byte planes, written atomically and read back with a check (and a message) for every way a
 * file can be wrong. The only file that includes <zstd.h>.
 *
 * Header, version 2 (SN_CKPT_HEADER_SIZE = 160 bytes, all integers little-endian):
 *     0  magic "SHRDNET\0"        8  u32 version          12  u32 header size (160)
 *    16  u64 config_hash         24  u64 model_hash       32  i64 step
 *    40  i32 epoch               44  i32 world_size       48  u64 n_params
 *    56  u64 n_state             64  u64 n_opt            72  f64 best_val_loss
 *    80  f64 val_loss            88  f32 lr               92  u32 floats per plane block
 *    96  u64 rng_state[0]       104  u64 rng_state[1]    112  u64 seed
 *   120  i64 loader_pos         128  u64 payload bytes   136  u64 record bytes
 *   144  u64 FNV-1a 64 of the record                     152  u64 FNV-1a 64 of bytes 0..151
 * Version 1 (144 bytes) ends at 136 with the header checksum and has no record.
 * Fields are written one by one (never a struct dump), so the format does not depend on the
 * compiler's padding or the machine's byte order.
 *
 * The run record (text) follows the header, then the payload.
 *
 * Payload: params, then state, then opt; each cut into blocks of `block` floats, and each
 * block stored as four planes (byte 0 of every float, then byte 1, ...). The frame records its
 * content size and a checksum (ZSTD_c_checksumFlag). */
#include "checkpoint.h"

#include <errno.h>    // defines: errno
#include <fcntl.h>    // defines: open, O_WRONLY, O_CREAT, O_EXCL, O_RDONLY, O_DIRECTORY
#include <stdarg.h>   // defines: va_list, va_start, va_end
#include <stdio.h>    // defines: FILE, fopen, fread, fwrite, fseek, vsnprintf
#include <stdlib.h>   // defines: malloc, realloc, free, strtod
#include <string.h>   // defines: memcpy, memcmp, memset, strerror, strlen, strncmp
#include <sys/stat.h> // defines: fstat, struct stat

#include <zstd.h> // defines: ZSTD_CCtx, ZSTD_compressStream2, ZSTD_decompressStream

static const char MAGIC[8] = {'S', 'H', 'R', 'D', 'N', 'E', 'T', '\0'};

/* Level 1: ~1 GB/s on weights here; higher levels gain almost nothing on float planes. */
#define ZSTD_LEVEL 1
/* Largest block size a reader accepts (its plane buffer is 4x this). */
#define BLOCK_MAX (1u << 22)

/* ---- header encoding ---------------------------------------------------------------------- */

static void put32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static uint64_t get64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void encode_header(unsigned char h[SN_CKPT_HEADER_SIZE], const struct sn_ckpt_meta *m,
                          uint32_t block, uint64_t payload, uint64_t record_bytes,
                          uint64_t record_hash)
{
    uint32_t lr;
    memcpy(&lr, &m->lr, sizeof lr);
    memcpy(h, MAGIC, 8);
    put32(h + 8, SN_CKPT_VERSION);
    put32(h + 12, SN_CKPT_HEADER_SIZE);
    put64(h + 16, m->config_hash);
    put64(h + 24, m->model_hash);
    put64(h + 32, (uint64_t)m->step);
    put32(h + 40, (uint32_t)m->epoch);
    put32(h + 44, (uint32_t)m->world_size);
    put64(h + 48, m->n_params);
    put64(h + 56, m->n_state);
    put64(h + 64, m->n_opt);
    put64(h + 72, double_bits(m->best_val_loss));
    put64(h + 80, double_bits(m->val_loss));
    put32(h + 88, lr);
    put32(h + 92, block);
    put64(h + 96, m->rng_state[0]);
    put64(h + 104, m->rng_state[1]);
    put64(h + 112, m->seed);
    put64(h + 120, (uint64_t)m->loader_pos);
    put64(h + 128, payload);
    put64(h + 136, record_bytes);
    put64(h + 144, record_hash);
    put64(h + 152, sn_hash_bytes(h, 152, SN_HASH_INIT));
}

/* What read_header learned beyond the meta. */
struct ckpt_layout {
    uint32_t block;       /* floats per plane block */
    uint32_t header;      /* header bytes (by version) */
    uint64_t payload;     /* compressed bytes after the header and record */
    uint64_t record_hash; /* FNV-1a 64 of the record */
    long long file_bytes; /* size of the file */
};

/* Reads and checks the header of an open file. */
static int read_header(FILE *f, const char *path, struct sn_ckpt_meta *m, struct ckpt_layout *lay,
                       struct sn_err *err)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return sn_err_set(err, SN_EIO, "%s: cannot stat checkpoint: %s", path, strerror(errno));
    lay->file_bytes = (long long)st.st_size;
    unsigned char h[SN_CKPT_HEADER_SIZE];
    size_t n = fread(h, 1, sizeof h, f);
    if (n < sizeof h && ferror(f))
        return sn_err_set(err, SN_EIO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    if (memcmp(h, MAGIC, n < 8 ? n : 8) != 0 || n == 0)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: not a shardnet checkpoint (bad magic; expected \"SHRDNET\")", path);
    if (n < 12)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: truncated checkpoint: %zu bytes, the header alone needs %d", path,
                          n, SN_CKPT_HEADER_SIZE);
    uint32_t version = get32(h + 8);
    if (version != SN_CKPT_VERSION && version != 1)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: checkpoint format version %u, this build reads versions 1 and %d; "
                          "HINT: use the shardnet that wrote it",
                          path, version, SN_CKPT_VERSION);
    lay->header = version == 1 ? SN_CKPT_V1_HEADER_SIZE : SN_CKPT_HEADER_SIZE;
    if (n < lay->header)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: truncated checkpoint: %zu bytes, the header alone needs %u", path,
                          n, lay->header);
    if (get64(h + lay->header - 8) != sn_hash_bytes(h, lay->header - 8, SN_HASH_INIT))
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header checksum mismatch (corrupt file)",
                          path);
    if (get32(h + 12) != lay->header)
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header size %u, expected %u", path,
                          get32(h + 12), lay->header);

    memset(m, 0, sizeof *m);
    m->version = version;
    m->config_hash = get64(h + 16);
    m->model_hash = get64(h + 24);
    m->step = (int64_t)get64(h + 32);
    m->epoch = (int32_t)get32(h + 40);
    m->world_size = (int32_t)get32(h + 44);
    m->n_params = get64(h + 48);
    m->n_state = get64(h + 56);
    m->n_opt = get64(h + 64);
    m->best_val_loss = bits_double(get64(h + 72));
    m->val_loss = bits_double(get64(h + 80));
    uint32_t lr = get32(h + 88);
    memcpy(&m->lr, &lr, sizeof lr);
    lay->block = get32(h + 92);
    m->rng_state[0] = get64(h + 96);
    m->rng_state[1] = get64(h + 104);
    m->seed = get64(h + 112);
    m->loader_pos = (int64_t)get64(h + 120);
    lay->payload = get64(h + 128);
    m->record_bytes = version == 1 ? 0 : get64(h + 136);
    lay->record_hash = version == 1 ? SN_HASH_INIT : get64(h + 144);

    /* counts that a valid writer cannot produce: 2^60 floats is beyond any memory */
    const uint64_t lim = 1ull << 60;
    if (m->n_params > lim || m->n_state > lim || m->n_opt > lim || lay->block == 0 ||
        lay->block > BLOCK_MAX || lay->payload > lim || m->record_bytes > SN_CKPT_RECORD_MAX)
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header has impossible sizes", path);
    /* the reader is positioned after the header: a version 1 file has a shorter one */
    if (fseek(f, lay->header, SEEK_SET) != 0)
        return sn_err_set(err, SN_EIO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    uint64_t want = lay->header + m->record_bytes + lay->payload;
    if ((uint64_t)lay->file_bytes < want)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: truncated checkpoint: %lld bytes, its header says %llu; HINT: was "
                          "it copied while being written, or the disk full?",
                          path, lay->file_bytes, (unsigned long long)want);
    if ((uint64_t)lay->file_bytes > want)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: checkpoint has %llu bytes after its payload (file %lld bytes, "
                          "header says %llu)",
                          path, (unsigned long long)((uint64_t)lay->file_bytes - want),
                          lay->file_bytes, (unsigned long long)want);
    return SN_OK;
}

/* ---- byte planes -------------------------------------------------------------------------- */

/* x[n] -> planes[4n]: planes[p*n + i] = byte p (little-endian) of x[i]. */
static void to_planes(const float *x, size_t n, unsigned char *planes)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        planes[i] = (unsigned char)u;
        planes[n + i] = (unsigned char)(u >> 8);
        planes[2 * n + i] = (unsigned char)(u >> 16);
        planes[3 * n + i] = (unsigned char)(u >> 24);
    }
}

static void from_planes(const unsigned char *planes, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)planes[i] | (uint32_t)planes[n + i] << 8 |
                     (uint32_t)planes[2 * n + i] << 16 | (uint32_t)planes[3 * n + i] << 24;
        memcpy(&x[i], &u, sizeof u);
    }
}

/* ---- save --------------------------------------------------------------------------------- */

struct writer {
    FILE *f;
    ZSTD_CCtx *cctx;
    unsigned char *out; /* owned: compressed bytes on their way to f */
    size_t out_cap;
    uint64_t written;   /* compressed bytes written */
    const char *tmp;
};

/* Compresses src (or finishes the frame when end) and writes what comes out. */
static int push(struct writer *w, const void *src, size_t n, int end, struct sn_err *err)
{
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t rem = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(rem))
            return sn_err_set(err, SN_EIO, "%s: zstd compression failed: %s", w->tmp,
                              ZSTD_getErrorName(rem));
        if (out.pos > 0 && fwrite(w->out, 1, out.pos, w->f) != out.pos)
            return sn_err_set(err, SN_EIO, "%s: cannot write checkpoint: %s", w->tmp,
                              strerror(errno));
        w->written += out.pos;
        if (end ? rem == 0 : in.pos == in.size)
            return SN_OK;
    }
}

static int push_array(struct writer *w, const float *x, uint64_t n, unsigned char *planes,
                      struct sn_err *err)
{
    for (uint64_t i = 0; i < n; i += SN_CKPT_BLOCK) {
        size_t m = (size_t)(n - i < SN_CKPT_BLOCK ? n - i : SN_CKPT_BLOCK);
        to_planes(x + i, m, planes);
        SN_FORWARD(push(w, planes, 4 * m, 0, err));
    }
    return SN_OK;
}

uint64_t sn_checkpoint_bytes_max(uint64_t n_floats, uint64_t record_bytes)
{
    /* one zstd frame over the byte planes: at worst the input and zstd's bound on top */
    return SN_CKPT_HEADER_SIZE + record_bytes + ZSTD_compressBound((size_t)(4 * n_floats));
}

int sn_checkpoint_save(const char *path, const struct sn_ckpt_meta *meta, const float *params,
                       const float *state, const float *opt, struct sn_err *err)
{
    SN_RETURN_IF((meta->n_params && !params) || (meta->n_state && !state) ||
                     (meta->n_opt && !opt),
                 err, SN_EINVAL, "%s: checkpoint save: NULL array with a non-zero count", path);
    const char *record = meta->record ? meta->record : "";
    uint64_t record_bytes = strlen(record);
    SN_RETURN_IF(record_bytes > SN_CKPT_RECORD_MAX, err, SN_EINVAL,
                 "%s: checkpoint save: run record of %llu bytes", path,
                 (unsigned long long)record_bytes);
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    int rc = SN_OK;
    struct writer w = {.f = af.f, .tmp = af.tmp};
    unsigned char *planes = NULL;
    unsigned char header[SN_CKPT_HEADER_SIZE] = {0};
    w.cctx = ZSTD_createCCtx();
    w.out_cap = ZSTD_CStreamOutSize();
    w.out = malloc(w.out_cap);
    planes = malloc(4 * (size_t)SN_CKPT_BLOCK);
    if (w.cctx == NULL || w.out == NULL || planes == NULL) {
        rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory for checkpoint buffers", path);
        goto done;
    }
    uint64_t total = 4 * (meta->n_params + meta->n_state + meta->n_opt);
    size_t zr = ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setPledgedSrcSize(w.cctx, total);
    if (ZSTD_isError(zr)) {
        rc = sn_err_set(err, SN_EIO, "%s: zstd setup failed: %s", path, ZSTD_getErrorName(zr));
        goto done;
    }

    /* room for the header now; its payload size and checksum are known only at the end */
    if (fwrite(header, 1, sizeof header, w.f) != sizeof header ||
        fwrite(record, 1, record_bytes, w.f) != record_bytes) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot write checkpoint: %s", af.tmp, strerror(errno));
        goto done;
    }
    if ((rc = push_array(&w, params, meta->n_params, planes, err)) != SN_OK ||
        (rc = push_array(&w, state, meta->n_state, planes, err)) != SN_OK ||
        (rc = push_array(&w, opt, meta->n_opt, planes, err)) != SN_OK ||
        (rc = push(&w, NULL, 0, 1, err)) != SN_OK)
        goto done;
    encode_header(header, meta, SN_CKPT_BLOCK, w.written, record_bytes,
                  sn_hash_bytes(record, record_bytes, SN_HASH_INIT));
    if (fseek(w.f, 0, SEEK_SET) != 0 || fwrite(header, 1, sizeof header, w.f) != sizeof header) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot write checkpoint: %s", af.tmp, strerror(errno));
        goto done;
    }
    rc = sn_atomic_commit(&af, err);
done:
    sn_atomic_abort(&af); /* after a commit: nothing left to do */
    ZSTD_freeCCtx(w.cctx);
    free(w.out);
    free(planes);
    return rc;
}

/* ---- load --------------------------------------------------------------------------------- */

struct reader {
    FILE *f;
    const char *path;
    ZSTD_DCtx *dctx;
    unsigned char *in; /* owned: compressed bytes read from f */
    ZSTD_inBuffer ib;
    uint64_t left;     /* compressed bytes not yet read from f */
    size_t last;       /* last ZSTD_decompressStream result: 0 once the frame is complete */
    uint64_t total;    /* decompressed bytes the header promises */
    uint64_t done;     /* decompressed bytes so far */
};

/* Refills the input buffer once it is used up (it stays empty at the end of the payload). */
static int refill(struct reader *r, struct sn_err *err)
{
    if (r->ib.pos < r->ib.size || r->left == 0)
        return SN_OK;
    size_t cap = ZSTD_DStreamInSize();
    size_t want = r->left < cap ? (size_t)r->left : cap;
    size_t got = fread(r->in, 1, want, r->f);
    if (got != want)
        return sn_err_set(err, SN_EIO, "%s: cannot read checkpoint payload: %s", r->path,
                          ferror(r->f) ? strerror(errno) : "unexpected end of file");
    r->left -= got;
    r->ib = (ZSTD_inBuffer){r->in, got, 0};
    return SN_OK;
}

/* Decompresses exactly n bytes into dst. */
static int pull(struct reader *r, unsigned char *dst, size_t n, struct sn_err *err)
{
    ZSTD_outBuffer ob = {dst, n, 0};
    while (ob.pos < ob.size) {
        SN_FORWARD(refill(r, err));
        size_t out0 = ob.pos, in0 = r->ib.pos;
        if (r->last != 0) {
            /* called even with no input left: zstd may still hold decoded bytes to flush */
            r->last = ZSTD_decompressStream(r->dctx, &ob, &r->ib);
            if (ZSTD_isError(r->last))
                return sn_err_set(err, SN_EFORMAT, "%s: corrupt checkpoint payload: %s",
                                  r->path, ZSTD_getErrorName(r->last));
        }
        if (ob.pos == out0 && r->ib.pos == in0)
            return sn_err_set(err, SN_EFORMAT,
                              "%s: checkpoint payload ends after %llu of %llu bytes "
                              "(decompressed size mismatch)",
                              r->path, (unsigned long long)(r->done + ob.pos),
                              (unsigned long long)r->total);
    }
    r->done += n;
    return SN_OK;
}

/* Reads n floats into x (or decodes and drops them when x is NULL). */
static int pull_array(struct reader *r, float *x, uint64_t n, uint32_t block,
                      unsigned char *planes, struct sn_err *err)
{
    for (uint64_t i = 0; i < n; i += block) {
        size_t m = (size_t)(n - i < block ? n - i : block);
        SN_FORWARD(pull(r, planes, 4 * m, err));
        if (x != NULL)
            from_planes(planes, m, x + i);
    }
    return SN_OK;
}

/* After the last expected byte: the frame must end there (this verifies its checksum) and the
 * payload with it. */
static int finish(struct reader *r, unsigned char *scratch, size_t cap, struct sn_err *err)
{
    while (r->last != 0) {
        SN_FORWARD(refill(r, err));
        size_t in0 = r->ib.pos;
        ZSTD_outBuffer ob = {scratch, cap, 0};
        r->last = ZSTD_decompressStream(r->dctx, &ob, &r->ib);
        if (ZSTD_isError(r->last))
            return sn_err_set(err, SN_EFORMAT, "%s: corrupt checkpoint payload: %s", r->path,
                              ZSTD_getErrorName(r->last));
        if (ob.pos > 0)
            return sn_err_set(err, SN_EFORMAT,
                              "%s: checkpoint payload holds more than the %llu bytes its header "
                              "says (decompressed size mismatch)",
                              r->path, (unsigned long long)r->total);
        if (r->last != 0 && r->ib.pos == in0)
            return sn_err_set(err, SN_EFORMAT,
                              "%s: checkpoint payload is cut short (zstd frame incomplete)",
                              r->path);
    }
    if (r->ib.pos < r->ib.size || r->left > 0)
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint payload has data after its zstd frame",
                          r->path);
    return SN_OK;
}

static int check_count(const char *path, const char *what, uint64_t have, int64_t expect,
                       const char *hint, struct sn_err *err)
{
    if (expect < 0 || have == (uint64_t)expect)
        return SN_OK;
    return sn_err_set(err, SN_EINVAL, "%s: has %llu %s, the model has %lld — %s", path,
                      (unsigned long long)have, what, (long long)expect, hint);
}

/* Reads the record that follows the header and checks its checksum; *out (if out is not NULL)
 * gets a malloc'ed NUL-terminated copy. Leaves f at the payload. */
static int read_record(FILE *f, const char *path, const struct sn_ckpt_meta *m,
                       const struct ckpt_layout *lay, char **out, struct sn_err *err)
{
    char *text = malloc(m->record_bytes + 1);
    SN_RETURN_IF(text == NULL, err, SN_ENOMEM, "%s: out of memory for the run record", path);
    if (fread(text, 1, m->record_bytes, f) != m->record_bytes) {
        free(text);
        return sn_err_set(err, SN_EIO, "%s: cannot read the run record: %s", path,
                          ferror(f) ? strerror(errno) : "unexpected end of file");
    }
    text[m->record_bytes] = '\0';
    if (sn_hash_bytes(text, m->record_bytes, SN_HASH_INIT) != lay->record_hash ||
        strlen(text) != m->record_bytes) {
        free(text);
        return sn_err_set(err, SN_EFORMAT, "%s: run record checksum mismatch (corrupt file)", path);
    }
    if (out)
        *out = text;
    else
        free(text);
    return SN_OK;
}

int sn_checkpoint_read_meta(const char *path, struct sn_ckpt_meta *meta, struct sn_err *err)
{
    FILE *f;
    SN_FORWARD(sn_fopen_regular(path, "rb", "checkpoint", &f, err));
    struct ckpt_layout lay;
    int rc = read_header(f, path, meta, &lay, err);
    fclose(f);
    return rc;
}

int sn_checkpoint_read_record(const char *path, char **text, struct sn_err *err)
{
    *text = NULL;
    FILE *f;
    SN_FORWARD(sn_fopen_regular(path, "rb", "checkpoint", &f, err));
    struct ckpt_layout lay;
    struct sn_ckpt_meta meta;
    int rc = read_header(f, path, &meta, &lay, err);
    if (rc == SN_OK)
        rc = read_record(f, path, &meta, &lay, text, err);
    fclose(f);
    return rc;
}

int sn_checkpoint_load(const char *path, struct sn_ckpt_meta *meta, float *params,
                       int64_t expect_params, float *state, int64_t expect_state, float *opt,
                       int64_t expect_opt, struct sn_err *err)
{
    struct reader r = {.path = path, .last = 1};
    unsigned char *planes = NULL;
    struct ckpt_layout lay;
    int rc;
    SN_FORWARD(sn_fopen_regular(path, "rb", "checkpoint", &r.f, err));
    if ((rc = read_header(r.f, path, meta, &lay, err)) != SN_OK ||
        (rc = check_count(path, "parameters", meta->n_params, expect_params,
                          "was it trained with another config?", err)) != SN_OK ||
        (rc = check_count(path, "state values (batchnorm statistics)", meta->n_state,
                          expect_state, "was it trained with another config?", err)) != SN_OK ||
        (rc = check_count(path, "optimizer moments", meta->n_opt, expect_opt,
                          "was it trained with another optimizer? HINT: evaluate/predict need "
                          "no moments",
                          err)) != SN_OK)
        goto done;
    if ((rc = read_record(r.f, path, meta, &lay, NULL, err)) != SN_OK)
        goto done;
    if ((meta->n_params && !params) || (meta->n_state && !state)) {
        rc = sn_err_set(err, SN_EINVAL, "%s: checkpoint load: NULL array for a non-empty part",
                        path);
        goto done;
    }
    r.left = lay.payload;
    r.total = 4 * (meta->n_params + meta->n_state + meta->n_opt);
    r.dctx = ZSTD_createDCtx();
    r.in = malloc(ZSTD_DStreamInSize());
    planes = malloc(4 * (size_t)lay.block);
    if (r.dctx == NULL || r.in == NULL || planes == NULL) {
        rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory for checkpoint buffers", path);
        goto done;
    }
    r.ib = (ZSTD_inBuffer){r.in, 0, 0};
    /* the frame header states its content size: a mismatch is caught before decoding */
    if ((rc = refill(&r, err)) != SN_OK)
        goto done;
    unsigned long long fcs = ZSTD_getFrameContentSize(r.ib.src, r.ib.size);
    if (fcs == ZSTD_CONTENTSIZE_ERROR) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: checkpoint payload is not a zstd frame", path);
        goto done;
    }
    if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != r.total) {
        rc = sn_err_set(err, SN_EFORMAT,
                        "%s: decompressed size mismatch: the frame holds %llu bytes, the header "
                        "says %llu",
                        path, fcs, (unsigned long long)r.total);
        goto done;
    }
    if ((rc = pull_array(&r, params, meta->n_params, lay.block, planes, err)) != SN_OK ||
        (rc = pull_array(&r, state, meta->n_state, lay.block, planes, err)) != SN_OK ||
        (rc = pull_array(&r, opt, meta->n_opt, lay.block, planes, err)) != SN_OK ||
        (rc = finish(&r, planes, 4 * (size_t)lay.block, err)) != SN_OK)
        goto done;
done:
    fclose(r.f);
    ZSTD_freeDCtx(r.dctx);
    free(r.in);
    free(planes);
    return rc;
}

/* ---- run record --------------------------------------------------------------------------- */

static void record_put(struct sn_record *r, const char *s, size_t n)
{
    if (r->failed)
        return;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (r->len + n + 1 > cap)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (t == NULL) {
            r->failed = 1;
            return;
        }
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = '\0';
}

void sn_record_add(struct sn_record *r, const char *key, const char *fmt, ...)
{
    /* most values fit the stack; a config value may not (a list of 1,000 class names) */
    char small[4096], *buf = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= sizeof small && (buf = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (n < 0 || buf == NULL) {
        r->failed = 1;
        return;
    }
    record_put(r, key, strlen(key));
    record_put(r, "=", 1);
    for (const char *p = buf; *p; p++)
        if (*p == '\\')
            record_put(r, "\\\\", 2);
        else if (*p == '\n')
            record_put(r, "\\n", 2);
        else
            record_put(r, p, 1);
    record_put(r, "\n", 1);
    if (buf != small)
        free(buf);
}

void sn_record_free(struct sn_record *r)
{
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* The start of the value of the nth line "key=...", or NULL. */
static const char *record_find(const char *text, const char *key, int nth)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=' && nth-- == 0)
            return p + klen + 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

int sn_record_get(const char *text, const char *key, int nth, char *out, size_t cap)
{
    const char *v = text ? record_find(text, key, nth) : NULL;
    if (v == NULL || cap == 0)
        return 0;
    size_t n = 0;
    for (; *v && *v != '\n' && n + 1 < cap; v++) {
        char c = *v;
        if (c == '\\' && v[1] == 'n')
            c = '\n', v++;
        else if (c == '\\' && v[1] == '\\')
            v++;
        out[n++] = c;
    }
    out[n] = '\0';
    return 1;
}

int sn_record_count(const char *text, const char *key)
{
    int n = 0;
    while (text && record_find(text, key, n))
        n++;
    return n;
}

int sn_record_double(const char *text, const char *key, int nth, double *out)
{
    char v[96], *end;
    if (!sn_record_get(text, key, nth, v, sizeof v))
        return -1;
    *out = strtod(v, &end);
    return end != v && *end == '\0' ? 0 : -1;
}
