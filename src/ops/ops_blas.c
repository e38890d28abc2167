/* ops_blas.c — sn_ops_blas: the fast backend, im2col + OpenBLAS sgemm, layout NHWC.
 *
 * A convolution is one GEMM per chunk of output pixels: the im2col matrix has one row per output
 * pixel of the whole batch (N*OH*OW rows, KH*KW*C columns, the batch folded into M so the GEMM
 * stays large), and (rows, K) x (K, OC) lands directly in the NHWC output. The col matrix is
 * built and consumed in chunks of rows so that its buffer stays under SN_CONV_CHUNK_BYTES
 * whatever the batch: the cats-vs-dogs first layer would need >100 MB at batch 32 otherwise.
 * Backward rebuilds each chunk of col (cheaper than keeping it: im2col is a few memcpy per row,
 * the GEMMs dominate), accumulates dW, then reuses the same buffer for dcol and scatters it back
 * with col2im. A 1x1, stride 1, unpadded kernel needs no im2col at all: the input is the col.
 * When the bias sits right after the kernel (the layers' layout), each col row ends with a 1 and
 * the bias rides in the GEMM: no bias pass forward, no column sums backward.
 *
 * Max pooling keeps the argmax for backward; with stride == pool (the default) its backward
 * writes every input cell once instead of zeroing and scattering. The common pool (2x2, strides
 * 2, every window whole) has its own loops, which give the general loops' bits.
 *
 * This file is the only caller of cblas in shardnet. Nothing here allocates, except the start-up
 * check of the GEMM kernels (sn_ops_blas_check). The registry of all backends is registry.c. */
#include "ops.h"

/* -O2's "very cheap" vectorizer leaves the element-wise loops here (col2im's adds, bias, the
 * activations) scalar, and they are a third of a small network's convolution time. The dynamic
 * cost model vectorizes them; element-wise IEEE operations give the same bits either way, and
 * float reductions stay sequential (no -fassociative-math), so results do not change. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

#include <cblas.h>  // defines: cblas_sgemm, openblas_set_num_threads, openblas_get_num_threads
#include <math.h>   // defines: expf, tanhf, fabs, INFINITY
#include <stdio.h>  // defines: sscanf, snprintf
#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: memcpy, memset

/* Upper bound of the im2col buffer: 1 MB, a core's L2 on current x86 servers. A chunk built
 * by im2col is then still in L2 when the GEMM reads it (and dcol when col2im reads it), instead
 * of making a round trip through L3 or memory. On a Zen 3 core (1 MB L2), one rank trained
 * Listing 8.1 at batch 64 15-25% faster with 1 MB chunks than with 16 MB ones (2 MB and
 * 512 KB in between, 256 KB and 4 MB slower) and the 180x180 network ~10% faster; with two
 * ranks sharing L3 the gain was larger still. A 3x3x128 layer still gets 227 rows per GEMM. */
#ifndef SN_CONV_CHUNK_BYTES
#define SN_CONV_CHUNK_BYTES ((size_t)1 << 20)
#endif

/* row-major C (m,n) = alpha op(A) op(B) + beta C with explicit leading dimensions */
static void gemm_ld(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void blas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      const float *b, float beta, float *c)
{
    gemm_ld(trans_a, trans_b, m, n, k, alpha, a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n);
}

/* ---- convolution ---------------------------------------------------------------------------- */

static int conv_is_pointwise(const struct sn_conv_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pad_top == 0 &&
           d->pad_left == 0 && d->oh == d->h && d->ow == d->w;
}

/* rows of the col matrix per chunk: as many as fit in SN_CONV_CHUNK_BYTES, at least one. A row
 * holds K = KH*KW*C values and a trailing 1 (see "bias folded" below). */
static size_t conv_chunk_rows(const struct sn_conv_desc *d)
{
    size_t k = (size_t)d->kh * d->kw * d->c + 1;
    size_t m = (size_t)d->n * d->oh * d->ow;
    size_t rows = SN_CONV_CHUNK_BYTES / (k * sizeof(float));
    if (rows < 1)
        rows = 1;
    return rows < m ? rows : m;
}

static size_t blas_conv2d_scratch(const struct sn_conv_desc *d)
{
    if (conv_is_pointwise(d))
        return 0;
    return conv_chunk_rows(d) * ((size_t)d->kh * d->kw * d->c + 1) * sizeof(float);
}

/* Valid kernel taps along one axis for output coordinate o: taps [*lo, *hi) read input
 * coordinates o*s - pad + tap inside [0, size). */
static inline void conv_tap_range(int o, int s, int pad, int k, int size, int *lo, int *hi)
{
    int i0 = o * s - pad;
    *lo = i0 < 0 ? -i0 : 0;
    *hi = size - i0 < k ? size - i0 : k;
    if (*hi < *lo)
        *hi = *lo;
}

/* Copies n floats; short runs (C=1 or 3 in a first layer) are not worth a memcpy call. */
static inline void copy_run(float *restrict dst, const float *restrict src, size_t n)
{
    if (n <= 8) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n * sizeof(float));
    }
}

/* col (m1-m0, ldc) = rows m0..m1 of the im2col matrix of in (N,H,W,C), KH*KW*C values per row,
 * then a 1 in column KH*KW*C if ones (ldc is then KH*KW*C + 1). Each kernel row ky contributes
 * one contiguous run of (valid kx)*C floats of the input; the rest is zero padding. */
static void im2col_rows(const struct sn_conv_desc *d, const float *in, size_t m0, size_t m1,
                        float *col, size_t ldc, int ones)
{
    const size_t C = (size_t)d->c, KWC = (size_t)d->kw * C, K = ldc;
    const size_t ohw = (size_t)d->oh * d->ow, stride = (size_t)d->w * C;
    size_t n = m0 / ohw, r = m0 % ohw;
    int oy = (int)(r / d->ow), ox = (int)(r % d->ow);
    for (size_t m = m0; m < m1; m++, col += K) {
        const float *img = in + n * (size_t)d->h * d->w * C;
        int ky0, ky1, kx0, kx1;
        conv_tap_range(oy, d->sh, d->pad_top, d->kh, d->h, &ky0, &ky1);
        conv_tap_range(ox, d->sw, d->pad_left, d->kw, d->w, &kx0, &kx1);
        const int iy0 = oy * d->sh - d->pad_top, ix0 = ox * d->sw - d->pad_left;
        if (ky0 == 0 && ky1 == d->kh && kx0 == 0 && kx1 == d->kw) {
            /* interior pixel (every pixel of a "valid" convolution): KH runs of KW*C floats;
             * a one-channel 3-wide kernel (Listing 8.1's first layer) gets its three floats
             * without a loop, which cuts that layer's im2col time by half */
            const float *src = img + ((size_t)iy0 * d->w + (size_t)ix0) * C;
            if (KWC == 3) {
                for (int ky = 0; ky < d->kh; ky++, src += stride) {
                    col[ky * 3 + 0] = src[0];
                    col[ky * 3 + 1] = src[1];
                    col[ky * 3 + 2] = src[2];
                }
            } else {
                for (int ky = 0; ky < d->kh; ky++, src += stride)
                    copy_run(col + (size_t)ky * KWC, src, KWC);
            }
        } else {
            /* border pixel: zero padding around the valid taps */
            if (ky0 > 0)
                memset(col, 0, (size_t)ky0 * KWC * sizeof(float));
            for (int ky = ky0; ky < ky1; ky++) {
                float *dst = col + (size_t)ky * KWC;
                if (kx0 > 0)
                    memset(dst, 0, (size_t)kx0 * C * sizeof(float));
                copy_run(dst + (size_t)kx0 * C,
                         img + (size_t)(iy0 + ky) * stride + (size_t)(ix0 + kx0) * C,
                         (size_t)(kx1 - kx0) * C);
                if (kx1 < d->kw)
                    memset(dst + (size_t)kx1 * C, 0, (size_t)(d->kw - kx1) * C * sizeof(float));
            }
            if (ky1 < d->kh)
                memset(col + (size_t)ky1 * KWC, 0, (size_t)(d->kh - ky1) * KWC * sizeof(float));
        }
        if (ones)
            col[(size_t)d->kh * KWC] = 1.0f;
        if (++ox == d->ow) {
            ox = 0;
            if (++oy == d->oh) {
                oy = 0;
                n++;
            }
        }
    }
}

/* din (N,H,W,C) += col2im of rows m0..m1 of dcol (row stride ldc): the transpose of im2col_rows. */
static void col2im_rows(const struct sn_conv_desc *d, const float *col, size_t m0, size_t m1,
                        float *din, size_t ldc)
{
    const size_t C = (size_t)d->c, KWC = (size_t)d->kw * C, K = ldc;
    const size_t ohw = (size_t)d->oh * d->ow;
    size_t n = m0 / ohw, r = m0 % ohw;
    int oy = (int)(r / d->ow), ox = (int)(r % d->ow);
    for (size_t m = m0; m < m1; m++, col += K) {
        float *img = din + n * (size_t)d->h * d->w * C;
        int ky0, ky1, kx0, kx1;
        conv_tap_range(oy, d->sh, d->pad_top, d->kh, d->h, &ky0, &ky1);
        conv_tap_range(ox, d->sw, d->pad_left, d->kw, d->w, &kx0, &kx1);
        const int iy0 = oy * d->sh - d->pad_top, ix0 = ox * d->sw - d->pad_left;
        const size_t len = (size_t)(kx1 - kx0) * C;
        for (int ky = ky0; ky < ky1; ky++) {
            const float *restrict src = col + (size_t)ky * KWC + (size_t)kx0 * C;
            float *restrict dst = img + ((size_t)(iy0 + ky) * d->w + (size_t)(ix0 + kx0)) * C;
            for (size_t i = 0; i < len; i++)
                dst[i] += src[i];
        }
        if (++ox == d->ow) {
            ox = 0;
            if (++oy == d->oh) {
                oy = 0;
                n++;
            }
        }
    }
}

/* out (rows, oc) += b broadcast over rows */
static void add_bias_rows(float *restrict out, const float *restrict b, size_t rows, size_t oc)
{
    for (size_t r = 0; r < rows; r++, out += oc)
        for (size_t j = 0; j < oc; j++)
            out[j] += b[j];
}

/* Bias folded into the GEMM: the layers keep the bias (OC) right after the kernel (K,OC), which
 * makes [kernel; bias] one (K+1, OC) matrix. With a 1 at the end of every col row, one GEMM gives
 * out + bias (no pass over the output), and backward's GEMM gives [dW; db] (no column sums). When
 * b (or db) is elsewhere, the bias takes its own pass. */
static int conv_bias_folded(const float *w, const float *b, size_t k, size_t oc)
{
    return b != NULL && b == w + k * oc;
}

static void blas_act_forward(enum sn_act act, const float *x, float *y, size_t rows,
                             size_t cols);

static void blas_conv2d_linear(const struct sn_conv_desc *d, const float *in, const float *w,
                               const float *b, float *out, void *scratch)
{
    const size_t K = (size_t)d->kh * d->kw * d->c, OC = (size_t)d->oc;
    const size_t M = (size_t)d->n * d->oh * d->ow;
    if (conv_is_pointwise(d)) {
        blas_gemm(0, 0, (int)M, (int)OC, (int)K, 1.0f, in, w, 0.0f, out);
        if (b)
            add_bias_rows(out, b, M, OC);
        return;
    }
    const int folded = conv_bias_folded(w, b, K, OC);
    const size_t ldc = K + 1, kg = K + (folded ? 1 : 0);
    float *col = scratch; /* (rows, K+1) */
    const size_t chunk = conv_chunk_rows(d);
    for (size_t m0 = 0; m0 < M; m0 += chunk) {
        size_t m1 = m0 + chunk < M ? m0 + chunk : M;
        im2col_rows(d, in, m0, m1, col, ldc, folded);
        /* out rows (m1-m0, OC) = col (m1-m0, kg) * [w; b] (kg, OC) */
        gemm_ld(0, 0, (int)(m1 - m0), (int)OC, (int)kg, 1.0f, col, (int)ldc, w, (int)OC, 0.0f,
                out + m0 * OC, (int)OC);
        if (b && !folded)
            add_bias_rows(out + m0 * OC, b, m1 - m0, OC);
    }
}

static void blas_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                                const float *b, enum sn_act act, float *out, void *scratch)
{
    blas_conv2d_linear(d, in, w, b, out, scratch);
    if (act != SN_ACT_LINEAR)
        blas_act_forward(act, out, out, (size_t)d->n * d->oh * d->ow, (size_t)d->oc);
}

/* db (OC) += column sums of dout (M, OC) */
static void colsum_add(const float *restrict dout, float *restrict db, size_t m, size_t oc)
{
    for (size_t r = 0; r < m; r++, dout += oc)
        for (size_t j = 0; j < oc; j++)
            db[j] += dout[j];
}

static void blas_conv2d_backward(const struct sn_conv_desc *d, const float *in, const float *w,
                                 const float *dout, float *din, float *dw, float *db,
                                 void *scratch)
{
    const size_t K = (size_t)d->kh * d->kw * d->c, OC = (size_t)d->oc;
    const size_t M = (size_t)d->n * d->oh * d->ow;
    if (conv_is_pointwise(d)) {
        if (db)
            colsum_add(dout, db, M, OC);
        if (dw) /* dw (K, OC) += in^T (K, M) * dout (M, OC) */
            blas_gemm(1, 0, (int)K, (int)OC, (int)M, 1.0f, in, dout, 1.0f, dw);
        if (din) /* din (M, K) = dout (M, OC) * w^T (OC, K) */
            blas_gemm(0, 1, (int)M, (int)K, (int)OC, 1.0f, dout, w, 0.0f, din);
        return;
    }
    const int folded = dw != NULL && conv_bias_folded(dw, db, K, OC);
    if (db && !folded)
        colsum_add(dout, db, M, OC);
    if (din)
        memset(din, 0, (size_t)d->n * d->h * d->w * d->c * sizeof(float));
    if (!din && !dw)
        return;
    const size_t ldc = K + 1, kg = K + (folded ? 1 : 0);
    float *col = scratch; /* (rows, K+1): col for dW, then dcol for din */
    const size_t chunk = conv_chunk_rows(d);
    for (size_t m0 = 0; m0 < M; m0 += chunk) {
        size_t m1 = m0 + chunk < M ? m0 + chunk : M;
        const int rows = (int)(m1 - m0);
        const float *dout_c = dout + m0 * OC; /* (rows, OC) */
        if (dw) { /* [dw; db] (kg, OC) += col^T (kg, rows) * dout (rows, OC) */
            im2col_rows(d, in, m0, m1, col, ldc, folded);
            gemm_ld(1, 0, (int)kg, (int)OC, rows, 1.0f, col, (int)ldc, dout_c, (int)OC, 1.0f, dw,
                    (int)OC);
        }
        if (din) { /* dcol (rows, K) = dout (rows, OC) * w^T (OC, K) */
            gemm_ld(0, 1, rows, (int)K, (int)OC, 1.0f, dout_c, (int)OC, w, (int)OC, 0.0f, col,
                    (int)ldc);
            col2im_rows(d, col, m0, m1, din, ldc);
        }
    }
}

/* ---- max pooling ---------------------------------------------------------------------------- */

void sn_ops_blas_maxpool_forward_general(const struct sn_pool_desc *d, const float *in,
                                         float *out, int32_t *argmax)
{
    const size_t C = (size_t)d->c;
    for (int n = 0; n < d->n; n++) {
        for (int oy = 0; oy < d->oh; oy++) {
            for (int ox = 0; ox < d->ow; ox++) {
                size_t o = (((size_t)n * d->oh + oy) * d->ow + ox) * C;
                float *restrict y = out + o;
                int32_t *restrict a = argmax + o;
                int ky0, ky1, kx0, kx1;
                conv_tap_range(oy, d->sh, d->pad_top, d->ph, d->h, &ky0, &ky1);
                conv_tap_range(ox, d->sw, d->pad_left, d->pw, d->w, &kx0, &kx1);
                int iy0 = oy * d->sh - d->pad_top, ix0 = ox * d->sw - d->pad_left;
                /* Padding cells are skipped, so they never win; the first valid cell seeds the
                 * max, ties keep the earlier cell and the first NaN wins for good. Every load and store is unconditional
                 * (selects, not branches) so the channel loop vectorizes. */
                for (int ky = ky0; ky < ky1; ky++) {
                    for (int kx = kx0; kx < kx1; kx++) {
                        size_t base = (((size_t)n * d->h + (iy0 + ky)) * d->w + (ix0 + kx)) * C;
                        const float *restrict x = in + base;
                        const int32_t b32 = (int32_t)base;
                        if (ky == ky0 && kx == kx0) {
                            for (size_t c = 0; c < C; c++) {
                                y[c] = x[c];
                                a[c] = b32 + (int32_t)c;
                            }
                            continue;
                        }
                        for (size_t c = 0; c < C; c++) {
                            float v = x[c], cur = y[c];
                            /* v wins if larger, or if it is the window's first NaN: a NaN in
                               a window is its max, as in PyTorch and XLA. !(v <= cur) is true
                               for a larger v and for a NaN v, and cur == cur keeps a NaN
                               once it won: one compare more than a plain max (& rather than
                               &&, so that the loop stays branch-free) */
                            int32_t win = !(v <= cur) & (cur == cur);
                            int32_t take = -win; /* all ones if v wins */
                            y[c] = win ? v : cur;
                            a[c] = (a[c] & ~take) | ((b32 + (int32_t)c) & take);
                        }
                    }
                }
            }
        }
    }
}

/* The common pool: 2x2 windows, strides 2, no padding cell, every window whole ("valid" on any
 * size, "same" on even sizes). A row of its windows is two input rows; the odd last row or
 * column of a "valid" pool lies in no window. */
static int pool_is_2x2(const struct sn_pool_desc *d)
{
    return d->ph == 2 && d->pw == 2 && d->sh == 2 && d->sw == 2 && d->pad_top == 0 &&
           d->pad_left == 0 && 2 * d->oh <= d->h && 2 * d->ow <= d->w;
}

/* One more cell (v, at index i) of a window whose running max is *m at *a: the general loop's
 * rule, compare for compare: v wins if larger, or if it is the window's first NaN. The selects
 * are on bits (a float select on an integer condition keeps GCC from vectorizing the loop). */
static inline void pool_take(float *m, int32_t *a, float v, int32_t i)
{
    const uint32_t take = 0u - (uint32_t)(!(v <= *m) & (*m == *m)); /* all ones if v wins */
    uint32_t mb, vb;
    memcpy(&mb, m, sizeof mb);
    memcpy(&vb, &v, sizeof vb);
    mb = (mb & ~take) | (vb & take);
    memcpy(m, &mb, sizeof mb);
    *a = (int32_t)(((uint32_t)*a & ~take) | ((uint32_t)i & take));
}

/* The common pool forward: each output channel's max over its window's four cells, in the
 * general loop's order ((0,0), (0,1), (1,0), (1,1)) and by its rule, so the same value and the
 * same argmax to the bit, ties and NaNs included; but kept in registers, one pass over the
 * input, with no per-window set-up. in (N,H,W,C) -> out, argmax (N,OH,OW,C). */
static void maxpool2x2_forward(const struct sn_pool_desc *d, const float *in, float *out,
                               int32_t *argmax)
{
    const size_t C = (size_t)d->c, WC = (size_t)d->w * C;
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++) {
            const size_t row = ((size_t)n * d->h + 2 * (size_t)oy) * WC; /* (n, 2 oy, 0, 0) */
            const size_t o = ((size_t)n * d->oh + oy) * d->ow * C;
            for (int ox = 0; ox < d->ow; ox++) {
                const size_t i00 = row + 2 * (size_t)ox * C;
                const float *restrict x0 = in + i00, *restrict x1 = x0 + WC;
                float *restrict y = out + o + (size_t)ox * C;
                int32_t *restrict a = argmax + o + (size_t)ox * C;
                const int32_t b0 = (int32_t)i00, b1 = (int32_t)(i00 + WC), c32 = (int32_t)C;
                for (size_t c = 0; c < C; c++) {
                    const int32_t ci = (int32_t)c;
                    float m = x0[c];
                    int32_t at = b0 + ci;
                    pool_take(&m, &at, x0[C + c], b0 + c32 + ci);
                    pool_take(&m, &at, x1[c], b1 + ci);
                    pool_take(&m, &at, x1[C + c], b1 + c32 + ci);
                    y[c] = m;
                    a[c] = at;
                }
            }
        }
}

static void blas_maxpool_forward(const struct sn_pool_desc *d, const float *in, float *out,
                                 int32_t *argmax)
{
    if (pool_is_2x2(d))
        maxpool2x2_forward(d, in, out, argmax);
    else
        sn_ops_blas_maxpool_forward_general(d, in, out, argmax);
}

/* The common pool backward, image n: each cell of a window gets the window's gradient where it
 * won, 0 elsewhere, as the general tiling loop writes them. dout, argmax (N,OH,OW,C) -> din
 * (N,H,W,C), the cells inside windows only. */
static void maxpool2x2_backward(const struct sn_pool_desc *d, const float *dout,
                                const int32_t *argmax, float *din, int n)
{
    const size_t C = (size_t)d->c, WC = (size_t)d->w * C;
    for (int oy = 0; oy < d->oh; oy++) {
        const size_t row = ((size_t)n * d->h + 2 * (size_t)oy) * WC;
        const size_t o = ((size_t)n * d->oh + oy) * d->ow * C;
        for (int ox = 0; ox < d->ow; ox++) {
            const size_t i00 = row + 2 * (size_t)ox * C;
            float *restrict x0 = din + i00, *restrict x1 = x0 + WC;
            const float *restrict g = dout + o + (size_t)ox * C;
            const int32_t *restrict a = argmax + o + (size_t)ox * C;
            const int32_t b0 = (int32_t)i00, b1 = (int32_t)(i00 + WC), c32 = (int32_t)C;
            for (size_t c = 0; c < C; c++) {
                const int32_t ci = (int32_t)c, at = a[c];
                const float v = g[c];
                x0[c] = at == b0 + ci ? v : 0.0f;
                x0[C + c] = at == b0 + c32 + ci ? v : 0.0f;
                x1[c] = at == b1 + ci ? v : 0.0f;
                x1[C + c] = at == b1 + c32 + ci ? v : 0.0f;
            }
        }
    }
}

/* The general tiling backward, image n: each cell of each window (clipped to the image) gets
 * the window's gradient where it won, 0 elsewhere. */
static void maxpool_tiled_backward(const struct sn_pool_desc *d, const float *dout,
                                   const int32_t *argmax, float *din, int n)
{
    const size_t C = (size_t)d->c, HWC = (size_t)d->h * d->w * C;
    for (int oy = 0; oy < d->oh; oy++) {
        int ky0, ky1;
        conv_tap_range(oy, d->sh, d->pad_top, d->ph, d->h, &ky0, &ky1);
        const int iy0 = oy * d->sh - d->pad_top;
        for (int ox = 0; ox < d->ow; ox++) {
            size_t o = (((size_t)n * d->oh + oy) * d->ow + ox) * C;
            const float *restrict g = dout + o;
            const int32_t *restrict a = argmax + o;
            int kx0, kx1;
            conv_tap_range(ox, d->sw, d->pad_left, d->pw, d->w, &kx0, &kx1);
            const int ix0 = ox * d->sw - d->pad_left;
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = kx0; kx < kx1; kx++) {
                    size_t base = (size_t)n * HWC +
                                  ((size_t)(iy0 + ky) * d->w + (size_t)(ix0 + kx)) * C;
                    float *restrict x = din + base;
                    const int32_t b32 = (int32_t)base;
                    for (size_t c = 0; c < C; c++) {
                        float v = g[c];
                        x[c] = a[c] == b32 + (int32_t)c ? v : 0.0f;
                    }
                }
        }
    }
}

/* Backward of a pool; `fast`: by the common pool's loops (pool_is_2x2(d) must hold). */
static void maxpool_backward(const struct sn_pool_desc *d, const float *dout,
                             const int32_t *argmax, float *din, int fast)
{
    const size_t C = (size_t)d->c, HWC = (size_t)d->h * d->w * C;
    if (d->sh != d->ph || d->sw != d->pw) {
        /* Overlapping (or gapped) windows: zero, then scatter-add through argmax. */
        memset(din, 0, (size_t)d->n * HWC * sizeof(float));
        size_t total = (size_t)d->n * d->oh * d->ow * C;
        for (size_t i = 0; i < total; i++)
            din[argmax[i]] += dout[i];
        return;
    }
    /* Windows tile the image (stride == pool, Keras's default): every input cell lies in at most
     * one window, so one pass writes each cell once — dout where it won, 0 elsewhere — instead
     * of zeroing the whole input gradient and then scattering into it. Cells past the last
     * window (a "valid" pool on an odd size) are zeroed. */
    const int cov_h = d->oh * d->sh - d->pad_top, cov_w = d->ow * d->sw - d->pad_left;
    const int rows = cov_h < d->h ? cov_h : d->h, cols = cov_w < d->w ? cov_w : d->w;
    for (int n = 0; n < d->n; n++) {
        float *img = din + (size_t)n * HWC;
        if (fast)
            maxpool2x2_backward(d, dout, argmax, din, n);
        else
            maxpool_tiled_backward(d, dout, argmax, din, n);
        if (cols < d->w)
            for (int y = 0; y < rows; y++)
                memset(img + ((size_t)y * d->w + cols) * C, 0,
                       (size_t)(d->w - cols) * C * sizeof(float));
        if (rows < d->h)
            memset(img + (size_t)rows * d->w * C, 0, (size_t)(d->h - rows) * d->w * C * sizeof(float));
    }
}

void sn_ops_blas_maxpool_backward_general(const struct sn_pool_desc *d, const float *dout,
                                          const int32_t *argmax, float *din)
{
    maxpool_backward(d, dout, argmax, din, 0);
}

static void blas_maxpool_backward(const struct sn_pool_desc *d, const float *dout,
                                  const int32_t *argmax, float *din)
{
    maxpool_backward(d, dout, argmax, din, pool_is_2x2(d));
}

/* ---- activations ---------------------------------------------------------------------------- */

static void softmax_rows(const float *x, float *y, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++, x += cols, y += cols) {
        float mx = x[0];
        for (size_t j = 1; j < cols; j++)
            mx = x[j] > mx ? x[j] : mx;
        float s = 0;
        for (size_t j = 0; j < cols; j++) {
            y[j] = expf(x[j] - mx);
            s += y[j];
        }
        float inv = 1.0f / s;
        for (size_t j = 0; j < cols; j++)
            y[j] *= inv;
    }
}

static void blas_act_forward(enum sn_act act, const float *x, float *y, size_t rows, size_t cols)
{
    size_t n = rows * cols;
    switch (act) {
    case SN_ACT_LINEAR:
        if (x != y)
            memcpy(y, x, n * sizeof(float));
        break;
    case SN_ACT_RELU:
        /* Keras's max(x, 0) as TensorFlow computes it, (x < 0) ? 0 : x: NaN stays NaN (a
           ReLU must not hide a network gone wrong), -0 stays -0; one vector max either way */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = v < 0.0f ? 0.0f : v;
        }
        break;
    case SN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case SN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    case SN_ACT_SOFTMAX:
        softmax_rows(x, y, rows, cols);
        break;
    }
}

static void blas_act_backward(enum sn_act act, const float *y, const float *dy, float *dx,
                              size_t rows, size_t cols)
{
    size_t n = rows * cols;
    switch (act) {
    case SN_ACT_LINEAR:
        if (dx != dy)
            memcpy(dx, dy, n * sizeof(float));
        break;
    case SN_ACT_RELU:
        /* TensorFlow's ReluGrad, dy * (y > 0): a NaN or an infinite gradient stays one where
           the unit is off (a select would zero it) */
        for (size_t i = 0; i < n; i++) {
            float on = y[i] > 0.0f ? 1.0f : 0.0f; /* a select and a multiply: vectorized */
            dx[i] = dy[i] * on;
        }
        break;
    case SN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case SN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case SN_ACT_SOFTMAX:
        /* dx_j = y_j (dy_j - sum_k dy_k y_k) */
        for (size_t r = 0; r < rows; r++, y += cols, dy += cols, dx += cols) {
            float s = 0;
            for (size_t j = 0; j < cols; j++)
                s += dy[j] * y[j];
            for (size_t j = 0; j < cols; j++)
                dx[j] = y[j] * (dy[j] - s);
        }
        break;
    }
}

/* ---- bias, global average pooling, batch normalization ------------------------------------- */

static void blas_bias_forward(float *out, const float *b, size_t rows, size_t cols)
{
    add_bias_rows(out, b, rows, cols);
}

static void blas_bias_backward(const float *dout, float *db, size_t rows, size_t cols)
{
    colsum_add(dout, db, rows, cols);
}

static void blas_avgpool_global_forward(const float *in, float *out, int n, int hw, int c)
{
    const float inv = 1.0f / (float)hw;
    for (int i = 0; i < n; i++) {
        float *y = out + (size_t)i * c;
        const float *x = in + (size_t)i * hw * c;
        for (int k = 0; k < c; k++)
            y[k] = 0.0f;
        for (int p = 0; p < hw; p++, x += c)
            for (int k = 0; k < c; k++)
                y[k] += x[k];
        for (int k = 0; k < c; k++)
            y[k] *= inv;
    }
}

static void blas_avgpool_global_backward(const float *dout, float *din, int n, int hw, int c)
{
    const float inv = 1.0f / (float)hw;
    for (int i = 0; i < n; i++) {
        const float *g = dout + (size_t)i * c;
        float *x = din + (size_t)i * hw * c;
        for (int p = 0; p < hw; p++, x += c)
            for (int k = 0; k < c; k++)
                x[k] = g[k] * inv;
    }
}

/* y (rows, C) = x * a + b per channel: every normalisation below is one such pass, which the
 * compiler vectorises (a test of gamma or of the mode per element would keep it scalar). */
static void affine_rows(const float *restrict x, float *restrict y, size_t rows, size_t C,
                        const float *restrict a, const float *restrict b)
{
    for (size_t r = 0; r < rows; r++, x += C, y += C)
        for (size_t k = 0; k < C; k++)
            y[k] = x[k] * a[k] + b[k];
}

/* dx (rows, C) = dy * a + (x - m) * b + c per channel (x - m first: folding m into c would
 * cancel when the mean is large against the spread) */
static void affine2_rows(const float *restrict dy, const float *restrict x, float *restrict dx,
                         size_t rows, size_t C, const float *restrict a, const float *restrict m,
                         const float *restrict b, const float *restrict c)
{
    for (size_t r = 0; r < rows; r++, dy += C, x += C, dx += C)
        for (size_t k = 0; k < C; k++)
            dx[k] = dy[k] * a[k] + (x[k] - m[k]) * b[k] + c[k];
}

static void blas_batchnorm_forward(const float *x, float *y, size_t rows, int c, float eps,
                                   int batch_stats, const float *gamma, const float *beta,
                                   float *mean, float *var, void *scratch)
{
    const size_t C = (size_t)c;
    if (batch_stats) {
        double *sum = scratch, *sq = sum + C;
        for (size_t k = 0; k < C; k++)
            sum[k] = sq[k] = 0.0;
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < C; k++)
                sum[k] += x[r * C + k];
        for (size_t k = 0; k < C; k++)
            mean[k] = (float)(sum[k] / (double)rows);
        /* two passes: E[(x-mean)^2] does not cancel the way E[x^2]-mean^2 does */
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < C; k++) {
                double dlt = (double)x[r * C + k] - mean[k];
                sq[k] += dlt * dlt;
            }
        for (size_t k = 0; k < C; k++)
            var[k] = (float)(sq[k] / (double)rows);
    }
    /* y = (x - mean) * inv_std * gamma + beta = x * a + b, a and b per channel (in double,
       rounded once); the sums are no longer needed */
    float *a = scratch, *b = a + C;
    for (size_t k = 0; k < C; k++) {
        double s = (gamma ? gamma[k] : 1.0) / sqrt((double)var[k] + eps);
        a[k] = (float)s;
        b[k] = (float)((beta ? beta[k] : 0.0) - mean[k] * s);
    }
    affine_rows(x, y, rows, C, a, b);
}

static void blas_batchnorm_backward(const float *x, const float *dy, float *dx, size_t rows,
                                    int c, float eps, int batch_stats, const float *gamma,
                                    const float *mean, const float *var, float *dgamma,
                                    float *dbeta, void *scratch)
{
    const size_t C = (size_t)c;
    double *sdy = scratch, *sdyx = sdy + C; /* sum dy, sum dy * xhat per channel */
    float *inv_std = (float *)(sdyx + C);
    for (size_t k = 0; k < C; k++) {
        sdy[k] = sdyx[k] = 0.0;
        inv_std[k] = (float)(1.0 / sqrt((double)var[k] + eps));
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < C; k++) {
            float g = dy[r * C + k];
            float xhat = (x[r * C + k] - mean[k]) * inv_std[k];
            sdy[k] += g;
            sdyx[k] += (double)g * xhat;
        }
    for (size_t k = 0; dgamma && k < C; k++)
        dgamma[k] += (float)sdyx[k];
    for (size_t k = 0; dbeta && k < C; k++)
        dbeta[k] += (float)sdy[k];
    if (dx == NULL)
        return;
    /* dx = dy * A + (x - mean) * B + K per channel (floats after the sums: 3C of them, over inv_std and
       beyond, as the scratch contract gives 2C doubles and 4C floats). With batch statistics,
       dx = s * (dy - mean(dy) - xhat * mean(dy * xhat)), s = gamma * inv_std, xhat = (x - mean)
       * inv_std; without, the statistics are constants and dx = s * dy. */
    float *A = inv_std + C, *B = A + C, *K = B + C;
    for (size_t k = 0; k < C; k++) {
        double is = 1.0 / sqrt((double)var[k] + eps);
        double s = (gamma ? gamma[k] : 1.0) * is;
        double mdy = batch_stats ? sdy[k] / (double)rows : 0.0;
        double mdyx = batch_stats ? sdyx[k] / (double)rows : 0.0;
        A[k] = (float)s;
        B[k] = (float)(-s * is * mdyx);
        K[k] = (float)(-s * mdy);
    }
    affine2_rows(dy, x, dx, rows, C, A, mean, B, K);
}

const struct sn_ops sn_ops_blas = {
    .name = "blas",
    .caps = 0,
    .gemm = blas_gemm,
    .conv2d_scratch = blas_conv2d_scratch,
    .conv2d_forward = blas_conv2d_forward,
    .conv2d_backward = blas_conv2d_backward,
    .maxpool_forward = blas_maxpool_forward,
    .maxpool_backward = blas_maxpool_backward,
    .act_forward = blas_act_forward,
    .act_backward = blas_act_backward,
    .bias_forward = blas_bias_forward,
    .bias_backward = blas_bias_backward,
    .avgpool_global_forward = blas_avgpool_global_forward,
    .avgpool_global_backward = blas_avgpool_global_backward,
    .batchnorm_forward = blas_batchnorm_forward,
    .batchnorm_backward = blas_batchnorm_backward,
};

/* ---- the loaded kernels --------------------------------------------------------------------- */

void sn_ops_blas_info(char *version, size_t vn, char *core, size_t cn)
{
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" */
    char v[32] = "?";
    sscanf(openblas_get_config(), "OpenBLAS %31s", v);
    snprintf(version, vn, "%s", v);
    snprintf(core, cn, "%s", openblas_get_corename());
}

/* One product of the check: C = A B (+ C) through cblas and through a double loop. */
static int check_shape(int ta, int tb, int m, int n, int k, float beta, float *a, float *b,
                       float *c, float *c0)
{
    uint32_t s = (uint32_t)(m * 131 + n * 17 + k);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)m * n; i++)
        c[i] = c0[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    blas_gemm(ta, tb, m, n, k, 1.0f, a, b, beta, c);
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double sum = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * m + i] : a[(size_t)i * k + p];
                double y = tb ? b[(size_t)j * k + p] : b[(size_t)p * n + j];
                sum += x * y;
                mag += fabs(x * y);
            }
            double want = sum + beta * c0[(size_t)i * n + j];
            mag += fabs(beta * c0[(size_t)i * n + j]);
            if (!(fabs(c[(size_t)i * n + j] - want) <= 1e-4 * (mag + 1e-30)))
                return -1;
        }
    }
    return 0;
}

int sn_ops_blas_check(void)
{
    static const struct {
        int ta, tb, m, n, k;
        float beta;
    } shapes[] = {
        {0, 0, 1, 1, 1, 0},       {0, 0, 7, 5, 3, 0},        {0, 0, 333, 32, 10, 0},
        {0, 0, 97, 64, 289, 0},   {1, 0, 289, 64, 97, 1},    {0, 1, 97, 288, 64, 0},
        {1, 1, 33, 17, 65, 1},    {0, 0, 64, 129, 200, 1},
    };
    const size_t most = 333 * 289; /* at least m*k, k*n and m*n of every shape */
    float *buf = malloc(4 * most * sizeof(float));
    if (!buf)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof shapes / sizeof shapes[0]; i++)
        rc = check_shape(shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n, shapes[i].k,
                         shapes[i].beta, buf, buf + most, buf + 2 * most, buf + 3 * most);
    free(buf);
    return rc;
}

void sn_ops_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

int sn_ops_blas_get_threads(void) { return openblas_get_num_threads(); }
