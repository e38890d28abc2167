/* loader.c — the epoch order and the loader: persistent worker threads that decode and augment
 * this rank's shard of each global batch into a ring of batch slots allocated once.
 *
 * Loader protocol (all shared fields under l->mu):
 *   - a work cursor (cur_batch, cur_row) walks the rows of this rank's slices, batch by batch;
 *   - batch b lives in slot b % queue_depth; a worker may start batch b only when that slot is
 *     FREE (released by the consumer), so at most queue_depth batches are decoded ahead;
 *   - a worker claims one row, decodes it without the lock into its own row of the slot, then
 *     marks it done; the last row makes the slot READY and wakes the consumer;
 *   - sn_loader_next hands out slots strictly in batch order (READY -> HELD), release makes them
 *     FREE again. start_epoch stops the cursor, waits for rows in flight, then resets every slot.
 * Each row depends only on its file and sn_hash3(seed, epoch, sample index), so the pixels do
 * not depend on the number of threads or on which thread decoded which row.
 *
 * The cache (conf.cache): one array of ds->n decoded images and a byte per sample saying it is
 * filled. A worker decodes a sample it finds unfilled straight into its place, then sets the byte
 * under the lock, with its row done; a later epoch's worker reads the byte after taking the lock
 * to claim the row, so the lock orders the fill before the read. Within an epoch a
 * sample is claimed once, and start_epoch waits for rows in flight, so no two workers touch one
 * place at once. A file that fails to decode is never marked, and fails (and is counted) again. */
#include "loader.h"

#include <stddef.h>  // defines: offsetof
#include <pthread.h> // defines: pthread_create, pthread_mutex_t, pthread_cond_t
#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: malloc, calloc, free
#include <string.h>  // defines: memcpy, memset, strstr, strlen, strerror

#include "image.h"
#include "rng.h"
#include "sys.h"

void sn_epoch_order(int n, uint64_t seed, int epoch, int shuffle, int32_t *order)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    if (!shuffle)
        return;
    struct sn_rng r;
    sn_rng_seed(&r, sn_hash64(seed, (uint64_t)(int64_t)epoch));
    for (int i = n - 1; i > 0; i--) {
        /* j uniform in [0, i] by a 32x32 multiply-high (no modulo bias worth the name) */
        int j = (int)(((sn_rng_next(&r) >> 32) * (uint64_t)(i + 1)) >> 32);
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Loader                                                                                      */

enum slot_state { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_HELD };

struct slot {
    struct sn_batch b;     /* arrays owned, sized local_max */
    enum slot_state state;
    int batch;             /* batch index it holds (FILLING/READY/HELD) */
    int done;              /* rows finished */
    int has_err;
    struct sn_err first_err; /* first bad row, for on_bad_image = fail */
};

struct worker {
    struct sn_loader *l;
    pthread_t th;
    struct sn_image_ctx *ctx; /* owned */
    float *tmp;               /* owned: the decoded image (image_size) before [augment],
                                 then sn_augment_sample's scratch */
};

struct sn_loader {
    struct sn_loader_conf c;
    struct sn_image_opts opts;
    int aug_on;              /* rows go through sn_augment_sample */
    int training;            /* its random draws (not inference) */
    size_t decoded;          /* floats of a decoded image (image_size) */
    size_t sample;           /* floats of a row: H*W*C after [augment] */
    size_t scratch;          /* floats of sn_augment_sample's scratch */
    int steps, local_max, depth, n_threads;
    float *cache;            /* owned (n * decoded), or NULL: no cache */
    uint8_t *cached;         /* owned (n): cache[i] holds sample i's decoded image (set under
                                the lock) */
    int32_t *order;          /* owned (n) */
    uint8_t *reported;       /* owned (n): bad file already reported */
    struct slot *slots;      /* owned (depth) */
    struct worker *workers;  /* owned (n_threads) */
    int n_started;           /* threads actually running */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers: work or a free slot appeared, or stop */
    pthread_cond_t done_cv;  /* consumer / start_epoch: a slot became READY, in-flight reached 0 */
    int stop;
    int started;             /* an epoch was started */
    int epoch;
    int cur_batch, cur_row, cur_assigned; /* work cursor */
    int inflight;            /* rows being decoded outside the lock */
    int cancelling;          /* start_epoch waits for inflight to reach 0 */
    int next_batch;          /* batch sn_loader_next returns next */
    double wait_s;
    int n_bad;
};

/* Rows of batch b on this rank: [*first, *first + *count) of the global batch. */
static void batch_slice(const struct sn_loader *l, int b, int *first, int *count, int *global_n)
{
    int B = l->c.global_batch, n = l->c.ds->n;
    int nb = n - b * B < B ? n - b * B : B;
    sn_shard_slice(nb, l->c.micro_batch, l->c.rank, l->c.world, first, count);
    *global_n = nb;
}

/* Under the lock: claims the next row. @return 1 with (*sl, *row) set, 0 when nothing to do now */
static int claim(struct sn_loader *l, struct slot **sl, int *row)
{
    while (l->cur_batch < l->steps) {
        struct slot *s = &l->slots[l->cur_batch % l->depth];
        if (!l->cur_assigned) {
            if (s->state != SLOT_FREE)
                return 0; /* ring full: wait for a release */
            int first, count, gn;
            batch_slice(l, l->cur_batch, &first, &count, &gn);
            s->state = SLOT_FILLING;
            s->batch = l->cur_batch;
            s->done = 0;
            s->has_err = 0;
            s->b.n = count;
            s->b.global_n = gn;
            s->b.step = l->cur_batch;
            s->b.n_bad = 0;
            for (int i = 0; i < count; i++) {
                int32_t idx = l->order[(size_t)l->cur_batch * l->c.global_batch + first + i];
                s->b.ids[i] = idx;
                s->b.y[i] = l->c.ds->labels[idx];
                s->b.ok[i] = 0;
            }
            l->cur_assigned = 1;
            l->cur_row = 0;
            if (count == 0) { /* an empty slice: ready at once */
                s->state = SLOT_READY;
                pthread_cond_broadcast(&l->done_cv);
                l->cur_batch++;
                l->cur_assigned = 0;
                continue;
            }
        }
        *sl = s;
        *row = l->cur_row++;
        if (l->cur_row == s->b.n) {
            l->cur_batch++;
            l->cur_assigned = 0;
        }
        return 1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sn_loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        struct slot *s;
        int row;
        if (l->stop)
            break;
        if (!claim(l, &s, &row)) {
            pthread_cond_wait(&l->work_cv, &l->mu);
            continue;
        }
        int64_t idx = s->b.ids[row];
        uint64_t key = sn_hash3(l->c.seed, (uint64_t)(int64_t)l->epoch, (uint64_t)idx);
        l->inflight++;
        pthread_mutex_unlock(&l->mu);

        /* Outside the lock: this row of this slot belongs to this worker alone. */
        float *dst = s->b.x + (size_t)row * l->sample;
        const char *path = l->c.ds->paths ? l->c.ds->paths[idx] : l->c.ds->root;
        struct sn_err e = {0};
        int rc = SN_OK;
        /* the decoded image goes to its cache place, else to the augmentation's input, else to
           the row itself; img is where it ends up */
        float *spot = l->cache ? l->cache + (size_t)idx * l->decoded : NULL;
        float *into = spot ? spot : l->aug_on ? w->tmp : dst;
        const float *img = into;
        int filled = 0;
        if (l->c.ds->features) { /* a feature row: copied, never augmented */
            memcpy(dst, l->c.ds->features + (size_t)idx * l->sample, l->sample * sizeof *dst);
        } else if (spot != NULL && l->cached[idx]) {
            img = spot;
        } else {
            rc = w->ctx ? SN_OK : sn_image_ctx_create(&w->ctx, &e);
            if (rc == SN_OK)
                rc = sn_image_load(w->ctx, path, &l->opts, into, &e);
            filled = rc == SN_OK && spot != NULL; /* marked under the lock below */
        }
        if (rc == SN_OK && !l->aug_on && img != dst)
            memcpy(dst, img, l->sample * sizeof *dst);
        if (rc != SN_OK) {
            /* A failed decode can leave decoder state behind that spoils the next, good file
             * (seen with TurboJPEG after a corrupt header): start the next one from a fresh
             * context. Only bad files pay for it. */
            sn_image_ctx_free(w->ctx);
            w->ctx = NULL;
        }
        if (rc == SN_OK && l->aug_on)
            sn_augment_sample(l->c.aug, key, l->training, img, l->opts.height, l->opts.width,
                              l->opts.channels, dst, w->tmp + l->decoded);
        if (rc != SN_OK)
            memset(dst, 0, l->sample * sizeof *dst);

        pthread_mutex_lock(&l->mu);
        if (rc != SN_OK) {
            if (strstr(e.msg, path) == NULL) {
                char m[sizeof e.msg];
                snprintf(m, sizeof m, "%s", e.msg);
                int room = (int)sizeof e.msg - (int)strlen(path) - 3;
                snprintf(e.msg, sizeof e.msg, "%s: %.*s", path, room > 0 ? room : 0, m);
            }
            s->b.ok[row] = 0;
            s->b.n_bad++;
            l->n_bad++;
            if (!s->has_err) {
                s->has_err = 1;
                s->first_err = e;
            }
            if (!l->c.dc->on_bad_image_fail && l->c.report && !l->reported[idx]) {
                l->reported[idx] = 1;
                l->c.report(l->c.report_user, e.msg);
            }
        } else {
            s->b.ok[row] = 1;
            if (filled)
                l->cached[idx] = 1;
        }
        l->inflight--;
        /* Wake the consumer only when it has something to take (a per-row wake-up costs more
         * than decoding a 28x28 image), or start_epoch when the last row in flight lands. */
        if (++s->done == s->b.n) {
            s->state = SLOT_READY;
            pthread_cond_broadcast(&l->done_cv);
        } else if (l->cancelling && l->inflight == 0) {
            pthread_cond_broadcast(&l->done_cv);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void sn_loader_free(struct sn_loader *l)
{
    if (l == NULL)
        return;
    if (l->n_started > 0) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_started; i++)
            pthread_join(l->workers[i].th, NULL);
    }
    if (l->workers)
        for (int i = 0; i < l->n_threads; i++) {
            sn_image_ctx_free(l->workers[i].ctx);
            free(l->workers[i].tmp);
        }
    if (l->slots)
        for (int i = 0; i < l->depth; i++) {
            free(l->slots[i].b.x);
            free(l->slots[i].b.y);
            free(l->slots[i].b.ids);
            free(l->slots[i].b.ok);
        }
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    pthread_mutex_destroy(&l->mu);
    free(l->workers);
    free(l->slots);
    free(l->cache);
    free(l->cached);
    free(l->order);
    free(l->reported);
    free(l);
}

int sn_loader_create(struct sn_loader **out, const struct sn_loader_conf *c, struct sn_err *err)
{
    *out = NULL;
    const struct sn_data_conf *dc = c->dc;
    SN_RETURN_IF(c->ds == NULL || dc == NULL, err, SN_EINVAL, "loader needs a dataset and [data]");
    SN_RETURN_IF(c->ds->n < 1, err, SN_EDATA, "%s: no images", c->ds->root);
    SN_RETURN_IF(c->global_batch < 1, err, SN_EINVAL, "batch size %d, expected >= 1",
                 c->global_batch);
    SN_RETURN_IF(c->world < 1 || c->rank < 0 || c->rank >= c->world, err, SN_EINVAL,
                 "rank %d of %d is not a valid rank", c->rank, c->world);
    SN_RETURN_IF(dc->height < 1 || dc->width < 1 || dc->channels < 1 ||
                     (!c->ds->features && dc->channels != 1 && dc->channels != 3),
                 err, SN_EINVAL, "[data] image size %dx%dx%d is not valid", dc->height,
                 dc->width, dc->channels);

    struct sn_loader *l = calloc(1, sizeof *l);
    SN_RETURN_IF(l == NULL, err, SN_ENOMEM, "out of memory creating the loader");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->c = *c;
    l->opts = (struct sn_image_opts){.height = dc->height,
                                     .width = dc->width,
                                     .channels = dc->channels,
                                     .interp = (int)dc->interp,
                                     .crop_to_aspect_ratio = dc->crop_to_aspect_ratio,
                                     .max_pixels = dc->max_pixels};
    /* in training every enabled layer acts; at inference only RandomCrop (a resize) */
    l->training = !c->inference;
    l->aug_on = c->aug != NULL && !c->ds->features &&
                (l->training ? c->aug->enabled : c->aug->crop[0] > 0);
    int oh = dc->height, ow = dc->width;
    if (l->aug_on)
        sn_augment_out_size(c->aug, dc->height, dc->width, &oh, &ow);
    l->decoded = (size_t)dc->height * dc->width * dc->channels;
    l->sample = (size_t)oh * ow * dc->channels;
    l->scratch = l->aug_on ? sn_augment_scratch(c->aug, l->training, dc->height, dc->width,
                                                dc->channels)
                           : 0;
    l->steps = (c->ds->n + c->global_batch - 1) / c->global_batch;
    int first, most = 0; /* the largest slice any rank takes of a full batch */
    for (int r = 0; r < c->world; r++) {
        int count;
        sn_shard_slice(c->global_batch, c->micro_batch, r, c->world, &first, &count);
        most = count > most ? count : most;
    }
    l->local_max = most > 0 ? most : 1;
    l->depth = dc->queue_depth > 0 ? dc->queue_depth : 4;
    l->n_threads = dc->threads > 0 ? dc->threads : 2;
    l->next_batch = l->cur_batch = l->steps; /* nothing to hand out before start_epoch */

    int rc = SN_OK;
    l->order = malloc((size_t)c->ds->n * sizeof *l->order);
    l->reported = calloc((size_t)c->ds->n, 1);
    l->slots = calloc((size_t)l->depth, sizeof *l->slots);
    l->workers = calloc((size_t)l->n_threads, sizeof *l->workers);
    if (!l->order || !l->reported || !l->slots || !l->workers)
        goto nomem;
    size_t cache_bytes = sn_loader_cache_bytes(c);
    if (cache_bytes > 0) {
        l->cache = malloc(cache_bytes);
        l->cached = calloc((size_t)c->ds->n, 1);
        if (!l->cache || !l->cached) {
            rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory for cache = memory (%.0f MB of "
                            "decoded images); HINT: cache = no in [data]",
                            c->ds->root, (double)cache_bytes / 1e6);
            goto fail;
        }
    }
    for (int i = 0; i < l->depth; i++) {
        struct sn_batch *b = &l->slots[i].b;
        b->x = malloc((size_t)l->local_max * l->sample * sizeof *b->x);
        b->y = malloc((size_t)l->local_max * sizeof *b->y);
        b->ids = malloc((size_t)l->local_max * sizeof *b->ids);
        b->ok = malloc((size_t)l->local_max);
        if (!b->x || !b->y || !b->ids || !b->ok)
            goto nomem;
    }
    for (int i = 0; i < l->n_threads; i++) {
        struct worker *w = &l->workers[i];
        w->l = l;
        if ((rc = sn_image_ctx_create(&w->ctx, err)) != SN_OK)
            goto fail;
        if (l->aug_on &&
            (w->tmp = malloc((l->decoded + l->scratch) * sizeof *w->tmp)) == NULL)
            goto nomem;
    }
    for (int i = 0; i < l->n_threads; i++) {
        int e = pthread_create(&l->workers[i].th, NULL, worker_main, &l->workers[i]);
        if (e != 0) {
            rc = sn_err_set(err, SN_ENOMEM, "cannot start loader thread %d: %s", i, strerror(e));
            goto fail;
        }
        l->n_started++;
    }
    *out = l;
    return SN_OK;
nomem:
    rc = sn_err_set(err, SN_ENOMEM, "out of memory creating the loader (%d slots of %d images)",
                    l->depth, l->local_max);
fail:
    sn_loader_free(l);
    return rc;
}

int sn_loader_steps(const struct sn_loader *l) { return l->steps; }

size_t sn_loader_cache_bytes(const struct sn_loader_conf *c)
{
    if (!c->cache || c->ds == NULL || c->ds->features || c->dc == NULL)
        return 0;
    return (size_t)c->ds->n * c->dc->height * c->dc->width * c->dc->channels * sizeof(float);
}

long long sn_loader_cached(const struct sn_loader *l)
{
    if (l->cached == NULL)
        return 0;
    struct sn_loader *m = (struct sn_loader *)l; /* the lock is not part of the value */
    long long n = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < l->c.ds->n; i++)
        n += l->cached[i];
    pthread_mutex_unlock(&m->mu);
    return n;
}

int sn_loader_start_epoch(struct sn_loader *l, int epoch, struct sn_err *err)
{
    return sn_loader_start_epoch_at(l, epoch, 0, err);
}

int sn_loader_start_epoch_at(struct sn_loader *l, int epoch, int first_batch, struct sn_err *err)
{
    SN_RETURN_IF(first_batch < 0 || first_batch > l->steps, err, SN_EINVAL,
                 "loader: epoch %d has %d batches, cannot start at batch %d", epoch, l->steps,
                 first_batch);
    pthread_mutex_lock(&l->mu);
    /* Cancel what is left of the previous epoch: no new claims, wait for rows in flight. */
    l->cur_batch = l->steps;
    l->cur_assigned = 0;
    l->cancelling = 1;
    while (l->inflight > 0)
        pthread_cond_wait(&l->done_cv, &l->mu);
    l->cancelling = 0;
    for (int i = 0; i < l->depth; i++)
        l->slots[i].state = SLOT_FREE;
    sn_epoch_order(l->c.ds->n, l->c.seed, epoch, l->c.shuffle, l->order);
    l->epoch = epoch;
    l->started = 1;
    l->cur_batch = first_batch;
    l->cur_row = 0;
    l->next_batch = first_batch;
    l->wait_s = 0;
    l->n_bad = 0;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    return SN_OK;
}

int sn_loader_next(struct sn_loader *l, struct sn_batch **out, struct sn_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if (!l->started) {
        pthread_mutex_unlock(&l->mu);
        return sn_err_set(err, SN_EINVAL, "sn_loader_next before sn_loader_start_epoch");
    }
    if (l->next_batch >= l->steps) {
        pthread_mutex_unlock(&l->mu);
        return SN_OK;
    }
    struct slot *s = &l->slots[l->next_batch % l->depth];
    if (!(s->state == SLOT_READY && s->batch == l->next_batch)) {
        double t0 = sn_now();
        while (!(s->state == SLOT_READY && s->batch == l->next_batch))
            pthread_cond_wait(&l->done_cv, &l->mu);
        l->wait_s += sn_now() - t0;
    }
    l->next_batch++;
    if (l->c.dc->on_bad_image_fail && s->has_err) {
        int rc = sn_err_set(err, SN_EFORMAT, "%s; HINT: set on_bad_image = skip in [data] to "
                                             "train through bad files",
                            s->first_err.msg);
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        return rc;
    }
    s->state = SLOT_HELD;
    pthread_mutex_unlock(&l->mu);
    *out = &s->b;
    return SN_OK;
}

void sn_loader_release(struct sn_loader *l, struct sn_batch *b)
{
    if (b == NULL)
        return;
    struct slot *s = (struct slot *)((char *)b - offsetof(struct slot, b));
    pthread_mutex_lock(&l->mu);
    if (s->state == SLOT_HELD)
        s->state = SLOT_FREE;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
}

double sn_loader_wait_seconds(const struct sn_loader *l)
{
    struct sn_loader *m = (struct sn_loader *)l; /* the lock is not part of the value */
    pthread_mutex_lock(&m->mu);
    double w = m->wait_s;
    pthread_mutex_unlock(&m->mu);
    return w;
}

int sn_loader_bad_count(const struct sn_loader *l)
{
    struct sn_loader *m = (struct sn_loader *)l;
    pthread_mutex_lock(&m->mu);
    int n = m->n_bad;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int sn_data_load_image(const struct sn_data_conf *dc, const struct sn_augment_conf *ac,
                       const char *path, float *out, struct sn_err *err)
{
    struct sn_image_opts opts = {.height = dc->height,
                                 .width = dc->width,
                                 .channels = dc->channels,
                                 .interp = (int)dc->interp,
                                 .crop_to_aspect_ratio = dc->crop_to_aspect_ratio,
                                 .max_pixels = dc->max_pixels};
    int crop = ac != NULL && ac->crop[0] > 0;
    float *decoded = NULL;
    if (crop) {
        decoded = malloc((size_t)dc->height * dc->width * dc->channels * sizeof *decoded);
        SN_RETURN_IF(decoded == NULL, err, SN_ENOMEM, "%s: out of memory for a %dx%dx%d image",
                     path, dc->height, dc->width, dc->channels);
    }
    struct sn_image_ctx *ctx;
    int rc = sn_image_ctx_create(&ctx, err);
    if (rc == SN_OK)
        rc = sn_image_load(ctx, path, &opts, crop ? decoded : out, err);
    if (rc == SN_OK && crop) /* inference: no scratch, no draws */
        sn_augment_sample(ac, 0, 0, decoded, dc->height, dc->width, dc->channels, out, NULL);
    sn_image_ctx_free(ctx);
    free(decoded);
    return rc;
}
