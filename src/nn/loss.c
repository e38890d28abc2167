/* loss.c — the losses from logits (loss.h). */
#include "loss.h"

#include <math.h>   // defines: exp, log, expf, log1pf, fabsf, fmaxf
#include <string.h> // defines: memset

double sn_loss(enum sn_loss_kind kind, const float *logits, const int32_t *labels,
               const uint8_t *ok, int n, int k, float grad_scale, float *dlogits,
               long long *correct)
{
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
            /* softplus form: loss = max(z,0) - z*y + log(1 + exp(-|z|)) */
            float zz = z[0];
            total += fmaxf(zz, 0.f) - zz * (float)y + log1pf(expf(-fabsf(zz)));
            if (dz) {
                float p = zz >= 0 ? 1.f / (1.f + expf(-zz)) : expf(zz) / (1.f + expf(zz));
                dz[0] = (p - (float)y) * grad_scale;
            }
            *correct += (zz > 0) == (y == 1);
            continue;
        }
        /* (sparse_)categorical crossentropy from logits via log-sum-exp */
        int arg = 0;
        float zmax = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > zmax)
                zmax = z[j], arg = j;
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)(z[j] - zmax));
        double lse = zmax + log(sum);
        total += lse - z[y];
        *correct += arg == y;
        if (dz)
            for (int j = 0; j < k; j++)
                dz[j] = ((float)(exp((double)z[j] - lse)) - (j == y ? 1.f : 0.f)) * grad_scale;
    }
    return total;
}
