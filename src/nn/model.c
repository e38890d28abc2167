/* model.c — building a network from config sections, the arena, and the layer loop.
 *
 * Build happens in two passes over the layer sections: the first (sn_model_plan) configures
 * every layer (shapes, parameter counts, memory needs) and rejects what does not fit, naming the
 * config line; the second (sn_model_allocate) allocates params/grads/state and one arena, and
 * points every layer at its views. Between them the caller can weigh the memory the second
 * will take (sn_model_memory) against what the machine has.
 * After that the step loop (forward, backward) touches only memory allocated here. Beside it:
 * loss.c (the losses), layout.c (blocked layouts between layers), timing.c (a layer's part timed
 * on a backend), summary.c (Keras's table, FLOPs). */
#include "model.h"

#include <stdint.h> // defines: SIZE_MAX, PTRDIFF_MAX
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: aligned_alloc, calloc, free
#include <string.h> // defines: memset, strcmp, snprintf

#include "sys.h"   // defines: sn_hash_bytes, sn_now
#include "trace.h" // defines: sn_trace_clock, sn_trace_end

/* Sizes saturate at SIZE_MAX instead of wrapping: a network of 2^24 filters on a large image
 * at a large batch is more bytes than a size_t holds, and must read as "too much", never as a
 * small wrapped number. */
static size_t align64(size_t n) { return n > SIZE_MAX - 63 ? SIZE_MAX : (n + 63) & ~(size_t)63; }
static size_t mul_sat(size_t a, size_t b) { return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

static void *alloc_zeroed(size_t bytes)
{
    if (bytes > PTRDIFF_MAX - 64) /* no object is larger */
        return NULL;
    size_t n = align64(bytes ? bytes : 64);
    void *p = aligned_alloc(64, n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* The input shape: [model] input_shape = H,W,C, else [data] image_size and color_mode, where
 * [augment] crop = H, W (RandomCrop, whose output the network sees) replaces image_size. The
 * crop's values are checked as augment.c checks them (sn_augment_conf_parse), so that every
 * command that builds the network, whether it reads [augment] or not, gets the same input. */
static int read_input_shape(const struct sn_config *cfg, struct sn_shape *in, struct sn_err *err)
{
    const struct sn_section *ms = sn_config_find(cfg, "model");
    if (ms && sn_section_key(ms, "input_shape")) {
        char buf[128];
        SN_FORWARD(sn_section_string(cfg, ms, "input_shape", NULL, buf, sizeof buf, err));
        int h, w, c;
        char tail;
        if (sscanf(buf, " ( %d , %d , %d ) %c", &h, &w, &c, &tail) != 3 &&
            sscanf(buf, " %d , %d , %d %c", &h, &w, &c, &tail) != 3)
            return sn_config_error(cfg, ms, "input_shape", err, SN_EINVAL,
                                   "'%s' is not H,W,C (e.g. 28,28,1)", buf);
        if (h < 1 || w < 1 || c < 1 || h > 65536 || w > 65536 || c > 65536)
            return sn_config_error(cfg, ms, "input_shape", err, SN_EINVAL,
                                   "%d,%d,%d: every dimension must be in [1, 65536]", h, w, c);
        *in = (struct sn_shape){h, w, c, 3};
        return SN_OK;
    }
    const struct sn_section *ds = sn_config_find(cfg, "data"), *as = sn_config_find(cfg, "augment");
    int crop = as && sn_section_key(as, "crop");
    if (!crop && (!ds || !sn_section_key(ds, "image_size")))
        return sn_err_set(err, SN_EINVAL,
                          "%s: the input shape is unknown\n---> HINT: set [data] image_size "
                          "(and color_mode) or [model] input_shape",
                          cfg->path);
    int hw[2], color;
    static const char *const modes[] = {"rgb", "grayscale", NULL};
    if (crop) /* the bound is augment.h's SN_CROP_MAX, image_size's */
        SN_FORWARD(sn_section_int_pair(cfg, as, "crop", 1, 65536, hw, err));
    else
        SN_FORWARD(sn_section_int2(cfg, ds, "image_size", 0, 0, 1, 65536, hw, err));
    SN_FORWARD(sn_section_choice(cfg, ds, "color_mode", "rgb", modes, &color, err));
    *in = (struct sn_shape){hw[0], hw[1], color == 1 ? 1 : 3, 3};
    return SN_OK;
}

/* [train] loss and label_smoothing: what every command that takes a loss computes (training,
 * and the loss of validation and evaluate, as Keras's compiled loss). */
static int read_loss(const struct sn_config *cfg, struct sn_model *m, struct sn_err *err)
{
    static const char *const names[] = {"sparse_categorical_crossentropy",
                                        "categorical_crossentropy", "binary_crossentropy", NULL};
    const struct sn_section *ts = sn_config_find(cfg, "train");
    int k = 0;
    double ls = 0;
    if (ts) {
        SN_FORWARD(sn_section_choice(cfg, ts, "loss", names[0], names, &k, err));
        SN_FORWARD(sn_section_float(cfg, ts, "label_smoothing", 0.0, 0.0, 1.0, &ls, err));
    }
    m->loss = (enum sn_loss_kind)k;
    m->label_smoothing = (float)ls;
    return SN_OK;
}

/* Fold the final activation into the loss: the last layer emits logits. */
static int fold_final_activation(struct sn_model *m, const struct sn_config *cfg,
                                 struct sn_err *err)
{
    struct sn_layer *last = &m->layers[m->n_layers - 1];
    m->n_outputs = (int)sn_shape_size(last->out);
    int has_act = last->type == &sn_layer_dense || last->type == &sn_layer_conv2d ||
                  last->type == &sn_layer_activation;
    enum sn_act act = has_act ? last->conf.act : SN_ACT_LINEAR;
    /* a network without [train] that ends in another activation (ReLU) is a convolutional
       base, used for its outputs (extract, a [base]): its last activation stays in forward */
    if (!sn_config_find(cfg, "train") && act != SN_ACT_SOFTMAX && act != SN_ACT_SIGMOID)
        return SN_OK;
    int want_sigmoid = m->loss == SN_LOSS_BCE;
    if (want_sigmoid && m->n_outputs != 1)
        return sn_err_set(err, SN_EINVAL,
                          "%s:%d: binary_crossentropy needs one output unit, the last layer "
                          "'%s' has %d",
                          cfg->path, last->line, last->name, m->n_outputs);
    if (act != SN_ACT_LINEAR && act != (want_sigmoid ? SN_ACT_SIGMOID : SN_ACT_SOFTMAX))
        return sn_err_set(err, SN_EINVAL,
                          "%s:%d: the last layer '%s' ends in an activation that does not match "
                          "the loss\n---> HINT: use softmax with (sparse_)categorical_crossentropy, "
                          "sigmoid with binary_crossentropy, or linear (logits)",
                          cfg->path, last->line, last->name);
    last->logits_out = 1;
    return SN_OK;
}

/* Configures cfg's layer sections after the layers already there (a base's, for a top). */
static int configure_layers(struct sn_model *m, const struct sn_config *cfg, struct sn_err *err)
{
    struct sn_shape shape = m->n_layers ? m->layers[m->n_layers - 1].out : m->input;
    int first = m->n_layers;
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        if (sn_config_is_settings(s->type))
            continue;
        const struct sn_layer_type *t = sn_layer_type_find(s->type);
        if (!t) {
            char known[512] = "";
            for (int k = 0; sn_layer_types[k]; k++) {
                strncat(known, k ? ", " : "", sizeof known - strlen(known) - 1);
                strncat(known, sn_layer_types[k]->section, sizeof known - strlen(known) - 1);
            }
            return sn_err_set(err, SN_EINVAL,
                              "%s:%d: unknown section [%s]\n---> HINT: layers are %s; settings "
                              "are [model] [data] [augment] [train] [checkpoint] "
                              "[early_stopping] [reduce_lr_on_plateau]",
                              cfg->path, s->line, s->type, known);
        }
        struct sn_layer *l = &m->layers[m->n_layers];
        memset(l, 0, sizeof *l);
        l->type = t;
        l->index = m->n_layers;
        l->line = s->line;
        sn_config_layer_name(cfg, s, l->name, sizeof l->name);
        SN_FORWARD(sn_section_string(cfg, s, "name", l->name, l->name, sizeof l->name, err));
        SN_FORWARD(sn_section_bool(cfg, s, "trainable", 1, &l->trainable, err));
        l->in = shape;
        SN_FORWARD(t->configure(l, cfg, s, shape, m->max_batch, err));
        if (sn_shape_size(l->out) == 0)
            return sn_err_set(err, SN_EINVAL,
                              "%s:%d: [%s] '%s' leaves nothing: its output shape is empty "
                              "(input %dx%dx%d)",
                              cfg->path, s->line, s->type, l->name, shape.h, shape.w, shape.c);
        shape = l->out;
        m->n_layers++;
    }
    if (m->n_layers == first)
        return sn_err_set(err, SN_EINVAL,
                          "%s: the config defines no layers\n---> HINT: add sections such as "
                          "[conv2d] filters = 32 kernel_size = 3",
                          cfg->path);
    return SN_OK;
}

/* A path given in cfg, relative to cfg's own directory unless absolute. */
static void relative_to(const struct sn_config *cfg, const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(cfg->path, '/');
    if (path[0] == '/' || !slash)
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%.*s/%s", (int)(slash - cfg->path), cfg->path, path);
}

/* [base]: the layers of another config first (the book's conv_base), with its weights named
 * for training to start from, and frozen as asked: trainable = false freezes all of them (Keras's
 * conv_base.trainable = False), freeze_until = LAYER those up to and including LAYER (the
 * book's fine-tuning: all but the last few). */
static int configure_base(struct sn_model *m, const struct sn_config *cfg, struct sn_err *err)
{
    const struct sn_section *bs = sn_config_find(cfg, "base");
    if (!bs)
        return SN_OK;
    char rel[1024], until[SN_CFG_NAME_MAX];
    int trainable;
    SN_FORWARD(sn_layer_require(cfg, bs, "config", err));
    SN_FORWARD(sn_section_string(cfg, bs, "config", "", rel, sizeof rel, err));
    relative_to(cfg, rel, m->base_config, sizeof m->base_config);
    SN_FORWARD(sn_section_string(cfg, bs, "checkpoint", "", rel, sizeof rel, err));
    if (rel[0])
        relative_to(cfg, rel, m->base_checkpoint, sizeof m->base_checkpoint);
    SN_FORWARD(sn_section_bool(cfg, bs, "trainable", 1, &trainable, err));
    SN_FORWARD(sn_section_string(cfg, bs, "freeze_until", "", until, sizeof until, err));
    if (!trainable && until[0])
        return sn_config_error(cfg, bs, "freeze_until", err, SN_EINVAL,
                               "freeze_until and trainable = false both say what to freeze; "
                               "keep one");
    struct sn_config *base;
    char where[1200];
    sn_config_where(cfg, bs, "config", where, sizeof where);
    if (sn_config_load(&base, m->base_config, err) != SN_OK) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return sn_err_set(err, err->code, "[base] config (%s): %s", where, why);
    }
    /* room for the base's layers and the top's */
    size_t cap = (size_t)base->n_sections + (size_t)cfg->n_sections + 1;
    struct sn_layer *grown = realloc(m->layers, cap * sizeof *grown);
    if (grown) {
        memset(grown, 0, cap * sizeof *grown);
        m->layers = grown;
    }
    int rc = !grown ? sn_err_set(err, SN_ENOMEM, "out of memory")
             : sn_config_find(base, "base")
                 ? sn_err_set(err, SN_EINVAL, "%s: a base has a [base] of its own; stack one "
                                              "level only",
                              m->base_config)
                 : configure_layers(m, base, err);
    if (rc == SN_OK)
        rc = sn_section_string(base, sn_config_find(base, "model"), "name", "base", m->base_name,
                               sizeof m->base_name, err);
    sn_config_free(base);
    SN_FORWARD(rc);
    m->n_base = m->n_layers;
    int found = !until[0];
    for (int i = 0; i < m->n_base; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!trainable || !found)
            l->trainable = 0;
        if (until[0] && strcmp(l->name, until) == 0)
            found = 1;
    }
    if (!found)
        return sn_config_error(cfg, bs, "freeze_until", err, SN_EINVAL,
                               "freeze_until = %s: the base (%s) has no such layer", until,
                               m->base_config);
    return SN_OK;
}

/* Offsets of every layer's params and state; the trainable ranges, merged when adjacent. */
static int lay_out_params(struct sn_model *m, struct sn_err *err)
{
    size_t off = 0, soff = 0;
    m->n_ranges = 0;
    m->n_trainable = 0;
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        l->param_off = off;
        l->state_off = soff;
        if (l->trainable && l->n_params > 0) {
            struct sn_range *r = m->n_ranges ? &m->ranges[m->n_ranges - 1] : NULL;
            if (r && r->off + r->len == off)
                r->len += l->n_params;
            else {
                if (m->n_ranges == SN_MAX_RANGES)
                    return sn_err_set(err, SN_EINVAL, "more than %d separate trainable ranges",
                                      SN_MAX_RANGES);
                m->ranges[m->n_ranges++] = (struct sn_range){off, l->n_params};
            }
            m->n_trainable += l->n_params;
        }
        off += l->n_params;
        soff += l->n_state;
    }
    m->n_params = off;
    m->n_state = soff;
    return SN_OK;
}


/* The arena's bytes at max_batch (sn_model_allocate lays it out in this order): every layer's
 * output and aux memory, two gradient buffers of the largest output backward reaches (*max_act
 * floats per sample), the scratch (*scratch bytes, the largest layer's). */
static size_t arena_bytes(const struct sn_model *m, size_t *max_act_out, size_t *scratch)
{
    /* The gradient buffers hold the outputs' gradients of the layers backward reaches (from
       the first trainable one): a frozen base's, never computed, get none. They also hold an
       input batch for the backend timing (tune.c). */
    size_t B = (size_t)m->max_batch, max_act = sn_shape_size(m->input), bytes = 0;
    int first = sn_model_first_needed(m);
    *scratch = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        bytes = add_sat(bytes, align64(mul_sat(sn_shape_size(l->out) * sizeof(float), B)));
        bytes = add_sat(bytes, align64(mul_sat(l->aux_per_sample, B)));
        if (i >= first && sn_shape_size(l->out) > max_act)
            max_act = sn_shape_size(l->out);
        if (l->scratch_bytes > *scratch)
            *scratch = l->scratch_bytes;
    }
    *max_act_out = max_act;
    size_t dbuf = align64(mul_sat(max_act * sizeof(float), B));
    return add_sat(add_sat(bytes, add_sat(dbuf, dbuf)), align64(*scratch));
}

void sn_model_memory(const struct sn_model *m, struct sn_model_memory *mem)
{
    mem->params = align64(m->n_params * sizeof(float));
    mem->state = align64(m->n_state * sizeof(float));
    mem->grads = m->n_trainable * sizeof(float);
    size_t max_act, scratch;
    mem->arena = arena_bytes(m, &max_act, &scratch);
}

int sn_model_allocate(struct sn_model *m, struct sn_err *err)
{
    m->params = alloc_zeroed(m->n_params * sizeof(float));
    /* calloc, not alloc_zeroed: a large block comes zeroed from the kernel and a page is only
       faulted in when written, so a frozen layer's gradients (never written) take no memory */
    m->grads_block = calloc(m->n_params + 16, sizeof(float));
    m->grads = m->grads_block ? (float *)align64((size_t)m->grads_block) : NULL;
    m->state = alloc_zeroed(m->n_state * sizeof(float));
    m->acts = calloc((size_t)m->n_layers + 1, sizeof *m->acts);
    if (!m->params || !m->grads || !m->state || !m->acts)
        return sn_err_set(err, SN_ENOMEM, "out of memory for %zu parameters", m->n_params);

    size_t B = (size_t)m->max_batch, max_act;
    size_t bytes = arena_bytes(m, &max_act, &m->scratch_bytes);
    /* Touch it all now: a page fault inside the step loop costs more than the arithmetic. */
    m->arena = alloc_zeroed(bytes);
    if (!m->arena)
        return sn_err_set(err, SN_ENOMEM,
                          "out of memory: the model needs %.1f MB of working memory at batch %d",
                          bytes / 1e6, m->max_batch);
    m->arena_bytes = bytes;

    char *p = m->arena;
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        m->acts[i + 1] = (float *)p;
        p += align64(sn_shape_size(l->out) * B * sizeof(float));
        l->aux = l->aux_per_sample ? p : NULL;
        p += align64(l->aux_per_sample * B);
        l->p = m->params + l->param_off;
        l->g = m->grads + l->param_off;
        l->state = m->state + l->state_off;
    }
    for (int k = 0; k < 2; k++) {
        m->dbuf[k] = (float *)p;
        p += align64(max_act * B * sizeof(float));
    }
    m->scratch = p;
    return SN_OK;
}

/* of the first n layers */
static uint64_t structure_hash(const struct sn_model *m, int n)
{
    uint64_t h = sn_hash_bytes(&m->input, sizeof m->input, SN_HASH_INIT);
    for (int i = 0; i < n; i++) {
        const struct sn_layer *l = &m->layers[i];
        h = sn_hash_bytes(l->type->section, strlen(l->type->section), h);
        h = sn_hash_bytes(&l->out, sizeof l->out, h);
        uint64_t counts[2] = {l->n_params, l->n_state};
        h = sn_hash_bytes(counts, sizeof counts, h);
    }
    return h;
}

int sn_model_plan(struct sn_model **out, const struct sn_config *cfg, int max_batch,
                  const struct sn_ops *ops, struct sn_err *err)
{
    *out = NULL;
    SN_RETURN_IF(max_batch < 1, err, SN_EINVAL, "max_batch %d < 1", max_batch);
    struct sn_model *m = calloc(1, sizeof *m);
    SN_RETURN_IF(!m, err, SN_ENOMEM, "out of memory");
    m->ops = ops;
    m->max_batch = max_batch;
    snprintf(m->config_path, sizeof m->config_path, "%s", cfg->path);
    m->layers = calloc((size_t)cfg->n_sections + 1, sizeof *m->layers);
    int rc = m->layers ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK)
        rc = sn_section_string(cfg, sn_config_find(cfg, "model"), "name", "model", m->name,
                               sizeof m->name, err);
    static const char *const layouts[] = {"blocked", "nhwc", NULL};
    int layout = 0;
    if (rc == SN_OK)
        rc = sn_section_choice(cfg, sn_config_find(cfg, "model"), "onednn_layout", "blocked",
                               layouts, &layout, err);
    m->keep_blocked = layout == 0;
    if (rc == SN_OK)
        rc = read_input_shape(cfg, &m->input, err);
    if (rc == SN_OK)
        rc = read_loss(cfg, m, err);
    if (rc == SN_OK)
        rc = configure_base(m, cfg, err);
    if (rc == SN_OK)
        rc = configure_layers(m, cfg, err);
    if (rc == SN_OK)
        rc = fold_final_activation(m, cfg, err);
    if (rc == SN_OK)
        rc = lay_out_params(m, err);
    if (rc != SN_OK) {
        sn_model_free(m);
        return rc;
    }
    m->structure_hash = structure_hash(m, m->n_layers);
    m->base_hash = structure_hash(m, m->n_base);
    for (int i = 0; i < m->n_base; i++) {
        m->base_params += m->layers[i].n_params;
        m->base_state += m->layers[i].n_state;
    }
    *out = m;
    return SN_OK;
}

int sn_model_build(struct sn_model **out, const struct sn_config *cfg, int max_batch,
                   const struct sn_ops *ops, struct sn_err *err)
{
    SN_FORWARD(sn_model_plan(out, cfg, max_batch, ops, err));
    int rc = sn_model_allocate(*out, err);
    if (rc != SN_OK) {
        sn_model_free(*out);
        *out = NULL;
    }
    return rc;
}

void sn_model_free(struct sn_model *m)
{
    if (!m) /* accept NULL pointer */
        return;
    free(m->layers);
    free(m->params);
    free(m->grads_block);
    free(m->state);
    free(m->acts);
    free(m->arena);
    free(m);
}

void sn_model_init_params(struct sn_model *m, uint64_t seed)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        /* one stream per layer: adding a layer at the end does not change the others */
        struct sn_rng rng;
        sn_rng_seed(&rng, sn_hash64(seed, (uint64_t)i));
        if (l->type->init_params)
            l->type->init_params(l, &rng);
    }
}

const struct sn_ops *sn_layer_ops(const struct sn_model *m, const struct sn_layer *l,
                                  enum sn_part part)
{
    const struct sn_ops *f = l->ops[SN_PART_FORWARD] ? l->ops[SN_PART_FORWARD] : m->ops;
    return part != SN_PART_FORWARD && l->ops[part] ? l->ops[part] : f;
}

/* ctx with layer l's backends for every part */
static struct sn_step_ctx layer_ctx(const struct sn_model *m, const struct sn_layer *l,
                                    const struct sn_step_ctx *ctx)
{
    struct sn_step_ctx lc = *ctx;
    lc.ops = sn_layer_ops(m, l, SN_PART_FORWARD);
    lc.ops_bwd_data = sn_layer_ops(m, l, SN_PART_BWD_DATA);
    lc.ops_bwd_weights = sn_layer_ops(m, l, SN_PART_BWD_WEIGHTS);
    return lc;
}

const float *sn_model_forward(struct sn_model *m, const float *x, int n,
                              const struct sn_step_ctx *ctx)
{
    m->acts[0] = (float *)x; /* view of the caller's batch; never written */
    double pass0 = sn_trace_clock();
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        double t0 = m->t_fwd ? sn_now() : 0, tt = sn_trace_clock();
        struct sn_step_ctx lc = layer_ctx(m, l, ctx);
        l->type->forward(l, m->acts[i], m->acts[i + 1], n, &lc);
        if (m->t_fwd)
            m->t_fwd[i] += sn_now() - t0;
        sn_trace_end(SN_TRACE_FORWARD, l->name, i, tt);
    }
    sn_trace_end(SN_TRACE_FORWARD, "forward", -1, pass0);
    return m->acts[m->n_layers];
}

int sn_model_check_vector(const struct sn_model *m, const char *what, struct sn_err *err)
{
    const struct sn_layer *last = &m->layers[m->n_layers - 1];
    if (last->out.rank != 3 || (last->out.h == 1 && last->out.w == 1))
        return SN_OK;
    /* Dense acts on the last axis of an image (Keras does the same): without [flatten] the
       network ends in an image of class scores; name the Dense that got the image */
    const struct sn_layer *dense = NULL;
    for (int i = m->n_layers - 1; i >= 0 && m->layers[i].out.rank == 3; i--)
        if (m->layers[i].type == &sn_layer_dense)
            dense = &m->layers[i];
    if (dense != NULL)
        return sn_err_set(err, SN_EINVAL,
                          "%s, but the network ends in (%d, %d, %d) per image, not one vector of "
                          "class scores: %s:%d: [dense] %s gets a (%d, %d, %d) input, and Dense "
                          "acts on its last axis (as in Keras)\n---> HINT: put a [flatten] (or a "
                          "[globalaveragepooling2d]) before it",
                          what, last->out.h, last->out.w, last->out.c,
                          dense->index < m->n_base ? m->base_config : m->config_path, dense->line,
                          dense->name, dense->in.h, dense->in.w, dense->in.c);
    return sn_err_set(err, SN_EINVAL,
                      "%s, but the network ends in (%d, %d, %d) per image, not one vector of "
                      "class scores (%s:%d: '%s')\n---> HINT: end it with a [flatten] (or a "
                      "[globalaveragepooling2d]) and a [dense] of one unit per class",
                      what, last->out.h, last->out.w, last->out.c,
                      last->index < m->n_base ? m->base_config : m->config_path, last->line,
                      last->name);
}

int sn_model_first_needed(const struct sn_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].trainable && m->layers[i].n_params > 0)
            return i;
    return m->n_layers;
}

void sn_model_backward(struct sn_model *m, const float *x, float *dlogits, int n,
                       const struct sn_step_ctx *ctx, sn_grads_ready_fn ready, void *user)
{
    m->acts[0] = (float *)x;
    int stop = sn_model_first_needed(m);
    float *dout = dlogits;
    double pass0 = sn_trace_clock();
    for (int i = m->n_layers - 1; i >= stop; i--) {
        struct sn_layer *l = &m->layers[i];
        float *din = i > stop ? m->dbuf[i & 1] : NULL;
        /* frozen layers still pass gradients down, but must not touch their grads */
        double t0 = m->t_bwd ? sn_now() : 0, tt = sn_trace_clock();
        struct sn_step_ctx lc = layer_ctx(m, l, ctx);
        l->type->backward(l, m->acts[i], m->acts[i + 1], dout, din, n, &lc);
        if (m->t_bwd)
            m->t_bwd[i] += sn_now() - t0;
        sn_trace_end(SN_TRACE_BACKWARD, l->name, i, tt);
        if (ready)
            ready(user, i);
        dout = din;
    }
    /* layers below `stop` have no trainable parameters: their gradients are ready too */
    for (int i = stop - 1; ready && i >= 0; i--)
        ready(user, i);
    sn_trace_end(SN_TRACE_BACKWARD, "backward", -1, pass0);
}

void sn_model_move_state(struct sn_model *m, const float *batch_state)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (l->type->move_state && l->trainable && l->n_state > 0)
            l->type->move_state(l, batch_state + l->state_off);
    }
}

void sn_model_zero_grads(struct sn_model *m)
{
    for (int r = 0; r < m->n_ranges; r++)
        memset(m->grads + m->ranges[r].off, 0, m->ranges[r].len * sizeof(float));
}

void sn_model_probabilities(const struct sn_model *m, const float *logits, float *probs, int n)
{
    enum sn_act act = m->loss == SN_LOSS_BCE ? SN_ACT_SIGMOID : SN_ACT_SOFTMAX;
    m->ops->act_forward(act, logits, probs, (size_t)n, (size_t)m->n_outputs);
}
