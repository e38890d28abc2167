/* ops_ref.c — sn_ops_ref: the naive backend, the tests' oracle (llm.c's matmul_forward_naive).
 *
 * Every function is the textbook loop nest, written for obviousness rather than speed: a direct
 * 7-loop convolution, a triple-loop GEMM, double accumulators. It shares no code with ops.c, so
 * an agreement between the two is evidence rather than an echo. It needs no scratch. */
#include "ops.h"

#include <math.h>   // defines: exp, tanh, sqrt, INFINITY
#include <string.h> // defines: memset

static void ref_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     const float *b, float beta, float *c)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * m + i] : a[(size_t)i * k + p];
                float bv = trans_b ? b[(size_t)j * k + p] : b[(size_t)p * n + j];
                s += (double)av * bv;
            }
            float *cij = &c[(size_t)i * n + j];
            *cij = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
    }
}

static size_t ref_conv2d_scratch(const struct sn_conv_desc *d) { return 0; }

/* index of in (N,H,W,C) */
#define IDX4(d, n, y, x, c) ((((size_t)(n) * (d)->h + (y)) * (d)->w + (x)) * (d)->c + (c))
/* index of out (N,OH,OW,OC) */
#define ODX4(d, n, y, x, c) ((((size_t)(n) * (d)->oh + (y)) * (d)->ow + (x)) * (d)->oc + (c))
/* index of w (KH,KW,C,OC) */
#define WDX4(d, ky, kx, c, o) ((((size_t)(ky) * (d)->kw + (kx)) * (d)->c + (c)) * (d)->oc + (o))

static void ref_act_forward(enum sn_act act, const float *x, float *y, size_t rows, size_t cols);

static void ref_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                               const float *b, enum sn_act act, float *out, void *scratch)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int o = 0; o < d->oc; o++) {
                    double s = b ? b[o] : 0.0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->sh - d->pad_top + ky;
                            int ix = ox * d->sw - d->pad_left + kx;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                continue;
                            for (int c = 0; c < d->c; c++)
                                s += (double)in[IDX4(d, n, iy, ix, c)] * w[WDX4(d, ky, kx, c, o)];
                        }
                    out[ODX4(d, n, oy, ox, o)] = (float)s;
                }
    if (act != SN_ACT_LINEAR)
        ref_act_forward(act, out, out, (size_t)d->n * d->oh * d->ow, (size_t)d->oc);
}

static void ref_conv2d_backward(const struct sn_conv_desc *d, const float *in, const float *w,
                                const float *dout, float *din, float *dw, float *db,
                                void *scratch)
{
    /* db, dw: one double sum per parameter, over every output pixel of the batch */
    for (int o = 0; o < d->oc && db; o++) {
        double s = 0;
        for (int n = 0; n < d->n; n++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++)
                    s += dout[ODX4(d, n, oy, ox, o)];
        db[o] += (float)s;
    }
    for (int ky = 0; ky < d->kh && dw; ky++)
        for (int kx = 0; kx < d->kw; kx++)
            for (int c = 0; c < d->c; c++)
                for (int o = 0; o < d->oc; o++) {
                    double s = 0;
                    for (int n = 0; n < d->n; n++)
                        for (int oy = 0; oy < d->oh; oy++)
                            for (int ox = 0; ox < d->ow; ox++) {
                                int iy = oy * d->sh - d->pad_top + ky;
                                int ix = ox * d->sw - d->pad_left + kx;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                    continue;
                                s += (double)dout[ODX4(d, n, oy, ox, o)] *
                                     in[IDX4(d, n, iy, ix, c)];
                            }
                    dw[WDX4(d, ky, kx, c, o)] += (float)s;
                }
    if (din == NULL)
        return;
    /* din: scatter every output's gradient back through the kernel */
    memset(din, 0, (size_t)d->n * d->h * d->w * d->c * sizeof(float));
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int o = 0; o < d->oc; o++) {
                    float g = dout[ODX4(d, n, oy, ox, o)];
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->sh - d->pad_top + ky;
                            int ix = ox * d->sw - d->pad_left + kx;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                continue;
                            for (int c = 0; c < d->c; c++)
                                din[IDX4(d, n, iy, ix, c)] += g * w[WDX4(d, ky, kx, c, o)];
                        }
                }
}

static void ref_maxpool_forward(const struct sn_pool_desc *d, const float *in, float *out,
                                int32_t *argmax)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int c = 0; c < d->c; c++) {
                    float best = -INFINITY;
                    int32_t at = -1;
                    for (int ky = 0; ky < d->ph; ky++)
                        for (int kx = 0; kx < d->pw; kx++) {
                            int iy = oy * d->sh - d->pad_top + ky;
                            int ix = ox * d->sw - d->pad_left + kx;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                continue; /* padding never wins */
                            size_t i = (((size_t)n * d->h + iy) * d->w + ix) * d->c + c;
                            /* the first NaN of the window wins (as in ops_blas.c) */
                            if (at < 0 || in[i] > best || (isnan(in[i]) && !isnan(best))) {
                                best = in[i];
                                at = (int32_t)i;
                            }
                        }
                    size_t o = (((size_t)n * d->oh + oy) * d->ow + ox) * d->c + c;
                    out[o] = best;
                    argmax[o] = at;
                }
}

static void ref_maxpool_backward(const struct sn_pool_desc *d, const float *dout,
                                 const int32_t *argmax, float *din)
{
    memset(din, 0, (size_t)d->n * d->h * d->w * d->c * sizeof(float));
    for (size_t i = 0; i < (size_t)d->n * d->oh * d->ow * d->c; i++)
        din[argmax[i]] += dout[i];
}

static void ref_act_forward(enum sn_act act, const float *x, float *y, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        if (act == SN_ACT_SOFTMAX) {
            double mx = -INFINITY, s = 0;
            for (size_t j = 0; j < cols; j++)
                mx = xr[j] > mx ? xr[j] : mx;
            for (size_t j = 0; j < cols; j++)
                s += exp(xr[j] - mx);
            for (size_t j = 0; j < cols; j++)
                yr[j] = (float)(exp(xr[j] - mx) / s);
            continue;
        }
        for (size_t j = 0; j < cols; j++) {
            double v = xr[j];
            switch (act) {
            case SN_ACT_RELU: v = v < 0 ? 0 : v; break; /* NaN stays NaN */
            case SN_ACT_SIGMOID: v = 1.0 / (1.0 + exp(-v)); break;
            case SN_ACT_TANH: v = tanh(v); break;
            default: break;
            }
            yr[j] = (float)v;
        }
    }
}

static void ref_act_backward(enum sn_act act, const float *y, const float *dy, float *dx,
                             size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0;
        if (act == SN_ACT_SOFTMAX)
            for (size_t j = 0; j < cols; j++)
                dot += (double)dyr[j] * yr[j];
        for (size_t j = 0; j < cols; j++) {
            double g = dyr[j], v = yr[j];
            switch (act) {
            case SN_ACT_RELU: g = g * (v > 0 ? 1 : 0); break; /* NaN * 0 stays NaN */
            case SN_ACT_SIGMOID: g = g * v * (1 - v); break;
            case SN_ACT_TANH: g = g * (1 - v * v); break;
            case SN_ACT_SOFTMAX: g = v * (g - dot); break;
            default: break;
            }
            dxr[j] = (float)g;
        }
    }
}

static void ref_bias_forward(float *out, const float *b, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            out[r * cols + j] = (float)((double)out[r * cols + j] + b[j]);
}

static void ref_bias_backward(const float *dout, float *db, size_t rows, size_t cols)
{
    for (size_t j = 0; j < cols; j++) {
        double s = db[j];
        for (size_t r = 0; r < rows; r++)
            s += dout[r * cols + j];
        db[j] = (float)s;
    }
}

static void ref_avgpool_global_forward(const float *in, float *out, int n, int hw, int c)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int p = 0; p < hw; p++)
                s += in[((size_t)i * hw + p) * c + k];
            out[(size_t)i * c + k] = (float)(s / hw);
        }
}

static void ref_avgpool_global_backward(const float *dout, float *din, int n, int hw, int c)
{
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                din[((size_t)i * hw + p) * c + k] = (float)((double)dout[(size_t)i * c + k] / hw);
}

/* Batch normalization, the textbook way: per channel, statistics in double. */
static void ref_batchnorm_forward(const float *x, float *y, size_t rows, int c, float eps,
                                  int batch_stats, const float *gamma, const float *beta,
                                  float *mean, float *var, void *scratch)
{
    for (int k = 0; k < c; k++) {
        if (batch_stats) {
            double m = 0, v = 0;
            for (size_t r = 0; r < rows; r++)
                m += x[r * c + k];
            m /= (double)rows;
            for (size_t r = 0; r < rows; r++)
                v += (x[r * c + k] - m) * (x[r * c + k] - m);
            mean[k] = (float)m;
            var[k] = (float)(v / (double)rows);
        }
        double is = 1.0 / sqrt((double)var[k] + eps);
        for (size_t r = 0; r < rows; r++)
            y[r * c + k] = (float)(((double)x[r * c + k] - mean[k]) * is * (gamma ? gamma[k] : 1.0) +
                                   (beta ? beta[k] : 0.0));
    }
}

static void ref_batchnorm_backward(const float *x, const float *dy, float *dx, size_t rows, int c,
                                   float eps, int batch_stats, const float *gamma,
                                   const float *mean, const float *var, float *dgamma, float *dbeta,
                                   void *scratch)
{
    for (int k = 0; k < c; k++) {
        double is = 1.0 / sqrt((double)var[k] + eps), g = gamma ? gamma[k] : 1.0;
        double sdy = 0, sdyx = 0;
        for (size_t r = 0; r < rows; r++) {
            double xhat = ((double)x[r * c + k] - mean[k]) * is;
            sdy += dy[r * c + k];
            sdyx += dy[r * c + k] * xhat;
        }
        if (dgamma)
            dgamma[k] = (float)(dgamma[k] + sdyx);
        if (dbeta)
            dbeta[k] = (float)(dbeta[k] + sdy);
        for (size_t r = 0; dx && r < rows; r++) {
            double xhat = ((double)x[r * c + k] - mean[k]) * is;
            dx[r * c + k] = (float)(batch_stats ? g * is * (dy[r * c + k] - sdy / (double)rows -
                                                            xhat * sdyx / (double)rows)
                                                : g * is * dy[r * c + k]);
        }
    }
}

const struct sn_ops sn_ops_ref = {
    .name = "ref",
    .caps = SN_OPS_ORACLE,
    .gemm = ref_gemm,
    .conv2d_scratch = ref_conv2d_scratch,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward = ref_conv2d_backward,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .act_forward = ref_act_forward,
    .act_backward = ref_act_backward,
    .bias_forward = ref_bias_forward,
    .bias_backward = ref_bias_backward,
    .avgpool_global_forward = ref_avgpool_global_forward,
    .avgpool_global_backward = ref_avgpool_global_backward,
    .batchnorm_forward = ref_batchnorm_forward,
    .batchnorm_backward = ref_batchnorm_backward,
};
