/* values.h — a network's weights array by array, as Keras names them, and whether they hold
 * values the network can run on.
 *
 * Every path that puts weights into a model from a file — a Keras weight file
 * (import-weights), a checkpoint (a resume, `train --init`, evaluate, predict, extract,
 * export-weights) or a [base] checkpoint — checks them with sn_model_check_values once they
 * are read: a NaN or an infinity in a kernel makes the network compute NaN (nothing stops at it
 * until a loss is taken, and predict takes none), and a negative moving variance turns batch
 * normalization's output into NaN. Such a file is refused, naming the layer, the array and the
 * element. */
#ifndef SN_VALUES_H
#define SN_VALUES_H

#include <stddef.h>

#include "err.h"
#include "model.h"

#define SN_MAX_ARRAYS 4 /* per layer: BatchNormalization has 4 */

/* One array of a layer's weights, in Keras's terms. */
struct sn_array {
    const char *name; /* Keras's: kernel, bias, gamma, beta, moving_mean, moving_variance */
    int in_state;     /* 1: in the model's state (statistics), 0: in its params */
    size_t off;       /* first float, in params or state (the model's offsets) */
    size_t size;      /* floats */
    int ndims;
    int dims[4];      /* Keras's shape: conv2d kernel (KH,KW,C,OC), dense kernel (IN,UNITS) */
};

/* The arrays of layer l in Keras's order (the order of its weight file): conv2d and dense:
 * kernel, then bias (use_bias); batchnormalization: gamma (scale), beta (center), then the state
 * moving_mean and moving_variance. @return their number, 0 for a layer without weights. */
int sn_layer_arrays(const struct sn_layer *l, struct sn_array a[SN_MAX_ARRAYS]);

/* "kernel[1,2,0,3]": element i of array a, with its index in a's shape, into buf[cap]. */
void sn_array_element(const struct sn_array *a, size_t i, char *buf, size_t cap);

/* Whether params and state, laid out as m's (the model's own buffers or a staged copy), hold
 * values the first n_layers layers can run on: every parameter and statistic finite, every
 * moving variance >= 0. source names the file in the message.
 * @return SN_OK, or SN_EFORMAT naming the first bad value and counting the others:
 *   "SOURCE: block1_conv1: kernel[1,2,0,3] is NaN (1 non-finite value in the file)" */
int sn_model_check_values(const struct sn_model *m, int n_layers, const float *params,
                          const float *state, const char *source, struct sn_err *err);

/* Whether n optimizer moments (the optimizer's buffer, as a checkpoint holds it) are finite.
 * @return SN_OK, or SN_EFORMAT naming source and the first bad moment. */
int sn_check_moments(const float *moments, size_t n, const char *source, struct sn_err *err);

#endif
