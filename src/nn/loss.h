/* loss.h — Keras's losses, computed from the last layer's logits: the final softmax or sigmoid
 * is folded into the loss (log-sum-exp, softplus), for numerical stability. */
#ifndef SN_LOSS_H
#define SN_LOSS_H

#include <stdint.h>

enum sn_loss_kind {
    SN_LOSS_SPARSE_CCE = 0, /* sparse_categorical_crossentropy: int labels */
    SN_LOSS_CCE,            /* categorical_crossentropy: one-hot labels (expanded from ints) */
    SN_LOSS_BCE,            /* binary_crossentropy: one output unit, labels 0/1 */
};

/* Loss and its gradient from logits, numerically stable (log-sum-exp, softplus).
 * logits (n,k), labels (n) -> returns the SUM of per-sample losses over rows with ok[i] (ok may be
 * NULL); *correct += rows classified right; dlogits (n,k) (may be NULL) = d(sum loss)/dlogits
 * scaled by `grad_scale` (1/global batch). Rows with !ok get zero gradient.
 *
 * label_smoothing ls in [0, 1] (Keras's label_smoothing) replaces the one-hot target t of a row
 * by t*(1-ls) + ls/k (binary: t*(1-ls) + ls/2), for the sparse loss too (as its one-hot
 * equivalent). With the softmax folded in, the loss of a row is lse(z) - sum_j t_j z_j and its
 * gradient softmax(z) - t (binary: softplus form, sigmoid(z) - t). Accuracy does not depend on
 * it. ls = 0 gives the same bits as the unsmoothed loss. */
double sn_loss(enum sn_loss_kind kind, float label_smoothing, const float *logits,
               const int32_t *labels, const uint8_t *ok, int n, int k, float grad_scale,
               float *dlogits, long long *correct);

#endif
