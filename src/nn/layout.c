/* layout.c — where activations stay in oneDNN's blocked layout between layers (layout.h). */
#include "layout.h"

#include <stdio.h> // defines: snprintf

/* Whether layer l may sit in a blocked run: a convolution or max pooling whose parts that run
 * all take oneDNN's blocked layout (*reorders set when one of them works on reordered data:
 * Winograd, bf16). */
static int blockable(const struct sn_model *m, const struct sn_layer *l, int training,
                     int *reorders)
{
    const struct sn_ops *f = sn_layer_ops(m, l, SN_PART_FORWARD);
    if (l->in.rank != 3 || !(f->caps & SN_OPS_BLOCKED))
        return 0;
    if (l->type == &sn_layer_maxpooling2d)
        return 1;
    if (l->type != &sn_layer_conv2d)
        return 0;
    unsigned caps = f->caps;
    if (training) {
        unsigned bd = sn_layer_ops(m, l, SN_PART_BWD_DATA)->caps;
        unsigned bw = sn_layer_ops(m, l, SN_PART_BWD_WEIGHTS)->caps;
        if (!(bd & SN_OPS_BLOCKED) || !(bw & SN_OPS_BLOCKED))
            return 0;
        caps |= bd | bw;
    }
    *reorders |= (caps & SN_OPS_REORDERS) != 0;
    return 1;
}

/* Whether the tensor between layers a and a + 1 may be blocked: channels in 16s, and a producer
 * whose activation is elementwise (a softmax runs over NHWC's channel rows). */
static int joinable(const struct sn_model *m, int a)
{
    const struct sn_layer *l = &m->layers[a];
    return l->out.c % 16 == 0 && l->out.rank == 3 &&
           !(l->type == &sn_layer_conv2d && l->conf.act == SN_ACT_SOFTMAX) && !l->logits_out;
}

int sn_model_plan_layouts(struct sn_model *m, int training)
{
    for (int i = 0; i < m->n_layers; i++)
        m->layers[i].blk_in = m->layers[i].blk_out = 0;
    int kept = 0;
    for (int i = 0; m->keep_blocked && sn_ops_onednn_blocked_native() && i < m->n_layers;) {
        int reorders = 0;
        if (!blockable(m, &m->layers[i], training, &reorders)) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < m->n_layers && joinable(m, j) &&
               blockable(m, &m->layers[j + 1], training, &reorders))
            j++;
        int next = j + 1, a = i, b = j;
        /* a pooling at an end would read one layout and write another */
        while (a <= b && m->layers[a].type != &sn_layer_conv2d)
            a++;
        while (b >= a && m->layers[b].type != &sn_layer_conv2d)
            b--;
        for (int k = a; reorders && k < b; k++) {
            m->layers[k].blk_out = m->layers[k + 1].blk_in = 1;
            kept++;
        }
        i = next;
    }
    return kept;
}

int sn_model_layout_runs(const struct sn_model *m, char *desc, size_t desc_size)
{
    int kept = 0, len = 0;
    desc[0] = '\0';
    for (int a = 0; a < m->n_layers; a++) {
        if (!m->layers[a].blk_out || m->layers[a].blk_in)
            continue; /* not where a run begins */
        int b = a;
        for (; m->layers[b].blk_out; b++) /* a blocked output has a blocked reader */
            kept++;
        if (len < (int)desc_size)
            len += snprintf(desc + len, desc_size - len, "%s%s to %s (%d layers)",
                            len ? ", " : "", m->layers[a].name, m->layers[b].name, b - a + 1);
        a = b;
    }
    if (!len)
        snprintf(desc, desc_size, "none");
    return kept;
}

