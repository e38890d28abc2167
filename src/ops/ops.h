/* ops.h — the arithmetic behind the layers: convolution, pooling, activation, GEMM.
 *
 * Layout is NHWC throughout (Keras's channels_last): a batch of images is (N,H,W,C) with C
 * fastest. Two reasons: a convolution's im2col rows are then (N*OH*OW, KH*KW*C), so the batch
 * folds into the GEMM's M dimension and its output (N*OH*OW, OC) *is* the NHWC output, with no
 * transpose; and Keras's Flatten order and kernel layout (KH,KW,C,OC) are ours, so weights
 * exported from Keras load as they are. (The one exception: between two layers that both run on
 * oneDNN, the model may keep a tensor in oneDNN's blocked layout — blk_in, blk_out below.)
 *
 * A backend is a table of functions (struct sn_ops). Layers call only through the table, so a
 * second backend takes over by providing another table. Every backend is listed once, in
 * sn_backends (registry.c), and says what it can do in its caps:
 *   sn_ops_blas   — im2col + OpenBLAS sgemm (ops_blas.c, the only caller of cblas);
 *   sn_ops_onednn — oneDNN's JIT convolutions and pooling, the rest as blas (ops_dnnl.c);
 *   sn_ops_winograd — sn_ops_onednn with Winograd's 3x3 convolutions where oneDNN has them;
 *   sn_ops_bf16   — sn_ops_onednn with convolutions on bf16 inputs, fp32 sums ([train]
 *                   precision = bf16, CPUs with AVX-512 BF16 or AMX);
 *   sn_ops_ref    — naive loops, the tests' oracle (ops_ref.c).
 *
 * Contracts common to all functions:
 *  - Forward functions overwrite their output.
 *  - Backward functions overwrite din (when din is not NULL; NULL means "not needed", as for the
 *    first layer) and ACCUMULATE into parameter gradients (dw += ..., db += ...), like llm.c.
 *  - `scratch` is working memory of at least the size the matching *_scratch() returns, owned by
 *    the caller and reused across calls: no function here allocates. */
#ifndef SN_OPS_H
#define SN_OPS_H

#include <stddef.h>
#include <stdint.h>

enum sn_act {
    SN_ACT_LINEAR = 0,
    SN_ACT_RELU,
    SN_ACT_SIGMOID,
    SN_ACT_TANH,
    SN_ACT_SOFTMAX, /* over the last (channel) dimension */
};

struct sn_conv_desc {
    int n, h, w, c;       /* input (N,H,W,C) */
    int oh, ow, oc;       /* output (N,OH,OW,OC) */
    int kh, kw;           /* kernel (KH,KW,C,OC) */
    int sh, sw;           /* strides */
    int pad_top, pad_left; /* zero padding before the first row/column ("same" padding) */
    int blk_in, blk_out;  /* 1: in (and its gradient), or out (and its gradient), is in oneDNN's
                             blocked layout nChw16c (C a multiple of 16), not NHWC: the model
                             keeps it so between two layers that both run on oneDNN (model.h,
                             sn_model_plan_layouts); only the oneDNN backends take it */
};

struct sn_pool_desc {
    int n, h, w, c;       /* input (N,H,W,C) */
    int oh, ow;           /* output (N,OH,OW,C) */
    int ph, pw;           /* pool window */
    int sh, sw;           /* strides */
    int pad_top, pad_left; /* "same" padding: padded cells never win the max */
    int blk_in, blk_out;  /* as in sn_conv_desc */
};

/* What a backend can do, beyond computing what its table promises (struct sn_ops caps). */
enum sn_ops_cap {
    SN_OPS_PRIMITIVES = 1 << 0, /* keeps what it makes per shape (oneDNN's primitives and their
                                   buffers): made before the first step by running each part
                                   once, released by sn_ops_onednn_free */
    SN_OPS_BLOCKED = 1 << 1,    /* takes tensors in oneDNN's blocked layout (blk_in, blk_out) */
    SN_OPS_REORDERS = 1 << 2,   /* its convolutions work on a reordered copy of NHWC data
                                   (Winograd's blocked tiles, bf16): a run of layers kept blocked
                                   saves those reorders (sn_model_plan_layouts) */
    SN_OPS_WINOGRAD = 1 << 3,   /* Winograd's convolutions where sn_ops_winograd_has says so;
                                   elsewhere it computes as sn_ops_onednn */
    SN_OPS_BF16 = 1 << 4,       /* convolutions on bf16 inputs: run only where [train]
                                   precision = bf16 allows it, never named as a backend */
    SN_OPS_ORACLE = 1 << 5,     /* naive loops: the tests' oracle, never timed by backend = auto */
};

struct sn_ops {
    const char *name;
    unsigned caps; /* enum sn_ops_cap flags */

    /* C (M,N) = alpha * op(A) op(B) + beta * C, row-major; op(A) is (M,K), op(B) is (K,N). */
    void (*gemm)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 const float *b, float beta, float *c);

    /* bytes of scratch conv2d_forward/backward need for this descriptor */
    size_t (*conv2d_scratch)(const struct sn_conv_desc *d);
    /* in (N,H,W,C), w (KH,KW,C,OC), b (OC) or NULL -> out (N,OH,OW,OC) = act(in * w + b);
     * a backend may fuse the activation into the convolution's output pass */
    void (*conv2d_forward)(const struct sn_conv_desc *d, const float *in, const float *w,
                           const float *b, enum sn_act act, float *out, void *scratch);
    /* dout (N,OH,OW,OC) -> din (N,H,W,C) = ... (if din), dw += ..., db += ... (if db) */
    void (*conv2d_backward)(const struct sn_conv_desc *d, const float *in, const float *w,
                            const float *dout, float *din, float *dw, float *db, void *scratch);

    /* in (N,H,W,C) -> out (N,OH,OW,C), argmax (N,OH,OW,C): index into in of each max */
    void (*maxpool_forward)(const struct sn_pool_desc *d, const float *in, float *out,
                            int32_t *argmax);
    /* dout (N,OH,OW,C) -> din (N,H,W,C) = scatter of dout through argmax */
    void (*maxpool_backward)(const struct sn_pool_desc *d, const float *dout,
                             const int32_t *argmax, float *din);

    /* out (rows, cols) += b (cols) on every row: a dense layer's bias */
    void (*bias_forward)(float *out, const float *b, size_t rows, size_t cols);
    /* db (cols) += the column sums of dout (rows, cols) */
    void (*bias_backward)(const float *dout, float *db, size_t rows, size_t cols);

    /* Global average pooling: in (N, HW, C) -> out (N, C), the mean over the HW pixels; and
     * backward, din (N, HW, C) = dout / HW at every pixel. */
    void (*avgpool_global_forward)(const float *in, float *out, int n, int hw, int c);
    void (*avgpool_global_backward)(const float *dout, float *din, int n, int hw, int c);

    /* Batch normalization of x (rows, c), per channel: y = (x - mean) / sqrt(var + eps) * gamma
     * + beta (gamma, beta NULL: 1, 0). With batch_stats (training) mean and var (c) are the
     * batch's, biased, and are written; else they are read (the moving statistics). scratch
     * holds at least 2c doubles and 4c floats. */
    void (*batchnorm_forward)(const float *x, float *y, size_t rows, int c, float eps,
                              int batch_stats, const float *gamma, const float *beta,
                              float *mean, float *var, void *scratch);
    /* dy -> dx (if dx), dgamma += and dbeta += (when not NULL), with the forward's mean and
     * var; with batch_stats the statistics' dependence on x is part of dx, else they are
     * constants. scratch holds at least 2c doubles and 4c floats. */
    void (*batchnorm_backward)(const float *x, const float *dy, float *dx, size_t rows, int c,
                               float eps, int batch_stats, const float *gamma, const float *mean,
                               const float *var, float *dgamma, float *dbeta, void *scratch);

    /* y (rows, cols) = act(x); x may equal y. Softmax works on each row of `cols`. */
    void (*act_forward)(enum sn_act act, const float *x, float *y, size_t rows, size_t cols);
    /* dx = dy * act'(.) computed from the activation's OUTPUT y; dx may equal dy. */
    void (*act_backward)(enum sn_act act, const float *y, const float *dy, float *dx, size_t rows,
                         size_t cols);
};

extern const struct sn_ops sn_ops_blas;
extern const struct sn_ops sn_ops_ref;
extern const struct sn_ops sn_ops_onednn;
extern const struct sn_ops sn_ops_winograd;
extern const struct sn_ops sn_ops_bf16;

/* Every backend, NULL-terminated, in the order `[model] backend = auto` times them. */
extern const struct sn_ops *const sn_backends[];

/* Looks a backend up by name ("blas", "onednn", "winograd", "bf16", "ref"); NULL if unknown. */
const struct sn_ops *sn_ops_by_name(const char *name);

/* Whether a config or the command line may name ops as the backend of every layer ([model]
 * backend, bench --backend): all but the bf16 table, which [train] precision chooses. */
int sn_ops_nameable(const struct sn_ops *ops);

/* oneDNN's version and the instruction set its kernels use: "oneDNN 2.6.3 avx512_core". */
void sn_ops_onednn_describe(char *buf, size_t n);
/* Releases oneDNN's primitives, their buffers, its engine and stream (ops_dnnl.c keeps them
 * for the process: one per shape met); the next call makes again what it needs. */
void sn_ops_onednn_free(void);
/* How many primitives oneDNN's backends have made (or found it has none for) since the last
 * sn_ops_onednn_free: bench checks that a step makes none. */
size_t sn_ops_onednn_primitives(void);
/* Sets the threads oneDNN's kernels use (OpenMP); called by sn_ops_set_threads. */
void sn_ops_onednn_set_threads(int n);

/* The largest conv2d_scratch() over all backends: what a layer reserves when it is configured,
 * before it knows which backend will run it. */
size_t sn_ops_conv2d_scratch_max(const struct sn_conv_desc *d);

/* Whether nChw16c, the layout blk_in and blk_out name, is the one oneDNN's kernels work in on
 * this CPU (AVX-512): where it is not, keeping it between layers would slow them. */
int sn_ops_onednn_blocked_native(void);

/* Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), which sn_ops_bf16 needs to be
 * fast: elsewhere oneDNN emulates it (AVX-512 without BF16), or has no bf16 convolution at all
 * (below AVX-512), where sn_ops_bf16 computes as sn_ops_onednn, in fp32. */
int sn_ops_bf16_native(void);

/* Whether sn_ops_winograd computes convolution d with Winograd's algorithm on this CPU; when
 * not, it computes it as sn_ops_onednn does. */
int sn_ops_winograd_has(const struct sn_conv_desc *d);

/* OpenBLAS's version and the core type whose kernels it loaded: "0.3.21", "SkylakeX". */
void sn_ops_blas_info(char *version, size_t vn, char *core, size_t cn);
/* Start-up check of the loaded GEMM kernels against a naive product on a few shapes (both
 * transposes, odd sizes, beta = 1, the shapes im2col makes): 0 when every element agrees to
 * 1e-4 relative to the sums of magnitudes, -1 otherwise. A few milliseconds. */
int sn_ops_blas_check(void);

/* sn_ops_blas's max pooling by its general loops, whatever the window: the oracle its fast path
 * for the common pool (2x2, strides 2, every window whole) is tested against, bit for bit,
 * argmax included. Contracts as maxpool_forward and maxpool_backward. */
void sn_ops_blas_maxpool_forward_general(const struct sn_pool_desc *d, const float *in,
                                         float *out, int32_t *argmax);
void sn_ops_blas_maxpool_backward_general(const struct sn_pool_desc *d, const float *dout,
                                          const int32_t *argmax, float *din);

/* Sets the number of threads every backend may use in this process: OpenBLAS's and oneDNN's. */
void sn_ops_set_threads(int n);
int  sn_ops_get_threads(void);
/* OpenBLAS's own thread count (ops_blas.c), which sn_ops_set_threads sets with oneDNN's. */
void sn_ops_blas_set_threads(int n);
int  sn_ops_blas_get_threads(void);

/* Output size of a convolution/pool window along one axis, Keras's rules:
 * valid: floor((in - k) / s) + 1;  same: ceil(in / s), with pad_before = max(0, total_pad) / 2. */
int sn_out_size(int in, int k, int s, int same, int *pad_before);

#endif
