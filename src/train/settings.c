/* settings.c — the settings of a config (settings.h): read once, then the network built at the
 * batch a command needs and the whole config checked. */
#include "settings.h"

#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: memset, strrchr

#include "config_keys.h" // defines: sn_config_keys_check
#include "mem.h"         // defines: sn_mem_available

/* [train] and [checkpoint], with the callbacks' keys. */
static int train_conf_parse(struct sn_train_conf *tc, const struct sn_config *cfg,
                            struct sn_err *err)
{
    memset(tc, 0, sizeof *tc);
    const struct sn_section *t = sn_config_find(cfg, "train");
    int seed;
    SN_FORWARD(sn_section_int(cfg, t, "epochs", 10, 1, 1000000, &tc->epochs, err));
    SN_FORWARD(sn_section_int(cfg, t, "batch_size", 32, 1, 1 << 20, &tc->batch_size, err));
    SN_FORWARD(sn_section_int(cfg, t, "micro_batch", 16, 1, 1 << 20, &tc->micro_batch, err));
    SN_FORWARD(sn_section_int(cfg, t, "seed", 1337, 0, 2147483647, &seed, err));
    tc->seed = (uint64_t)seed;
    SN_FORWARD(sn_section_bool(cfg, t, "shuffle", 1, &tc->shuffle, err));
    SN_FORWARD(sn_section_int(cfg, t, "threads", 0, 0, 1024, &tc->threads, err));
    static const char *const precisions[] = {"fp32", "bf16", NULL};
    int precision;
    SN_FORWARD(sn_section_choice(cfg, t, "precision", "fp32", precisions, &precision, err));
    tc->bf16 = precision == 1;
    SN_FORWARD(sn_section_int(cfg, t, "steps_per_epoch", 0, 0, 1 << 30, &tc->steps_per_epoch, err));
    SN_FORWARD(sn_section_int(cfg, t, "validation_batch_size", 0, 0, 1 << 20,
                              &tc->validation_batch_size, err));
    if (tc->validation_batch_size == 0)
        tc->validation_batch_size = tc->batch_size;
    /* long enough for the slowest step of a real run and the end of an epoch, short enough
       that a hung job does not hold its allocation for long */
    SN_FORWARD(sn_section_float(cfg, t, "watchdog", 300, 0, 1e7, &tc->watchdog, err));

    const struct sn_section *c = sn_config_find(cfg, "checkpoint");
    SN_FORWARD(sn_section_string(cfg, c, "dir", ".", tc->ckpt_dir, sizeof tc->ckpt_dir, err));
    SN_FORWARD(sn_section_int(cfg, c, "save_every", 0, 0, 1 << 30, &tc->save_every, err));
    const char *base = strrchr(cfg->path, '/');
    base = base ? base + 1 : cfg->path;
    char def_name[512];
    snprintf(def_name, sizeof def_name, "%s", base);
    char *dot = strrchr(def_name, '.');
    if (dot && dot != def_name)
        *dot = '\0';
    SN_FORWARD(sn_section_string(cfg, c, "name", def_name, tc->run_name, sizeof tc->run_name, err));
    return sn_callbacks_conf_parse(&tc->cb, cfg, err);
}

/* The label format a loss reads, as Keras's label_mode names it. */
static const char *const loss_label_mode[] = {"int", "categorical", "binary"};
static const char *const loss_names[] = {"sparse_categorical_crossentropy",
                                         "categorical_crossentropy", "binary_crossentropy"};

/* Data, network and loss fit together: the image shape, and label_mode with the loss. */
static int check_fit(const struct sn_settings *st, const struct sn_config *cfg,
                     const struct sn_model *m, struct sn_err *err)
{
    const struct sn_data_conf *dc = &st->dc;
    if (dc->height == 0 && sn_config_find(cfg, "data") == NULL)
        return SN_OK; /* no [data]: a network without images (summary) */
    if (dc->features[0] && (dc->height != m->input.h || dc->width != m->input.w ||
                            dc->channels != m->input.c))
        return sn_err_set(err, SN_EINVAL,
                          "%s: the feature file %s ([data] features, %s) holds samples of "
                          "(%d, %d, %d), the model's input_shape is (%d, %d, %d): features of "
                          "another base?",
                          cfg->path, dc->features, dc->features_where, dc->height, dc->width,
                          dc->channels, m->input.h, m->input.w, m->input.c);
    if (dc->features[0] && st->ac.enabled)
        return sn_config_error(cfg, sn_config_find(cfg, "augment"), NULL, err, SN_EINVAL,
                               "[augment] with [data] features: features are computed once, "
                               "from unaugmented images; HINT: augment with a frozen base "
                               "instead (configs/vgg16_frozen.cfg)");
    int h, w; /* what the network is fed: RandomCrop's size when [augment] crop is set */
    sn_augment_out_size(&st->ac, dc->height, dc->width, &h, &w);
    if ((h != dc->height || w != dc->width) &&
        (h != m->input.h || w != m->input.w || dc->channels != m->input.c))
        return sn_config_error(cfg, sn_config_find(cfg, "augment"), "crop", err, SN_EINVAL,
                               "[data] gives %dx%dx%d images, RandomCrop makes them %dx%dx%d, "
                               "the model expects %dx%dx%d ([model] input_shape is the "
                               "network's input: after the crop)",
                               dc->height, dc->width, dc->channels, h, w, dc->channels,
                               m->input.h, m->input.w, m->input.c);
    if (h != m->input.h || w != m->input.w || dc->channels != m->input.c)
        return sn_err_set(err, SN_EINVAL,
                          "%s: [data] gives %dx%dx%d images, the model expects %dx%dx%d",
                          cfg->path, dc->height, dc->width, dc->channels, m->input.h, m->input.w,
                          m->input.c);
    if (dc->label_mode_set && (int)dc->label_mode != (int)m->loss)
        return sn_config_error(cfg, sn_config_find(cfg, "data"), "label_mode", err, SN_EINVAL,
                               "label_mode = %s gives labels for %s, but [train] loss = %s; "
                               "HINT: use label_mode = %s, or leave it out",
                               loss_label_mode[dc->label_mode], loss_names[dc->label_mode],
                               loss_names[m->loss], loss_label_mode[m->loss]);
    if (m->loss == SN_LOSS_BCE && dc->n_class_names && dc->n_class_names != 2)
        return sn_config_error(cfg, sn_config_find(cfg, "data"), "class_names", err, SN_EINVAL,
                               "%d classes listed, but binary_crossentropy needs exactly 2",
                               dc->n_class_names);
    return SN_OK;
}

int sn_settings_load(struct sn_settings *st, const struct sn_config *cfg, struct sn_err *err)
{
    memset(st, 0, sizeof *st);
    SN_FORWARD(train_conf_parse(&st->tc, cfg, err));
    SN_FORWARD(sn_data_conf_parse(&st->dc, cfg, err));
    SN_FORWARD(sn_augment_conf_parse(&st->ac, cfg, err));
    SN_FORWARD(sn_optim_conf_parse(&st->oc, cfg, err));
    /* [model] backend: auto, or one backend for every layer (any that may be named) */
    const char *names[16];
    const struct sn_ops *tables[16];
    int n = 0;
    names[n] = "auto", tables[n++] = &sn_ops_blas;
    for (int i = 0; sn_backends[i] && n < 15; i++)
        if (sn_ops_nameable(sn_backends[i]))
            names[n] = sn_backends[i]->name, tables[n++] = sn_backends[i];
    names[n] = NULL;
    int b;
    SN_FORWARD(sn_section_choice(cfg, sn_config_find(cfg, "model"), "backend", "auto", names, &b,
                                 err));
    st->auto_backend = b == 0;
    st->ops = tables[b];
    return SN_OK;
}

#define MB 1e6

/* What the network m takes on one rank, in parts. */
struct need {
    double params, grads, moments, acts, rank;
};

static struct need network_need(const struct sn_settings *st, const struct sn_model *m)
{
    struct sn_model_memory mm;
    sn_model_memory(m, &mm);
    /* in doubles: a figure beyond size_t (2^24 filters on a large image) is still a figure */
    double moments = st->training ? (double)sn_optim_slots(&st->oc) * m->n_trainable * 4 : 0;
    double grads = st->training ? (double)mm.grads : 0;
    /* the exact exchange keeps every micro-batch's gradients but the last until the step's
       sum, and sums them in 64-bit integers */
    if (st->training) {
        int world = st->world > 1 ? st->world : 1, micro = st->tc.micro_batch;
        int micros = (st->tc.batch_size + micro - 1) / micro;
        int mine = (micros + world - 1) / world;
        grads += (double)mm.grads * (mine - 1) + 2.0 * (double)mm.grads;
    }
    double acts = (double)mm.arena, params = (double)mm.params + (double)mm.state;
    return (struct need){params, grads, moments, acts, params + grads + moments + acts};
}

double sn_settings_need(const struct sn_settings *st, const struct sn_model *m)
{
    return network_need(st, m).rank;
}

int sn_settings_node_fits(const struct sn_settings *st, double per_rank,
                          struct sn_mem_avail *avail, int *ranks)
{
    *ranks = st->node_ranks > 1 ? st->node_ranks : 1;
    sn_mem_available("", avail);
    return avail->bytes == 0 || per_rank * *ranks <= (double)avail->bytes;
}

/* The network m will take more memory than there is: an error with the figures. */
static int check_memory(const struct sn_settings *st, const struct sn_config *cfg,
                        const struct sn_model *m, struct sn_err *err)
{
    struct need nd = network_need(st, m);
    double rank = nd.rank;
    int ranks;
    struct sn_mem_avail avail;
    if (sn_settings_node_fits(st, rank, &avail, &ranks))
        return SN_OK;
    char each[160] = "", parts[200] = "";
    if (ranks > 1)
        snprintf(each, sizeof each, ", on each of the %d ranks of this node: %.0f MB in all",
                 ranks, rank * ranks / MB);
    if (st->training)
        snprintf(parts, sizeof parts, ", gradients %.0f MB, optimizer moments %.0f MB",
                 nd.grads / MB, nd.moments / MB);
    return sn_err_set(err, SN_ENOMEM,
                      "%s: the network needs %.0f MB at micro-batch %d%s (parameters %.0f MB%s, "
                      "activations %.0f MB), but %.0f MB are available (%s)\n---> HINT: fewer "
                      "filters or units, a smaller micro_batch or image_size%s",
                      cfg->path, rank / MB, m->max_batch, each, nd.params / MB, parts, nd.acts / MB,
                      (double)avail.bytes / MB, avail.source,
                      ranks > 1 ? ", or fewer ranks per node" : "");
}

int sn_settings_build(const struct sn_settings *st, const struct sn_config *cfg, int max_batch,
                      struct sn_model **model, struct sn_err *err)
{
    struct sn_model *m;
    SN_FORWARD(sn_model_plan(&m, cfg, max_batch > 0 ? max_batch : 1, st->ops, err));
    int rc = check_fit(st, cfg, m, err);
    if (rc == SN_OK)
        rc = sn_optim_check_model(&st->oc, m, cfg, err);
    if (rc == SN_OK)
        rc = sn_config_check_unused(cfg, err);
    if (rc == SN_OK)
        rc = sn_config_keys_check(cfg, err); /* every key read is documented */
    if (rc == SN_OK)
        rc = check_memory(st, cfg, m, err);
    if (rc == SN_OK)
        rc = sn_model_allocate(m, err);
    if (rc == SN_OK && model)
        *model = m;
    else
        sn_model_free(m);
    return rc;
}

int sn_settings_check_cpu(const struct sn_settings *st, const struct sn_config *cfg,
                          struct sn_err *err)
{
    if (!st->tc.bf16 || sn_ops_bf16_native())
        return SN_OK;
    char isa[128];
    sn_ops_onednn_describe(isa, sizeof isa);
    return sn_config_error(cfg, sn_config_find(cfg, "train"), "precision", err, SN_EINVAL,
                           "bf16 needs a CPU with AVX-512 BF16 or AMX; this one "
                           "runs %s. HINT: precision = fp32",
                           isa);
}

int sn_settings_check_classes(const struct sn_model *m, int n_classes, const char *where,
                              struct sn_err *err)
{
    char what[600];
    snprintf(what, sizeof what, "%s has %d classes", where, n_classes);
    SN_FORWARD(sn_model_check_vector(m, what, err));
    if (m->loss == SN_LOSS_BCE && n_classes != 2)
        return sn_err_set(err, SN_EINVAL,
                          "%s has %d classes, but loss = binary_crossentropy needs exactly 2\n"
                          "---> HINT: use sparse_categorical_crossentropy with a last layer of "
                          "%d units",
                          where, n_classes, n_classes);
    if (m->loss != SN_LOSS_BCE && n_classes != m->n_outputs)
        return sn_err_set(err, SN_EINVAL,
                          "%s has %d classes but the last layer has %d units\n---> HINT: set the "
                          "last layer's units to %d",
                          where, n_classes, m->n_outputs, n_classes);
    return SN_OK;
}
