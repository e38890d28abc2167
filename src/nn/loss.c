/* loss.c — the losses from logits (loss.h). */
#include "loss.h"

#include <math.h>   // defines: exp, log, expf, log1pf, fabsf, fmaxf
#include <string.h> // defines: memset

double sn_loss(enum sn_loss_kind kind, float label_smoothing, const float *logits,
               const int32_t *labels, const uint8_t *ok, int n, int k, float grad_scale,
               float *dlogits, long long *correct)
{
    /* smoothed targets: on = the true class's, off = every other class's (binary: the target
       of label 1 is on, of label 0 off). With ls = 0 they are exactly 1 and 0, so the
       arithmetic below is the unsmoothed loss's, bit for bit. */
    const float ls = label_smoothing;
    const float off = kind == SN_LOSS_BCE ? 0.5f * ls : ls / (float)k;
    const float on = (1.f - ls) + off;
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *dz = dlogits ? dlogits + (size_t)i * k : NULL;
        if (ok && !ok[i]) {
            if (dz)
                memset(dz, 0, (size_t)k * sizeof *dz);
            continue;
        }
        int y = labels[i];
        if (kind == SN_LOSS_BCE) {
            /* softplus form: loss = max(z,0) - z*t + log(1 + exp(-|z|)), t the target */
            float zz = z[0], t = y == 1 ? on : off;
            total += fmaxf(zz, 0.f) - zz * t + log1pf(expf(-fabsf(zz)));
            if (dz) {
                float p = zz >= 0 ? 1.f / (1.f + expf(-zz)) : expf(zz) / (1.f + expf(zz));
                dz[0] = (p - t) * grad_scale;
            }
            *correct += (zz > 0) == (y == 1);
            continue;
        }
        /* (sparse_)categorical crossentropy from logits via log-sum-exp:
           loss = lse - sum_j t_j z_j = lse - z[y] (ls = 0), and with smoothing
           lse - (1-ls) z[y] - ls/k sum_j z_j (the targets sum to 1) */
        int arg = 0;
        float zmax = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > zmax)
                zmax = z[j], arg = j;
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)(z[j] - zmax));
        double lse = zmax + log(sum);
        if (ls == 0.f) {
            total += lse - z[y];
        } else {
            double zsum = 0;
            for (int j = 0; j < k; j++)
                zsum += z[j];
            total += lse - (1.0 - (double)ls) * z[y] - (double)ls / k * zsum;
        }
        *correct += arg == y;
        if (dz)
            for (int j = 0; j < k; j++)
                dz[j] = ((float)(exp((double)z[j] - lse)) - (j == y ? on : off)) * grad_scale;
    }
    return total;
}
