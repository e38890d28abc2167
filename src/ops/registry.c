/* registry.c — every backend, listed once (ops.h: sn_backends), and what is asked of all of
 * them together: a backend by name, the scratch a layer must reserve before it knows which one
 * will run it, the threads they compute with, and the output size of a window (Keras's rule,
 * which every backend and layer shares).
 *
 * What a backend can do is said by its caps (SN_OPS_*), never by comparing table pointers: a
 * new backend is a new table with its caps and a line here. */
#include "ops.h"

#include <string.h> // defines: strcmp

const struct sn_ops *const sn_backends[] = {&sn_ops_blas,     &sn_ops_onednn, &sn_ops_winograd,
                                            &sn_ops_bf16,     &sn_ops_ref,    NULL};

const struct sn_ops *sn_ops_by_name(const char *name)
{
    for (int i = 0; name && sn_backends[i]; i++)
        if (strcmp(sn_backends[i]->name, name) == 0)
            return sn_backends[i];
    return NULL;
}

int sn_ops_nameable(const struct sn_ops *ops) { return !(ops->caps & SN_OPS_BF16); }

size_t sn_ops_conv2d_scratch_max(const struct sn_conv_desc *d)
{
    size_t most = 0;
    for (int i = 0; sn_backends[i]; i++) {
        size_t b = sn_backends[i]->conv2d_scratch(d);
        most = b > most ? b : most;
    }
    return most;
}

void sn_ops_set_threads(int n)
{
    sn_ops_blas_set_threads(n);
    sn_ops_onednn_set_threads(n);
}

int sn_ops_get_threads(void) { return sn_ops_blas_get_threads(); }

int sn_out_size(int in, int k, int s, int same, int *pad_before)
{
    if (!same) {
        if (pad_before)
            *pad_before = 0;
        return in < k ? 0 : (in - k) / s + 1;
    }
    int out = (in + s - 1) / s;
    int total = (out - 1) * s + k - in;
    if (pad_before)
        *pad_before = total > 0 ? total / 2 : 0;
    return out;
}
