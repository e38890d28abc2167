/* test_loss.c — sn_loss, the three losses from logits, against Keras's definitions:
 *   sparse_categorical_crossentropy(y, z) = logsumexp(z) - z[y]          (from_logits=True)
 *   categorical_crossentropy(one_hot(y), z): the same number for the same labels
 *   binary_crossentropy(y, z) = max(z,0) - z*y + log(1 + exp(-|z|))       (sigmoid from logits)
 * and their gradients softmax(z) - one_hot(y) and sigmoid(z) - y, checked three ways: against
 * values worked out by hand, against central finite differences of the loss itself, and at
 * logits of +-1000 where a naive exp() overflows. Also: the SUM over rows, rows with ok = 0
 * (no loss, zero gradient, labels and logits never read), accuracy counting as Keras's
 * (sparse_)categorical_accuracy (argmax, the first one on ties) and binary_accuracy
 * (sigmoid(z) > 0.5), and grad_scale scaling the gradient only.
 *
 * Label smoothing (Keras's label_smoothing = ls): the targets become one_hot(y)*(1-ls) + ls/K
 * (binary: y*(1-ls) + ls/2), and the loss is the crossentropy of those targets with softmax(z)
 * (sigmoid(z)). test_label_smoothing computes it here as Keras writes it, -sum_j t_j log p_j
 * (binary: -(t log p + (1-t) log(1-p))), with p from z in double, and its gradient p - t; and
 * checks sn_loss's gradient against central differences of sn_loss's own loss, for the three
 * losses with ls = 0 and 0.1 and K = 2 and 10 classes. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: int32_t, uint8_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h>   // defines: exp, log, log1p, fabs, fmax, isfinite, NAN
#include <stdio.h>  // defines: fprintf
#include <string.h> // defines: memcpy

#include "model.h"
#include "testutil.h"

enum { MAXN = 8, MAXK = 6 };

static const enum sn_loss_kind kinds[3] = {SN_LOSS_SPARSE_CCE, SN_LOSS_CCE, SN_LOSS_BCE};
static const char *const kind_names[3] = {"sparse_categorical_crossentropy",
                                          "categorical_crossentropy", "binary_crossentropy"};

/* |got - want| <= atol + rtol*|want| */
static int near(double got, double want, double atol, double rtol)
{
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Keras's per-row loss and its gradient, in double, from logits z (k) and label y. */
static double ref_row(enum sn_loss_kind kind, const float *z, int k, int y, double *dz)
{
    if (kind == SN_LOSS_BCE) {
        double x = z[0];
        double p = 1 / (1 + exp(-x));
        if (dz)
            dz[0] = p - y;
        return fmax(x, 0) - x * y + log1p(exp(-fabs(x)));
    }
    double zmax = z[0];
    for (int j = 1; j < k; j++)
        zmax = fmax(zmax, z[j]);
    double s = 0;
    for (int j = 0; j < k; j++)
        s += exp((double)z[j] - zmax);
    double lse = zmax + log(s);
    if (dz)
        for (int j = 0; j < k; j++)
            dz[j] = exp((double)z[j] - lse) - (j == y);
    return lse - z[y];
}

static void test_sparse_cce_known_values(void **state)
{
    /* row 0: logsumexp(1,2,3) = 3 + log(1 + e^-1 + e^-2) = 3.40760596444438, minus z[2] = 3;
     * row 1: three equal logits, loss log 3 whatever the label;
     * row 2: logsumexp(-1, 0.5, 2) - (-1) = 3 + log(e^-3 + e^-1.5 + 1) */
    const float z[9] = {1, 2, 3, 0, 0, 0, -1, 0.5f, 2};
    const int32_t y[3] = {2, 1, 0};
    float dz[9];
    long long correct = 0;
    double loss = sn_loss(SN_LOSS_SPARSE_CCE, 0, z, y, NULL, 3, 3, 1.0f, dz, &correct);
    const double l0 = 0.40760596444438, l1 = log(3.0), l2 = 3 + log(exp(-3.0) + exp(-1.5) + 1);
    assert_true(near(loss, l0 + l1 + l2, 1e-12, 1e-9)); /* the sum, not the mean */
    double row0 = sn_loss(SN_LOSS_SPARSE_CCE, 0, z, y, NULL, 1, 3, 1.0f, NULL, &correct);
    assert_true(near(row0, l0, 0, 1e-9));
    /* softmax(1,2,3) = (0.0900305731703805, 0.244728471054798, 0.665240955774822) */
    const double want0[3] = {0.0900305731703805, 0.244728471054798, 0.665240955774822 - 1};
    for (int j = 0; j < 3; j++)
        assert_true(near(dz[j], want0[j], 1e-7, 1e-6));
    for (int j = 0; j < 3; j++) /* row 1: 1/3 each, minus 1 at the label */
        assert_true(near(dz[3 + j], 1.0 / 3 - (j == 1), 1e-7, 1e-6));
    double sum2 = 0;
    for (int j = 0; j < 3; j++) /* each row of softmax - one_hot sums to 0 */
        sum2 += dz[6 + j];
    assert_true(fabs(sum2) < 1e-6);
    assert_true(dz[6] < -0.9); /* the label's logit is the smallest: push it up hard */
}

static void test_cce_same_as_sparse(void **state)
{
    /* Keras: categorical_crossentropy(one_hot(y), z) == sparse_categorical_crossentropy(y, z) */
    float z[4 * 5];
    sn_test_fill(z, 20, -3, 3, 7);
    const int32_t y[4] = {0, 4, 2, 2};
    float da[20], db[20];
    long long ca = 0, cb = 0;
    double la = sn_loss(SN_LOSS_SPARSE_CCE, 0, z, y, NULL, 4, 5, 0.25f, da, &ca);
    double lb = sn_loss(SN_LOSS_CCE, 0, z, y, NULL, 4, 5, 0.25f, db, &cb);
    assert_true(la == lb);
    assert_memory_equal(da, db, sizeof da);
    assert_int_equal(ca, cb);
    double want = 0;
    for (int i = 0; i < 4; i++)
        want += ref_row(SN_LOSS_CCE, z + 5 * i, 5, y[i], NULL);
    assert_true(near(lb, want, 1e-9, 1e-7));
    /* the one-hot of 1 over (0, log 2): -log(2/3) */
    const float z2[2] = {0, (float)log(2.0)};
    const int32_t y2[1] = {1};
    assert_true(near(sn_loss(SN_LOSS_CCE, 0, z2, y2, NULL, 1, 2, 1, NULL, &ca), -log(2.0 / 3), 1e-7,
                     1e-6));
}

static void test_bce_known_values(void **state)
{
    const float z[6] = {0, 2, 2, -3, 0.5f, -0.5f};
    const int32_t y[6] = {1, 1, 0, 0, 1, 1};
    /* log 2; log(1+e^-2); 2 + log(1+e^-2); log(1+e^-3); log(1+e^-0.5); 0.5 + log(1+e^-0.5) */
    const double want[6] = {0.693147180559945, 0.126928011042973, 2.126928011042973,
                            0.048587351573742, 0.474076984180107, 0.974076984180107};
    /* sigmoid(z) - y: -0.5; 0.880797 - 1; 0.880797; 0.047426; 0.622459 - 1; 0.377541 - 1 */
    const double dwant[6] = {-0.5, 0.880797077977882 - 1, 0.880797077977882, 0.047425873177567,
                             0.622459331201855 - 1, 0.377540668798145 - 1};
    float dz[6];
    long long correct = 0;
    double total = 0;
    for (int i = 0; i < 6; i++) {
        double l = sn_loss(SN_LOSS_BCE, 0, z + i, y + i, NULL, 1, 1, 1.0f, dz + i, &correct);
        assert_true(near(l, want[i], 1e-7, 1e-6));
        assert_true(near(dz[i], dwant[i], 1e-7, 1e-6));
        total += want[i];
    }
    float dall[6];
    double all = sn_loss(SN_LOSS_BCE, 0, z, y, NULL, 6, 1, 1.0f, dall, &correct);
    assert_true(near(all, total, 1e-6, 1e-6));
    assert_memory_equal(dz, dall, sizeof dz);
}

/* Loss of the whole batch at logits z, for finite differences. */
static double batch_loss(enum sn_loss_kind kind, const float *z, const int32_t *y, int n, int k)
{
    long long c = 0;
    return sn_loss(kind, 0, z, y, NULL, n, k, 1.0f, NULL, &c);
}

/* Central differences of the summed loss against dlogits, for every logit. The step is the one
 * the floats really take, (float)(x+h) - (float)(x-h); with h = 1e-2 the truncation error is
 * h^2/6 |L'''| < 2e-5 and the loss's own float rounding (BCE sums in float) ~1e-7 / 2h = 5e-6.
 * @return the number of logits outside atol 1e-4 + rtol 1e-3 (printed). */
static int fd_check(enum sn_loss_kind kind, float lo, float hi, uint64_t seed)
{
    const int n = kind == SN_LOSS_BCE ? MAXN : 4, k = kind == SN_LOSS_BCE ? 1 : 5;
    float z[MAXN * MAXK], dz[MAXN * MAXK];
    int32_t y[MAXN];
    sn_test_fill(z, (size_t)n * k, lo, hi, seed);
    for (int i = 0; i < n; i++)
        y[i] = kind == SN_LOSS_BCE ? i % 2 : (i * 3 + 1) % k;
    long long c = 0;
    sn_loss(kind, 0, z, y, NULL, n, k, 1.0f, dz, &c);
    int bad = 0;
    const float h = 1e-2f;
    for (int i = 0; i < n * k; i++) {
        const float v = z[i];
        z[i] = v + h;
        const double lp = batch_loss(kind, z, y, n, k), xp = z[i];
        z[i] = v - h;
        const double lm = batch_loss(kind, z, y, n, k), xm = z[i];
        z[i] = v;
        const double num = (lp - lm) / (xp - xm);
        if (!near(dz[i], num, 1e-4, 1e-3) && bad++ < 5)
            fprintf(stderr, "  [%s] dlogits[%d] at %g: numeric %.7f, sn_loss %.7f\n",
                    kind_names[kind], i, v, num, dz[i]);
    }
    return bad;
}

static void test_finite_differences(void **state)
{
    for (int t = 0; t < 3; t++) {
        assert_int_equal(fd_check(kinds[t], -2, 2, 11 + t), 0);
        assert_int_equal(fd_check(kinds[t], -12, 12, 21 + t), 0); /* saturated rows */
    }
}

static void test_gradient_matches_closed_form(void **state)
{
    /* softmax(z) - one_hot(y) and sigmoid(z) - y, in double, for many random rows */
    for (int t = 0; t < 3; t++) {
        const int n = MAXN, k = kinds[t] == SN_LOSS_BCE ? 1 : MAXK;
        float z[MAXN * MAXK], dz[MAXN * MAXK];
        int32_t y[MAXN];
        sn_test_fill(z, (size_t)n * k, -6, 6, 31 + t);
        for (int i = 0; i < n; i++)
            y[i] = kinds[t] == SN_LOSS_BCE ? (i / 2) % 2 : (5 * i + 2) % k;
        long long c = 0;
        double loss = sn_loss(kinds[t], 0, z, y, NULL, n, k, 1.0f, dz, &c);
        double want = 0, d[MAXK];
        for (int i = 0; i < n; i++) {
            want += ref_row(kinds[t], z + i * k, k, y[i], d);
            for (int j = 0; j < k; j++)
                assert_true(near(dz[i * k + j], d[j], 1e-7, 1e-5));
        }
        assert_true(near(loss, want, 1e-6, 1e-6));
    }
}

static void test_large_logits_stable(void **state)
{
    /* a naive softmax or sigmoid overflows exp(1000); from logits it must not */
    const float z[5 * 3] = {1000, -1000, 0,     /* y=1: loss 2000, grad (1, -1, 0) */
                            1000, -1000, 0,     /* y=0: loss 0, grad 0 */
                            -1000, -1000, -1000, /* y=2: log 3 */
                            1e30f, -1e30f, 0,   /* y=0: loss 0 */
                            88.8f, 0, -88.8f};  /* y=2: 177.6 */
    const int32_t y[5] = {1, 0, 2, 0, 2};
    float dz[15];
    long long correct = 0;
    double rows[5];
    for (int i = 0; i < 5; i++) {
        rows[i] = sn_loss(SN_LOSS_SPARSE_CCE, 0, z + 3 * i, y + i, NULL, 1, 3, 1, dz + 3 * i,
                          &correct);
        assert_true(isfinite(rows[i]));
    }
    for (int j = 0; j < 15; j++)
        assert_true(isfinite(dz[j]) && dz[j] >= -1 && dz[j] <= 1);
    assert_true(near(rows[0], 2000, 0, 1e-6));
    assert_true(dz[0] == 1 && dz[1] == -1 && dz[2] == 0);
    assert_true(rows[1] == 0);
    assert_true(dz[3] == 0 && dz[4] == 0 && dz[5] == 0);
    assert_true(near(rows[2], log(3.0), 1e-6, 1e-6));
    assert_true(near(dz[8], 1.0 / 3 - 1, 1e-6, 1e-6));
    assert_true(rows[3] == 0);
    assert_true(near(rows[4], 2 * (double)88.8f, 1e-3, 1e-6));
    assert_int_equal(correct, 2); /* rows 1 and 3 */

    /* binary: sigmoid(+-1000) */
    const float zb[6] = {1000, -1000, 1000, -1000, 100, -100};
    const int32_t yb[6] = {0, 1, 1, 0, 0, 1};
    const double lb[6] = {1000, 1000, 0, 0, 100, 100}, gb[6] = {1, -1, 0, 0, 1, -1};
    float db[6];
    correct = 0;
    for (int i = 0; i < 6; i++) {
        double l = sn_loss(SN_LOSS_BCE, 0, zb + i, yb + i, NULL, 1, 1, 1, db + i, &correct);
        assert_true(isfinite(l) && isfinite(db[i]));
        assert_true(near(l, lb[i], 1e-6, 1e-6));
        assert_true(near(db[i], gb[i], 1e-6, 0));
    }
    assert_int_equal(correct, 2);
}

static void test_ok_rows_excluded(void **state)
{
    /* row 1 is a bad image: NaN logits and a label out of range that must never be read */
    for (int t = 0; t < 3; t++) {
        const int k = kinds[t] == SN_LOSS_BCE ? 1 : 4;
        float z[3 * 4], dz[3 * 4], d0[4], d2[4];
        sn_test_fill(z, (size_t)3 * k, -2, 2, 41 + t);
        for (int j = 0; j < k; j++)
            z[k + j] = NAN;
        const int32_t y[3] = {kinds[t] == SN_LOSS_BCE ? 1 : 3, 12345, 0};
        const uint8_t ok[3] = {1, 0, 1};
        for (int j = 0; j < 3 * k; j++)
            dz[j] = 7.0f; /* must be overwritten everywhere */
        long long correct = 5, c0 = 0, c2 = 0;
        double loss = sn_loss(kinds[t], 0, z, y, ok, 3, k, 0.5f, dz, &correct);
        double l0 = sn_loss(kinds[t], 0, z, y, NULL, 1, k, 0.5f, d0, &c0);
        double l2 = sn_loss(kinds[t], 0, z + 2 * k, y + 2, NULL, 1, k, 0.5f, d2, &c2);
        assert_true(isfinite(loss));
        assert_true(near(loss, l0 + l2, 1e-12, 1e-12));
        assert_true(l0 > 0 && l2 > 0);
        assert_int_equal(correct, 5 + c0 + c2);
        for (int j = 0; j < k; j++) {
            assert_true(dz[k + j] == 0.0f);
            assert_true(dz[j] == d0[j]);
            assert_true(dz[2 * k + j] == d2[j]);
        }
        /* all rows bad: nothing at all */
        const uint8_t none[3] = {0, 0, 0};
        correct = 0;
        assert_true(sn_loss(kinds[t], 0, z, y, none, 3, k, 1, dz, &correct) == 0.0);
        assert_int_equal(correct, 0);
        for (int j = 0; j < 3 * k; j++)
            assert_true(dz[j] == 0.0f);
    }
}

static void test_correct_counting(void **state)
{
    /* categorical: argmax == label, the first maximum on ties (tf.argmax) */
    const float z[5 * 3] = {0.1f, 2, -1, /* argmax 1 */
                            3, 3, 1,     /* tie: 0 */
                            3, 3, 1,     /* tie: 0, label 1 -> wrong */
                            -5, -4, -3,  /* argmax 2 */
                            0, 0, 0};    /* all tied: 0 */
    const int32_t y[5] = {1, 0, 1, 0, 0};
    for (int t = 0; t < 2; t++) {
        long long correct = 10; /* counts are added, not assigned */
        double with = sn_loss(kinds[t], 0, z, y, NULL, 5, 3, 1, NULL, &correct);
        assert_int_equal(correct, 13);
        float dz[15];
        long long c2 = 0;
        double with_grad = sn_loss(kinds[t], 0, z, y, NULL, 5, 3, 1, dz, &c2);
        assert_true(with == with_grad); /* dlogits may be NULL: same loss, same count */
        assert_int_equal(c2, 3);
    }
    /* binary: sigmoid(z) > 0.5, i.e. z > 0; z = 0 predicts class 0 */
    const float zb[6] = {0, 0, 0.1f, -0.1f, 5, -5};
    const int32_t yb[6] = {0, 1, 1, 0, 0, 0};
    long long correct = 0;
    sn_loss(SN_LOSS_BCE, 0, zb, yb, NULL, 6, 1, 1, NULL, &correct);
    assert_int_equal(correct, 4); /* rows 0, 2, 3, 5 */
}

static void test_grad_scale(void **state)
{
    /* grad_scale (1 / global batch) scales dlogits and nothing else */
    for (int t = 0; t < 3; t++) {
        const int n = 4, k = kinds[t] == SN_LOSS_BCE ? 1 : 5;
        float z[4 * 5], d1[4 * 5], d32[4 * 5], d3[4 * 5];
        sn_test_fill(z, (size_t)n * k, -3, 3, 51 + t);
        const int32_t y[4] = {0, 1, kinds[t] == SN_LOSS_BCE ? 1 : 4, 0};
        long long c1 = 0, c32 = 0, c3 = 0;
        double l1 = sn_loss(kinds[t], 0, z, y, NULL, n, k, 1.0f, d1, &c1);
        double l32 = sn_loss(kinds[t], 0, z, y, NULL, n, k, 1.0f / 32, d32, &c32);
        double l3 = sn_loss(kinds[t], 0, z, y, NULL, n, k, 1.0f / 3, d3, &c3);
        assert_true(l1 == l32 && l1 == l3); /* the loss is the unscaled sum */
        assert_int_equal(c1, c32);
        assert_int_equal(c1, c3);
        double nonzero = 0;
        for (int j = 0; j < n * k; j++) {
            assert_true(d32[j] == d1[j] / 32); /* a power of two scales exactly */
            assert_true(near(d3[j], d1[j] / 3.0, 1e-9, 1e-6));
            nonzero = fmax(nonzero, fabs(d1[j]));
        }
        assert_true(nonzero > 0.1);
    }
}

/* Keras's smoothed crossentropy of one row, written as Keras defines it (not through the
 * log-sum-exp that sn_loss uses): the targets t, then -sum t log p; *dz = p - t. */
static double smoothed_row(enum sn_loss_kind kind, double ls, const float *z, int k, int y,
                           double *dz)
{
    if (kind == SN_LOSS_BCE) {
        double t = y * (1 - ls) + 0.5 * ls, p = 1 / (1 + exp(-(double)z[0]));
        dz[0] = p - t;
        return -(t * log(p) + (1 - t) * log(1 - p));
    }
    double p[16], s = 0, loss = 0;
    for (int j = 0; j < k; j++)
        s += p[j] = exp((double)z[j]);
    for (int j = 0; j < k; j++) {
        double t = (j == y ? 1.0 : 0.0) * (1 - ls) + ls / k;
        p[j] /= s;
        loss -= t * log(p[j]);
        dz[j] = p[j] - t;
    }
    return loss;
}

/* Sum of sn_loss over the rows at label_smoothing ls, for central differences. */
static double batch_loss_ls(enum sn_loss_kind kind, float ls, const float *z, const int32_t *y,
                            int n, int k)
{
    long long c = 0;
    return sn_loss(kind, ls, z, y, NULL, n, k, 1.0f, NULL, &c);
}

static void test_label_smoothing(void **state)
{
    static const float smoothing[2] = {0.0f, 0.1f};
    static const int classes[2] = {2, 10};
    int tried = 0;
    for (int t = 0; t < 3; t++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                const float ls = smoothing[a];
                /* binary_crossentropy: 2 classes in one sigmoid unit, whatever K says */
                const int n = 6, k = kinds[t] == SN_LOSS_BCE ? 1 : classes[b];
                float z[6 * 10], dz[6 * 10];
                int32_t y[6];
                sn_test_fill(z, (size_t)n * k, -4, 4, 71 + 10 * t + 3 * a + b);
                for (int i = 0; i < n; i++)
                    y[i] = kinds[t] == SN_LOSS_BCE ? i % 2 : (7 * i + 3) % k;
                long long c = 0, c0 = 0;
                double loss = sn_loss(kinds[t], ls, z, y, NULL, n, k, 1.0f, dz, &c);
                sn_loss(kinds[t], 0, z, y, NULL, n, k, 1.0f, NULL, &c0);
                assert_int_equal(c, c0); /* accuracy does not see the smoothing */
                double want = 0, d[10];
                for (int i = 0; i < n; i++) {
                    want += smoothed_row(kinds[t], ls, z + i * k, k, y[i], d);
                    for (int j = 0; j < k; j++)
                        if (!near(dz[i * k + j], d[j], 1e-6, 1e-5))
                            fail_msg("[%s] ls %g K %d: dlogits[%d][%d] %.8f, closed form %.8f",
                                     kind_names[t], ls, k, i, j, dz[i * k + j], d[j]);
                }
                if (!near(loss, want, 1e-6, 1e-6))
                    fail_msg("[%s] ls %g K %d: loss %.9f, closed form %.9f", kind_names[t], ls, k,
                             loss, want);
                /* the gradient against central differences of the loss (fd_check's step) */
                const float h = 1e-2f;
                for (int i = 0; i < n * k; i++) {
                    const float v = z[i];
                    z[i] = v + h;
                    const double lp = batch_loss_ls(kinds[t], ls, z, y, n, k), xp = z[i];
                    z[i] = v - h;
                    const double lm = batch_loss_ls(kinds[t], ls, z, y, n, k), xm = z[i];
                    z[i] = v;
                    const double num = (lp - lm) / (xp - xm);
                    if (!near(dz[i], num, 1e-4, 1e-3))
                        fail_msg("[%s] ls %g K %d: dlogits[%d] %.7f, numeric %.7f", kind_names[t],
                                 ls, k, i, dz[i], num);
                }
                tried++;
            }
    assert_int_equal(tried, 12);
}

static void test_label_smoothing_by_hand(void **state)
{
    /* K = 2, ls = 0.2, label 1: targets 0.1 and 0.9 (Keras's docs: "label_smoothing=0.2 means
     * that we will use a value of 0.1 for label 0 and 0.9 for label 1"). At z = (0, 0) both
     * probabilities are 1/2: loss log 2 whatever the targets, gradient p - t = (0.4, -0.4). */
    const float z[2] = {0, 0};
    const int32_t y[1] = {1};
    float dz[2];
    long long c = 0;
    for (int t = 0; t < 2; t++) {
        double l = sn_loss(kinds[t], 0.2f, z, y, NULL, 1, 2, 1.0f, dz, &c);
        assert_true(near(l, log(2.0), 1e-7, 0));
        assert_true(near(dz[0], 0.4, 1e-7, 0) && near(dz[1], -0.4, 1e-7, 0));
    }
    /* binary, label 1, z = 0: target 0.9, gradient 0.5 - 0.9; label 0: target 0.1 */
    const int32_t y0[1] = {0};
    sn_loss(SN_LOSS_BCE, 0.2f, z, y, NULL, 1, 1, 1.0f, dz, &c);
    assert_true(near(dz[0], -0.4, 1e-7, 0));
    sn_loss(SN_LOSS_BCE, 0.2f, z, y0, NULL, 1, 1, 1.0f, dz, &c);
    assert_true(near(dz[0], 0.4, 1e-7, 0));
    /* ls = 1: every target is 1/K, the gradient is softmax - 1/K whatever the label; at a
     * confident logit the smoothed loss is large where the unsmoothed one is near 0 */
    const float zc[2] = {10, -10};
    const int32_t y_first[1] = {0};
    double plain = sn_loss(SN_LOSS_SPARSE_CCE, 0, zc, y_first, NULL, 1, 2, 1.0f, NULL, &c);
    double full = sn_loss(SN_LOSS_SPARSE_CCE, 1, zc, y_first, NULL, 1, 2, 1.0f, dz, &c);
    assert_true(plain < 1e-8);
    assert_true(near(full, 10.0, 1e-5, 0)); /* lse - (z0 + z1)/2 = 10 + tiny */
    assert_true(near(dz[0], 0.5, 1e-7, 0) && near(dz[1], -0.5, 1e-7, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_cce_known_values),
        cmocka_unit_test(test_cce_same_as_sparse),
        cmocka_unit_test(test_bce_known_values),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_gradient_matches_closed_form),
        cmocka_unit_test(test_large_logits_stable),
        cmocka_unit_test(test_ok_rows_excluded),
        cmocka_unit_test(test_correct_counting),
        cmocka_unit_test(test_grad_scale),
        cmocka_unit_test(test_label_smoothing),
        cmocka_unit_test(test_label_smoothing_by_hand),
    };
    return cmocka_run_group_tests_name("loss", tests, NULL, NULL);
}
