/* checkpoint.c — the checkpoint file: a fixed little-endian header and one zstd frame of
 * byte planes, written atomically and read back with a check (and a message) for every way a
 * file can be wrong. The only file that includes <zstd.h>.
 *
 * Header, version 1 (SN_CKPT_HEADER_SIZE = 144 bytes, all integers little-endian):
 *     0  magic "SHRDNET\0"        8  u32 version          12  u32 header size (144)
 *    16  u64 config_hash         24  u64 model_hash       32  i64 step
 *    40  i32 epoch               44  i32 world_size       48  u64 n_params
 *    56  u64 n_state             64  u64 n_opt            72  f64 best_val_loss
 *    80  f64 val_loss            88  f32 lr               92  u32 floats per plane block
 *    96  u64 rng_state[0]       104  u64 rng_state[1]    112  u64 seed
 *   120  i64 loader_pos         128  u64 payload bytes   136  u64 FNV-1a 64 of bytes 0..135
 * Fields are written one by one (never a struct dump), so the format does not depend on the
 * compiler's padding or the machine's byte order.
 *
 * Payload: params, then state, then opt; each cut into blocks of `block` floats, and each
 * block stored as four planes (byte 0 of every float, then byte 1, ...). The frame records its
 * content size and a checksum (ZSTD_c_checksumFlag). */
#include "checkpoint.h"

#include <errno.h>    // defines: errno
#include <fcntl.h>    // defines: open, O_WRONLY, O_CREAT, O_EXCL, O_RDONLY, O_DIRECTORY
#include <stdio.h>    // defines: FILE, fopen, fdopen, fread, fwrite, fflush, fseek, rename
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: memcpy, memcmp, memset, strerror, strrchr
#include <sys/stat.h> // defines: fstat, struct stat
#include <unistd.h>   // defines: fsync, close, unlink, getpid

#include <zstd.h> // defines: ZSTD_CCtx, ZSTD_compressStream2, ZSTD_decompressStream

static const char MAGIC[8] = {'S', 'H', 'R', 'D', 'N', 'E', 'T', '\0'};

/* Level 1: ~1 GB/s on weights here; higher levels gain almost nothing on float planes. */
#define ZSTD_LEVEL 1
/* Largest block size a reader accepts (its plane buffer is 4x this). */
#define BLOCK_MAX (1u << 22)

uint64_t sn_hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

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
                          uint32_t block, uint64_t payload)
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
    put64(h + 136, sn_hash_bytes(h, 136, SN_HASH_INIT));
}

/* What read_header learned beyond the meta. */
struct ckpt_layout {
    uint32_t block;       /* floats per plane block */
    uint64_t payload;     /* compressed bytes after the header */
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
    if (version != SN_CKPT_VERSION)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: checkpoint format version %u, this build reads version %d; "
                          "HINT: use the shardnet that wrote it",
                          path, version, SN_CKPT_VERSION);
    if (n < sizeof h)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: truncated checkpoint: %zu bytes, the header alone needs %d", path,
                          n, SN_CKPT_HEADER_SIZE);
    if (get64(h + 136) != sn_hash_bytes(h, 136, SN_HASH_INIT))
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header checksum mismatch (corrupt file)",
                          path);
    if (get32(h + 12) != SN_CKPT_HEADER_SIZE)
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header size %u, expected %d", path,
                          get32(h + 12), SN_CKPT_HEADER_SIZE);

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

    /* counts that a valid writer cannot produce: 2^60 floats is beyond any memory */
    const uint64_t lim = 1ull << 60;
    if (m->n_params > lim || m->n_state > lim || m->n_opt > lim || lay->block == 0 ||
        lay->block > BLOCK_MAX || lay->payload > lim)
        return sn_err_set(err, SN_EFORMAT, "%s: checkpoint header has impossible sizes", path);
    uint64_t want = SN_CKPT_HEADER_SIZE + lay->payload;
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

/* fsync of the directory holding path, so that the rename itself survives a crash. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int sn_checkpoint_save(const char *path, const struct sn_ckpt_meta *meta, const float *params,
                       const float *state, const float *opt, struct sn_err *err)
{
    SN_RETURN_IF((meta->n_params && !params) || (meta->n_state && !state) ||
                     (meta->n_opt && !opt),
                 err, SN_EINVAL, "%s: checkpoint save: NULL array with a non-zero count", path);
    char tmp[4200];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    SN_RETURN_IF(len < 0 || (size_t)len >= sizeof tmp, err, SN_EINVAL,
                 "%s: checkpoint path too long", path);

    int rc = SN_OK, created = 0;
    struct writer w = {.tmp = tmp};
    unsigned char *planes = NULL;
    unsigned char header[SN_CKPT_HEADER_SIZE] = {0};

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = sn_err_set(err, SN_EIO,
                        "%s: cannot create the temporary file %s: %s; HINT: does the directory "
                        "exist and is it writable?",
                        path, tmp, strerror(errno));
        goto done;
    }
    created = 1;
    w.f = fdopen(fd, "wb");
    if (w.f == NULL) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot open: %s", tmp, strerror(errno));
        close(fd);
        goto done;
    }
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
    if (fwrite(header, 1, sizeof header, w.f) != sizeof header) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot write checkpoint: %s", tmp, strerror(errno));
        goto done;
    }
    if ((rc = push_array(&w, params, meta->n_params, planes, err)) != SN_OK ||
        (rc = push_array(&w, state, meta->n_state, planes, err)) != SN_OK ||
        (rc = push_array(&w, opt, meta->n_opt, planes, err)) != SN_OK ||
        (rc = push(&w, NULL, 0, 1, err)) != SN_OK)
        goto done;
    encode_header(header, meta, SN_CKPT_BLOCK, w.written);
    if (fseek(w.f, 0, SEEK_SET) != 0 || fwrite(header, 1, sizeof header, w.f) != sizeof header ||
        fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot write checkpoint: %s", tmp, strerror(errno));
        goto done;
    }
    FILE *f = w.f;
    w.f = NULL;
    if (fclose(f) != 0) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot close checkpoint: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot rename %s over it: %s", path, tmp,
                        strerror(errno));
        goto done;
    }
    created = 0; /* tmp is now path */
    if (sync_dir(path) != 0)
        rc = sn_err_set(err, SN_EIO,
                        "%s: checkpoint written, but its directory could not be synced: %s",
                        path, strerror(errno));
done:
    if (w.f != NULL)
        fclose(w.f);
    if (created)
        unlink(tmp);
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

int sn_checkpoint_read_meta(const char *path, struct sn_ckpt_meta *meta, struct sn_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return sn_err_set(err, SN_EIO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct ckpt_layout lay;
    int rc = read_header(f, path, meta, &lay, err);
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
    r.f = fopen(path, "rb");
    if (r.f == NULL)
        return sn_err_set(err, SN_EIO, "%s: cannot open checkpoint: %s", path, strerror(errno));
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
