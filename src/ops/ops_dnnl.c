/* ops_dnnl.c — sn_ops_onednn: convolution, max and global average pooling on oneDNN's
 * primitives and dense layers on its sgemm (Debian's libdnnl, the kernels PyTorch calls on x86);
 * bias, batch normalization and activations as in sn_ops_blas.
 *
 * oneDNN JIT-compiles a convolution for the instruction set at hand (AVX2, AVX-512, AVX-512
 * BF16, AMX). Activations are NHWC between layers, a layout its direct JIT convolutions take
 * natively, except inside a run of oneDNN layers holding a Winograd convolution: Winograd works
 * on the blocked layout nChw16c only, so there the model keeps activations and their gradients
 * blocked (the descriptors' blk_in, blk_out; model.h) and only the run's first and last
 * convolutions reorder, from and to NHWC. Weights are the layers' Keras layout (KH,KW,C,OC),
 * reordered into the blocked layout a primitive asks for on each call (weights change every
 * step; the reorder is a copy of the weights, small next to the convolution).
 *
 * The backend's context — engine, stream and the table of primitives — is process-wide, made
 * on first use and released by sn_ops_onednn_free: one engine and one stream per process, as
 * oneDNN recommends, shared by every model the process builds.
 *
 * A primitive is made once per shape: the first call with a descriptor creates it, with the
 * reorders it needs and every buffer (blocked weights, their gradient, oneDNN's scratchpad, in
 * "user" mode so oneDNN allocates nothing while it runs) and keeps it in a table searched by
 * descriptor. A training run meets each shape on its first step (and the short last batch once
 * per epoch), so no step after the first allocates.
 *
 * NaN: oneDNN's ReLU post-op and max-pooling primitive return 0, or a window's other values,
 * where a NaN is (a vector max whose other operand wins over NaN); ours keep NaN, as Keras's
 * ReLU does. So max pooling is sn_ops_blas's loop (onednn_maxpool_forward), and a ReLU is fused
 * into a convolution only where no NaN can arise, else sn_ops_blas's runs after it
 * (relu_fusable).
 *
 * Contracts are those of ops.h: backward overwrites din and accumulates dw, db (the gradient of
 * the weights comes out blocked and is reordered into dw with a "sum" post-op, so += costs no
 * extra pass). A shape oneDNN refuses, or computes wrong (conv_bwd_weights_overruns), is
 * computed by sn_ops_blas, which the layers' scratch is sized for (on NHWC copies when its
 * tensors are blocked). This file is the only one that includes <dnnl.h>. */
#include "ops.h"

#include "hooks.h" // defines: sn_test_hook

#include <dnnl.h>   // defines: dnnl_engine_create, dnnl_convolution_forward_desc_init, ...
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: posix_memalign, free, realloc, getenv
#include <string.h> // defines: memcmp, memset, strstr

/* Debian's oneDNN threads with GNU OpenMP (libgomp, linked by CMakeLists.txt): its thread count
 * is libgomp's. Declared here rather than through <omp.h>, which would tie the build to one
 * compiler's OpenMP support (clang's would bring a second runtime into the process). */
void omp_set_num_threads(int n);

enum prim_kind { CONV_FWD = 1, CONV_BWD_DATA, CONV_BWD_WEIGHTS, POOL_FWD, POOL_BWD };

/* How a convolution computes: oneDNN's direct algorithm in fp32, Winograd's F(4x4,3x3) in fp32,
 * or direct with bf16 inputs (activations, weights, gradients rounded to bfloat16; products
 * summed and results written in fp32: [train] precision = bf16) */
enum conv_alg { ALG_DIRECT = 0, ALG_WINOGRAD, ALG_BF16 };

/* dn.pool's slots: [0] and [1] a primitive's reordered activations, [2] the scratchpad, [3..5]
 * NHWC copies of blocked tensors for sn_ops_blas when oneDNN refuses a shape (see fallback) */
enum { POOL_SCRATCH = 2, POOL_NHWC = 3, POOL_SLOTS = 6 };

/* What a primitive is made for: its kind and every number of its descriptor. */
struct prim_key {
    int kind;
    int v[20];
};

/* An activation the primitive takes in a layout of its own (Winograd's nChw16c): `blk` is that
 * copy, in the shared buffer dn.pool[slot], and `re` the reorder between it and ours (NHWC): ours
 * -> blk for an input, blk -> ours for an output. Both NULL when the primitive takes NHWC. */
struct act_io {
    dnnl_memory_t blk;
    dnnl_primitive_t re;
    int slot, output;
};

struct prim {
    struct prim_key key;
    int ok;                   /* 0: oneDNN refused this shape; sn_ops_blas computes it */
    dnnl_primitive_t p;
    dnnl_primitive_t reorder; /* user weights -> primitive's, or primitive's dW -> dw (+=) */
    dnnl_memory_t src, wuser, wprim, bias, dst, ws, scratch, dbias;
    struct act_io io_src, io_dst;   /* src (or diff_src), dst (or diff_dst) */
    void *wbuf, *dbbuf;       /* owned: blocked weights (or dW), db */
    char impl[64];            /* oneDNN's implementation, "jit:avx512_core" */
};

static struct {
    int ready;                /* 1 engine and stream made, -1 they failed */
    int refuse;               /* tests: test hook ONEDNN_REFUSE set at dn_init, no primitive is
                                 made, so every operation takes the sn_ops_blas path */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    struct prim *prims;       /* owned, n of cap: pointers into it stay valid until free */
    size_t n, cap;
    /* Shared by every primitive, since they run one at a time on one stream: [0] and [1] hold
     * the blocked activations of Winograd primitives (at most two per primitive), [2] is the
     * scratchpad (Winograd's transformed tiles reach hundreds of MB on VGG16's first layers: one
     * per primitive would take gigabytes). Grown when a primitive is made (the first step or the
     * backend timing), never per step. */
    void *pool[POOL_SLOTS];
    size_t pool_size[POOL_SLOTS];
} dn;

static int dn_init(void)
{
    if (dn.ready)
        return dn.ready > 0;
    dn.ready = -1;
    dn.refuse = sn_test_hook("ONEDNN_REFUSE") != NULL;
    if (dnnl_engine_create(&dn.engine, dnnl_cpu, 0) != dnnl_success)
        return 0;
    if (dnnl_stream_create(&dn.stream, dn.engine, dnnl_stream_default_flags) != dnnl_success)
        return 0;
    dn.ready = 1;
    return 1;
}

/* An aligned, zeroed (so: already faulted in) buffer of n bytes, or NULL. */
static void *dn_alloc(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 64;
    if (posix_memalign(&p, 64, n) != 0)
        return NULL;
    memset(p, 0, n);
    return p;
}

/* Grows dn.pool[slot] to hold bytes; 0 when out of memory. */
static int pool_reserve(int slot, size_t bytes)
{
    if (bytes <= dn.pool_size[slot])
        return 1;
    free(dn.pool[slot]);
    dn.pool_size[slot] = 0;
    if (!(dn.pool[slot] = dn_alloc(bytes)))
        return 0;
    dn.pool_size[slot] = bytes;
    return 1;
}

/* The table entry for key: found, or appended with ok = 0 for the caller to build. NULL when
 * the table cannot grow (the caller then uses sn_ops_blas). */
static struct prim *prim_slot(const struct prim_key *key, int *fresh)
{
    *fresh = 0;
    for (size_t i = 0; i < dn.n; i++)
        if (memcmp(&dn.prims[i].key, key, sizeof *key) == 0)
            return &dn.prims[i];
    if (dn.n == dn.cap) {
        /* entries are handed out as pointers for one call only, so moving them is safe */
        size_t cap = dn.cap ? 2 * dn.cap : 64;
        struct prim *p = realloc(dn.prims, cap * sizeof *p);
        if (!p)
            return NULL;
        dn.prims = p;
        dn.cap = cap;
    }
    struct prim *e = &dn.prims[dn.n++];
    memset(e, 0, sizeof *e);
    e->key = *key;
    *fresh = 1;
    return e;
}

static void set(dnnl_memory_t m, const void *p)
{
    if (m)
        dnnl_memory_set_data_handle(m, (void *)p);
}

/* An activation (N,C,H,W logically) as the layers hold it: NHWC, or nChw16c when blk */
static void md_act(dnnl_memory_desc_t *md, int n, int c, int h, int w, int blk)
{
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, blk ? dnnl_nChw16c : dnnl_nhwc);
}

static void md_any(dnnl_memory_desc_t *md, int o, int i, int kh, int kw)
{
    dnnl_dims_t dims = {o, i, kh, kw};
    dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_format_tag_any);
}

/* Keras's kernel (KH,KW,C,OC) as oneDNN's logical (OC,C,KH,KW): tag hwio */
static void md_keras_kernel(dnnl_memory_desc_t *md, int o, int i, int kh, int kw)
{
    dnnl_dims_t dims = {o, i, kh, kw};
    dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_hwio);
}

static void md_vec(dnnl_memory_desc_t *md, int n)
{
    dnnl_dims_t dims = {n};
    dnnl_memory_desc_init_by_tag(md, 1, dims, dnnl_f32, dnnl_a);
}

static int mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md)
{
    return dnnl_memory_create(m, md, dn.engine, DNNL_MEMORY_NONE) == dnnl_success;
}

/* Right padding that makes oneDNN's output size ours: (out-1)*s + k - in - left, at least 0
 * (a "valid" window that leaves input rows unread needs none). */
static int pad_right(int in, int out, int k, int s, int left)
{
    int r = (out - 1) * s + k - in - left;
    return r > 0 ? r : 0;
}

/* relu: oneDNN's ReLU as a post-op. It is a vector max with 0 as the operand that wins over NaN
 * (vmaxps), so it turns a NaN into 0: conv_forward fuses it only where no NaN can arise
 * (relu_fusable). */
static dnnl_primitive_attr_t user_scratchpad_attr(int relu)
{
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (relu) {
        dnnl_post_ops_t po = NULL;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    return attr;
}

/* The primitive of pd, its scratchpad (buffer and memory) and its implementation name. */
static int finish_prim(struct prim *e, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (bytes > 0) {
        if (!pool_reserve(POOL_SCRATCH, bytes) || !mem(&e->scratch, smd))
            return 0;
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(e->impl, sizeof e->impl, "%s", impl ? impl : "?");
    return dnnl_primitive_create(&e->p, pd) == dnnl_success;
}

/* The convolution's geometry for oneDNN: our activations (src, dst: NHWC or blocked) and what the
 * primitive of `kind` is asked to take (asrc, adst, wany: the same, or "any" layout where it
 * may choose; bf16 for its inputs with ALG_BF16, fp32 for what it writes). */
struct conv_geo {
    dnnl_memory_desc_t src, dst, asrc, adst, wuser, wany, bias;
    dnnl_dims_t strides, pl, pr;
    dnnl_alg_kind_t alg;
};

static void conv_geo(const struct sn_conv_desc *d, int alg, int kind, struct conv_geo *g)
{
    md_act(&g->src, d->n, d->c, d->h, d->w, d->blk_in);
    md_act(&g->dst, d->n, d->oc, d->oh, d->ow, d->blk_out);
    g->asrc = g->src;
    g->adst = g->dst;
    g->alg = alg == ALG_WINOGRAD ? dnnl_convolution_winograd : dnnl_convolution_direct;
    /* Winograd works on blocked data only; bf16 needs a converted copy anyway; a direct
       convolution next to a blocked tensor is let choose both layouts, since its fast kernels
       want src and dst alike */
    if (alg != ALG_DIRECT || d->blk_in || d->blk_out) {
        dnnl_dims_t sd = {d->n, d->c, d->h, d->w}, dd = {d->n, d->oc, d->oh, d->ow};
        int bf = alg == ALG_BF16;
        dnnl_memory_desc_init_by_tag(&g->asrc, 4, sd, bf && kind != CONV_BWD_DATA ? dnnl_bf16
                                                                                  : dnnl_f32,
                                     dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&g->adst, 4, dd, bf && kind != CONV_FWD ? dnnl_bf16
                                                                             : dnnl_f32,
                                     dnnl_format_tag_any);
    }
    md_keras_kernel(&g->wuser, d->oc, d->c, d->kh, d->kw);
    md_any(&g->wany, d->oc, d->c, d->kh, d->kw);
    if (alg == ALG_BF16 && kind != CONV_BWD_WEIGHTS) {
        dnnl_dims_t wd = {d->oc, d->c, d->kh, d->kw};
        dnnl_memory_desc_init_by_tag(&g->wany, 4, wd, dnnl_bf16, dnnl_format_tag_any);
    }
    md_vec(&g->bias, d->oc);
    g->strides[0] = d->sh;
    g->strides[1] = d->sw;
    g->pl[0] = d->pad_top;
    g->pl[1] = d->pad_left;
    g->pr[0] = pad_right(d->h, d->oh, d->kh, d->sh, d->pad_top);
    g->pr[1] = pad_right(d->w, d->ow, d->kw, d->sw, d->pad_left);
}

static void conv_key(struct prim_key *k, int kind, const struct sn_conv_desc *d, int a, int b,
                     int c)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    int v[] = {d->n,  d->h,  d->w,       d->c,        d->oh, d->ow, d->oc, d->kh,     d->kw,
               d->sh, d->sw, d->pad_top, d->pad_left, a,     b,     c,     d->blk_in, d->blk_out};
    memcpy(k->v, v, sizeof v);
}

/* A forward descriptor, for the primitive itself and as the hint backward primitives need. */
static dnnl_primitive_desc_t conv_fwd_pd(const struct conv_geo *g, int bias,
                                         const_dnnl_primitive_attr_t attr)
{
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, g->alg, &g->asrc,
                                           &g->wany, bias ? &g->bias : NULL, &g->adst,
                                           g->strides, g->pl, g->pr) != dnnl_success)
        return NULL;
    if (dnnl_primitive_desc_create(&pd, &cd, attr, dn.engine, NULL) != dnnl_success)
        return NULL;
    return pd;
}

/* A reorder from md `from` to md `to`, accumulating (dst += src) when sum. */
static int make_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to, int sum)
{
    dnnl_primitive_attr_t attr = NULL;
    if (sum) {
        dnnl_post_ops_t po = NULL;
        dnnl_primitive_attr_create(&attr);
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&pd, from, dn.engine, to, dn.engine, attr) ==
                 dnnl_success &&
             dnnl_primitive_create(r, pd) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return ok;
}

/* Weights in the layout pd asks for (md `which` of pd): a buffer, its memory, and the reorder
 * from the user's Keras layout when it differs. */
static int prim_weights(struct prim *e, const_dnnl_primitive_desc_t pd, dnnl_query_t which,
                        const struct conv_geo *g, int to_user)
{
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, which, 0);
    if (!wmd || !mem(&e->wuser, &g->wuser))
        return 0;
    if (dnnl_memory_desc_equal(wmd, &g->wuser) && !to_user)
        return 1; /* the primitive reads the user's weights as they are */
    if (!(e->wbuf = dn_alloc(dnnl_memory_desc_get_size(wmd))) || !mem(&e->wprim, wmd))
        return 0;
    set(e->wprim, e->wbuf);
    return to_user ? make_reorder(&e->reorder, wmd, &g->wuser, 1)
                   : make_reorder(&e->reorder, &g->wuser, wmd, 0);
}

/* The activation md `which` of pd against ours (`user`): when they differ, a blocked copy in
 * dn.pool[slot] (grown to fit) and the reorder to or from it. */
static int act_io(struct act_io *io, const_dnnl_primitive_desc_t pd, dnnl_query_t which,
                  const dnnl_memory_desc_t *user, int slot, int output)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, which, 0);
    if (!md)
        return 0;
    if (dnnl_memory_desc_equal(md, user))
        return 1;
    if (!pool_reserve(slot, dnnl_memory_desc_get_size(md)))
        return 0;
    io->slot = slot;
    io->output = output;
    return mem(&io->blk, md) &&
           (output ? make_reorder(&io->re, md, user, 0) : make_reorder(&io->re, user, md, 0));
}

/* Whether pd, a weight gradient oneDNN chose for d, is one its 1x1 kernels compute wrong.
 *
 * oneDNN 2.6.3's 1x1 weight-gradient kernels (jit_1x1:avx2, jit_1x1:avx512_core: files
 * jit_avx2_1x1_convolution.cpp and jit_avx512_common_1x1_convolution.cpp, function
 * execute_backward_weights) first copy the strided input into a dense per-thread workspace
 * ("reduce to unit stride", taken for every stride above 1). For a plain (NHWC) input,
 * rtus_prepare_space_info books that workspace as (output pixels) x C floats, but the copy is
 * addressed at pixel * ic_block, the kernel's channel block (8 on AVX2, 16 on AVX-512): with
 * C < ic_block the later pixels land in the next thread's workspace, then past the scratchpad.
 * The result is a wrong dW with 2 threads or more (1.4 relative on 4 channels, 8x8, stride 2,
 * AVX2), and heap corruption with 1. Forward and data gradient of the same shapes are right
 * (on AVX2, valgrind clean); a blocked input, stride 1 or C >= ic_block are not affected.
 * Reported upstream as oneDNN issue 6035 (open), with the same statements in oneDNN 3.x.
 *
 * So such a weight gradient is refused and sn_ops_blas computes it: it is the small case (fewer
 * than 16 input channels, a 1x1 kernel), cheap either way. 16 is the largest channel block of
 * those kernels; C in 8..15 on AVX2 is refused without need, which costs nothing worth a rule
 * per instruction set. Matched on the implementation's name so that any 1x1 kernel of oneDNN
 * (bf16's too) is covered. */
static int conv_bwd_weights_overruns(const_dnnl_primitive_desc_t pd, const struct sn_conv_desc *d)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    int plain = src && src->format_kind == dnnl_blocked &&
                src->format_desc.blocking.inner_nblks == 0;
    return impl && strstr(impl, "1x1") && (d->sh > 1 || d->sw > 1) && d->c < 16 && plain;
}

static struct prim *conv_prim(int kind, const struct sn_conv_desc *d, int bias, int relu, int alg)
{
    if (!dn_init() || dn.refuse)
        return NULL;
    struct prim_key key;
    conv_key(&key, kind, d, bias, relu, alg);
    int fresh;
    struct prim *e = prim_slot(&key, &fresh);
    if (!e || !fresh)
        return e && e->ok ? e : NULL;
    struct conv_geo g, gf; /* gf: the forward's, which backward primitives take as a hint */
    conv_geo(d, alg, kind, &g);
    conv_geo(d, alg, CONV_FWD, &gf);
    dnnl_primitive_attr_t attr = user_scratchpad_attr(relu);
    dnnl_primitive_desc_t fwd = conv_fwd_pd(&gf, bias, kind == CONV_FWD ? attr : NULL);
    dnnl_primitive_desc_t pd = NULL;
    int ok = fwd != NULL;
    if (ok && kind == CONV_FWD) {
        pd = fwd, fwd = NULL;
        ok = prim_weights(e, pd, dnnl_query_weights_md, &g, 0) && mem(&e->src, &g.src) &&
             mem(&e->dst, &g.dst) && (!bias || mem(&e->bias, &g.bias)) &&
             act_io(&e->io_src, pd, dnnl_query_src_md, &g.src, 0, 0) &&
             act_io(&e->io_dst, pd, dnnl_query_dst_md, &g.dst, 1, 1);
    } else if (ok && kind == CONV_BWD_DATA) {
        dnnl_convolution_desc_t cd;
        ok = dnnl_convolution_backward_data_desc_init(&cd, g.alg, &g.asrc, &g.wany, &g.adst,
                                                      g.strides, g.pl, g.pr) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &cd, attr, dn.engine, fwd) == dnnl_success &&
             prim_weights(e, pd, dnnl_query_weights_md, &g, 0) && mem(&e->src, &g.src) &&
             mem(&e->dst, &g.dst) &&
             act_io(&e->io_src, pd, dnnl_query_diff_src_md, &g.src, 0, 1) &&
             act_io(&e->io_dst, pd, dnnl_query_diff_dst_md, &g.dst, 1, 0);
    } else if (ok && kind == CONV_BWD_WEIGHTS) {
        dnnl_convolution_desc_t cd;
        ok = dnnl_convolution_backward_weights_desc_init(&cd, g.alg, &g.asrc, &g.wany,
                                                         bias ? &g.bias : NULL, &g.adst,
                                                         g.strides, g.pl, g.pr) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &cd, attr, dn.engine, fwd) == dnnl_success &&
             !conv_bwd_weights_overruns(pd, d) &&
             prim_weights(e, pd, dnnl_query_diff_weights_md, &g, 1) && mem(&e->src, &g.src) &&
             mem(&e->dst, &g.dst) && act_io(&e->io_src, pd, dnnl_query_src_md, &g.src, 0, 0) &&
             act_io(&e->io_dst, pd, dnnl_query_diff_dst_md, &g.dst, 1, 0);
        if (ok && bias)
            ok = (e->dbbuf = dn_alloc((size_t)d->oc * sizeof(float))) && mem(&e->dbias, &g.bias);
    }
    ok = ok && finish_prim(e, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(fwd);
    dnnl_primitive_attr_destroy(attr);
    e->ok = ok;
    return ok ? e : NULL;
}

static void run(struct prim *e, int n, const dnnl_exec_arg_t *args)
{
    dnnl_exec_arg_t all[10];
    memcpy(all, args, (size_t)n * sizeof *args);
    if (e->scratch) {
        set(e->scratch, dn.pool[POOL_SCRATCH]);
        all[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    dnnl_primitive_execute(e->p, dn.stream, n, all);
    dnnl_stream_wait(dn.stream);
}

/* the weights as the primitive reads them: reordered into its buffer, or the user's */
static dnnl_memory_t weights_in(struct prim *e, const float *w)
{
    set(e->wuser, w);
    if (!e->reorder)
        return e->wuser;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, e->wuser}, {DNNL_ARG_TO, e->wprim}};
    dnnl_primitive_execute(e->reorder, dn.stream, 2, a);
    return e->wprim;
}

static size_t onednn_conv2d_scratch(const struct sn_conv_desc *d)
{
    return sn_ops_blas.conv2d_scratch(d); /* for the shapes oneDNN refuses */
}

/* The memory the primitive takes for an activation whose NHWC memory is `user`: the user's, or
 * the blocked copy, filled from it first when it is an input. */
static dnnl_memory_t io_in(struct act_io *io, dnnl_memory_t user)
{
    if (!io->blk)
        return user;
    set(io->blk, dn.pool[io->slot]);
    if (!io->output) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, io->blk}};
        dnnl_primitive_execute(io->re, dn.stream, 2, a);
    }
    return io->blk;
}

/* after the primitive ran: an output's blocked copy back to NHWC */
static void io_out(struct act_io *io, dnnl_memory_t user)
{
    if (!io->blk || !io->output)
        return;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, io->blk}, {DNNL_ARG_TO, user}};
    dnnl_primitive_execute(io->re, dn.stream, 2, a);
    dnnl_stream_wait(dn.stream);
}

/* The largest |x[i]|, NaN if any is NaN. Eight lanes apart, so that the loop vectorizes
 * without reassociating anything. */
static float max_abs(const float *x, size_t n)
{
    float m[8] = {0};
    int nan[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float a = x[i + k] < 0 ? -x[i + k] : x[i + k];
            nan[k] |= a != a;
            m[k] = a > m[k] ? a : m[k];
        }
    for (; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        nan[0] |= a != a;
        m[0] = a > m[0] ? a : m[0];
    }
    float r = 0;
    for (int k = 0; k < 8; k++) {
        if (nan[k])
            return 0.0f / 0.0f;
        r = m[k] > r ? m[k] : r;
    }
    return r;
}

/* Whether oneDNN's fused ReLU computes ours (NaN kept) for this call. They differ only where the
 * sum before the activation is NaN, which needs a NaN or an infinity among the input, weights
 * and bias, or a sum that overflows: ruled out when all are finite and max|x| * KH*KW*C *
 * max|w| + max|b| stays below FLT_MAX / 2 (rounding cannot double a bound so far from the
 * largest float). Checked with one read of the input and the weights, which costs less than
 * the separate ReLU pass it saves (a read and a write of the output) while the input is at
 * most twice the output: every layer of the book's networks but a strided one on many channels. */
static int relu_fusable(const struct sn_conv_desc *d, const float *in, const float *w,
                        const float *b)
{
    size_t n_in = (size_t)d->n * d->h * d->w * d->c, n_out = (size_t)d->n * d->oh * d->ow * d->oc;
    size_t taps = (size_t)d->kh * d->kw * d->c;
    if (n_in > 2 * n_out)
        return 0;
    double mx = max_abs(in, n_in), mw = max_abs(w, taps * d->oc), mb = b ? max_abs(b, d->oc) : 0;
    double bound = mx * mw * (double)taps + mb; /* NaN if any is NaN, inf if any is */
    return bound < 1.7e38;                      /* FLT_MAX / 2 */
}

/* 0 when oneDNN has no primitive of algorithm `alg` for this shape */
static int conv_forward(const struct sn_conv_desc *d, int alg, const float *in, const float *w,
                        const float *b, enum sn_act act, float *out)
{
    int fuse = act == SN_ACT_RELU && relu_fusable(d, in, w, b);
    struct prim *e = conv_prim(CONV_FWD, d, b != NULL, fuse, alg);
    if (!e)
        return 0;
    set(e->src, in);
    set(e->dst, out);
    set(e->bias, b);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, io_in(&e->io_src, e->src)},
                            {DNNL_ARG_WEIGHTS, weights_in(e, w)},
                            {DNNL_ARG_DST, io_in(&e->io_dst, e->dst)},
                            {DNNL_ARG_BIAS, e->bias}};
    run(e, b ? 4 : 3, a);
    io_out(&e->io_dst, e->dst);
    if (act != SN_ACT_LINEAR && !fuse) /* elementwise: the same on a blocked output */
        sn_ops_blas.act_forward(act, out, out, (size_t)d->n * d->oh * d->ow, (size_t)d->oc);
    return 1;
}

/* dw += dW, db += dB; 0 when oneDNN has no such primitive */
static int conv_bwd_weights(const struct sn_conv_desc *d, int alg, const float *in,
                            const float *dout, float *dw, float *db)
{
    struct prim *bw = conv_prim(CONV_BWD_WEIGHTS, d, db != NULL, 0, alg);
    if (!bw)
        return 0;
    set(bw->src, in);
    set(bw->dst, dout);
    set(bw->dbias, bw->dbbuf);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, io_in(&bw->io_src, bw->src)},
                            {DNNL_ARG_DIFF_DST, io_in(&bw->io_dst, bw->dst)},
                            {DNNL_ARG_DIFF_WEIGHTS, bw->wprim},
                            {DNNL_ARG_DIFF_BIAS, bw->dbias}};
    run(bw, db ? 4 : 3, a);
    set(bw->wuser, dw); /* dw += dW, through the reorder's sum post-op */
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, bw->wprim}, {DNNL_ARG_TO, bw->wuser}};
    dnnl_primitive_execute(bw->reorder, dn.stream, 2, r);
    dnnl_stream_wait(dn.stream);
    const float *g = bw->dbbuf;
    for (int j = 0; db && j < d->oc; j++)
        db[j] += g[j];
    return 1;
}

/* din = dL/dinput; 0 when oneDNN has no such primitive */
static int conv_bwd_data(const struct sn_conv_desc *d, int alg, const float *w,
                         const float *dout, float *din)
{
    struct prim *bd = conv_prim(CONV_BWD_DATA, d, 0, 0, alg);
    if (!bd)
        return 0;
    set(bd->src, din);
    set(bd->dst, dout);
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, io_in(&bd->io_dst, bd->dst)},
                            {DNNL_ARG_WEIGHTS, weights_in(bd, w)},
                            {DNNL_ARG_DIFF_SRC, io_in(&bd->io_src, bd->src)}};
    run(bd, 3, a);
    io_out(&bd->io_src, bd->src);
    return 1;
}

/* ---- shapes oneDNN refuses: sn_ops_blas, on NHWC copies of blocked tensors ------------------
 * The model keeps a tensor blocked only between layers whose primitives oneDNN made at the
 * training batch, so this path is for the unexpected: a batch of another size refused, or
 * memory refused while making its primitive. Correct before fast: one-off reorders (made and
 * released at each call) into dn.pool[POOL_NHWC...]. */

/* Copies tensor (N,C,H,W) x, in layout blk_from, to y in layout blk_to; 0 when oneDNN cannot. */
static int relayout(const float *x, int blk_from, float *y, int blk_to, int n, int c, int h, int w)
{
    if (!dn_init())
        return 0;
    dnnl_memory_desc_t a, b;
    md_act(&a, n, c, h, w, blk_from);
    md_act(&b, n, c, h, w, blk_to);
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ma = NULL, mb = NULL;
    int ok = make_reorder(&r, &a, &b, 0) && mem(&ma, &a) && mem(&mb, &b);
    if (ok) {
        set(ma, x);
        set(mb, y);
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ma}, {DNNL_ARG_TO, mb}};
        ok = dnnl_primitive_execute(r, dn.stream, 2, args) == dnnl_success &&
             dnnl_stream_wait(dn.stream) == dnnl_success;
    }
    dnnl_primitive_destroy(r);
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    return ok;
}

/* Tensor x (N,C,H,W) as NHWC: x itself when not blocked, else a copy in dn.pool[slot] (filled
 * when `fill`, for an input); NULL when neither memory nor oneDNN allows it. */
static float *nhwc_of(const float *x, int blk, int n, int c, int h, int w, int slot, int fill)
{
    if (!x || !blk)
        return (float *)x;
    size_t bytes = (size_t)n * c * h * w * sizeof(float);
    if (!pool_reserve(slot, bytes))
        return NULL;
    if (fill && !relayout(x, 1, dn.pool[slot], 0, n, c, h, w))
        return NULL;
    return dn.pool[slot];
}

/* Where even that fails, the output is NaN: the step's loss check stops the run, naming the
 * step, rather than training on a tensor of the wrong layout. */
static void poison(float *x, size_t count)
{
    for (size_t i = 0; x && i < count; i++)
        x[i] = __builtin_nanf("");
}

/* An NHWC result t back into y in layout blk (nothing to do when t is y) */
static void result_to(const float *t, float *y, int blk, int n, int c, int h, int w)
{
    if (t != y && !relayout(t, 0, y, blk, n, c, h, w))
        poison(y, (size_t)n * c * h * w);
}

static void blas_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                                const float *b, enum sn_act act, float *out, void *scratch)
{
    struct sn_conv_desc p = *d;
    p.blk_in = p.blk_out = 0;
    const float *x = nhwc_of(in, d->blk_in, d->n, d->c, d->h, d->w, POOL_NHWC, 1);
    float *y = nhwc_of(out, d->blk_out, d->n, d->oc, d->oh, d->ow, POOL_NHWC + 1, 0);
    if (!x || !y) {
        poison(out, (size_t)d->n * d->oc * d->oh * d->ow);
        return;
    }
    sn_ops_blas.conv2d_forward(&p, x, w, b, act, y, scratch);
    result_to(y, out, d->blk_out, d->n, d->oc, d->oh, d->ow);
}

static void blas_conv2d_backward(const struct sn_conv_desc *d, const float *in, const float *w,
                                 const float *dout, float *din, float *dw, float *db,
                                 void *scratch)
{
    struct sn_conv_desc p = *d;
    p.blk_in = p.blk_out = 0;
    const float *x = nhwc_of(in, d->blk_in, d->n, d->c, d->h, d->w, POOL_NHWC, 1);
    const float *dy = nhwc_of(dout, d->blk_out, d->n, d->oc, d->oh, d->ow, POOL_NHWC + 1, 1);
    float *dx = nhwc_of(din, d->blk_in, d->n, d->c, d->h, d->w, POOL_NHWC + 2, 0);
    if (!x || !dy || (din && !dx)) {
        poison(din, (size_t)d->n * d->c * d->h * d->w);
        poison(dw, (size_t)d->kh * d->kw * d->c * d->oc);
        return;
    }
    sn_ops_blas.conv2d_backward(&p, x, w, dy, dx, dw, db, scratch);
    if (din)
        result_to(dx, din, d->blk_in, d->n, d->c, d->h, d->w);
}

static void blas_maxpool_forward(const struct sn_pool_desc *d, const float *in, float *out,
                                 int32_t *argmax)
{
    struct sn_pool_desc p = *d;
    p.blk_in = p.blk_out = 0;
    const float *x = nhwc_of(in, d->blk_in, d->n, d->c, d->h, d->w, POOL_NHWC, 1);
    float *y = nhwc_of(out, d->blk_out, d->n, d->c, d->oh, d->ow, POOL_NHWC + 1, 0);
    if (!x || !y) {
        poison(out, (size_t)d->n * d->c * d->oh * d->ow);
        return;
    }
    sn_ops_blas.maxpool_forward(&p, x, y, argmax); /* argmax: into the NHWC copy */
    result_to(y, out, d->blk_out, d->n, d->c, d->oh, d->ow);
}

static void blas_maxpool_backward(const struct sn_pool_desc *d, const float *dout,
                                  const int32_t *argmax, float *din)
{
    struct sn_pool_desc p = *d;
    p.blk_in = p.blk_out = 0;
    const float *dy = nhwc_of(dout, d->blk_out, d->n, d->c, d->oh, d->ow, POOL_NHWC, 1);
    float *dx = nhwc_of(din, d->blk_in, d->n, d->c, d->h, d->w, POOL_NHWC + 1, 0);
    if (!dy || !dx) {
        poison(din, (size_t)d->n * d->c * d->h * d->w);
        return;
    }
    sn_ops_blas.maxpool_backward(&p, dy, argmax, dx);
    result_to(dx, din, d->blk_in, d->n, d->c, d->h, d->w);
}

static void onednn_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                                const float *b, enum sn_act act, float *out, void *scratch)
{
    if (!conv_forward(d, ALG_DIRECT, in, w, b, act, out))
        blas_conv2d_forward(d, in, w, b, act, out, scratch);
}

static void onednn_conv2d_backward(const struct sn_conv_desc *d, const float *in, const float *w,
                                 const float *dout, float *din, float *dw, float *db,
                                 void *scratch)
{
    if (dw && !conv_bwd_weights(d, ALG_DIRECT, in, dout, dw, db))
        blas_conv2d_backward(d, in, w, dout, NULL, dw, db, scratch);
    else if (db && !dw)
        blas_conv2d_backward(d, in, w, dout, NULL, NULL, db, scratch);
    if (din && !conv_bwd_data(d, ALG_DIRECT, w, dout, din))
        blas_conv2d_backward(d, in, w, dout, din, NULL, NULL, scratch);
}

/* Winograd's F(4x4, 3x3) where oneDNN has it (3x3, stride 1, channels in 16s, AVX-512): about
 * half the multiplications of a direct convolution for a little more rounding error, on data
 * reordered to oneDNN's blocked layout and back. Other shapes: as sn_ops_onednn. */
/* A convolution on algorithm alg where oneDNN has it, else as sn_ops_onednn */
static void alg_conv2d_forward(int alg, const struct sn_conv_desc *d, const float *in,
                               const float *w, const float *b, enum sn_act act, float *out,
                               void *scratch)
{
    if (!conv_forward(d, alg, in, w, b, act, out))
        onednn_conv2d_forward(d, in, w, b, act, out, scratch);
}

static void alg_conv2d_backward(int alg, const struct sn_conv_desc *d, const float *in,
                                const float *w, const float *dout, float *din, float *dw,
                                float *db, void *scratch)
{
    if (dw && conv_bwd_weights(d, alg, in, dout, dw, db))
        dw = NULL, db = NULL;
    if (din && conv_bwd_data(d, alg, w, dout, din))
        din = NULL;
    if (din || dw || db)
        onednn_conv2d_backward(d, in, w, dout, din, dw, db, scratch);
}

static void winograd_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                                    const float *b, enum sn_act act, float *out, void *scratch)
{
    alg_conv2d_forward(ALG_WINOGRAD, d, in, w, b, act, out, scratch);
}

static void winograd_conv2d_backward(const struct sn_conv_desc *d, const float *in,
                                     const float *w, const float *dout, float *din, float *dw,
                                     float *db, void *scratch)
{
    alg_conv2d_backward(ALG_WINOGRAD, d, in, w, dout, din, dw, db, scratch);
}

/* bf16: the inputs of each product rounded to bfloat16 (8 bits of mantissa), sums and results in
 * fp32, on AVX-512 BF16's dot-product instructions or AMX; the weights stay fp32 in the model
 * (the optimizer's master copy) and are rounded on the way in, like the activations. On other
 * AVX-512 CPUs oneDNN 2.6.3 emulates those instructions (same results, slower); below AVX-512 it
 * has no bf16 convolution, every bf16 primitive is refused and these compute as sn_ops_onednn,
 * in fp32 (test_ops checks each case). */
static void bf16_conv2d_forward(const struct sn_conv_desc *d, const float *in, const float *w,
                                const float *b, enum sn_act act, float *out, void *scratch)
{
    alg_conv2d_forward(ALG_BF16, d, in, w, b, act, out, scratch);
}

static void bf16_conv2d_backward(const struct sn_conv_desc *d, const float *in, const float *w,
                                 const float *dout, float *din, float *dw, float *db,
                                 void *scratch)
{
    alg_conv2d_backward(ALG_BF16, d, in, w, dout, din, dw, db, scratch);
}

/* ---- pooling: oneDNN's average pooling (global average pooling, below); max pooling is ours -- */

/* Average pooling (alg) has no workspace: its backward needs only the shapes. */
static struct prim *pool_prim(int kind, const struct sn_pool_desc *d, dnnl_alg_kind_t alg)
{
    if (!dn_init() || dn.refuse)
        return NULL;
    struct prim_key key;
    memset(&key, 0, sizeof key);
    key.kind = kind;
    int v[] = {d->n,  d->h,  d->w,       d->c,        d->oh,     d->ow,     d->ph,     d->pw,
               d->sh, d->sw, d->pad_top, d->pad_left, (int)alg, d->blk_in, d->blk_out};
    memcpy(key.v, v, sizeof v);
    int fresh;
    struct prim *e = prim_slot(&key, &fresh);
    if (!e || !fresh)
        return e && e->ok ? e : NULL;
    dnnl_memory_desc_t src, dst;
    md_act(&src, d->n, d->c, d->h, d->w, d->blk_in);
    md_act(&dst, d->n, d->c, d->oh, d->ow, d->blk_out);
    dnnl_dims_t strides = {d->sh, d->sw}, kernel = {d->ph, d->pw}, dil = {0, 0};
    dnnl_dims_t pl = {d->pad_top, d->pad_left};
    dnnl_dims_t pr = {pad_right(d->h, d->oh, d->ph, d->sh, d->pad_top),
                      pad_right(d->w, d->ow, d->pw, d->sw, d->pad_left)};
    dnnl_primitive_attr_t attr = user_scratchpad_attr(0);
    dnnl_pooling_v2_desc_t fd, bd;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    int ok = dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &src, &dst,
                                               strides, kernel, dil, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&fwd, &fd, kind == POOL_FWD ? attr : NULL, dn.engine,
                                        NULL) == dnnl_success;
    if (ok && kind == POOL_BWD)
        ok = dnnl_pooling_v2_backward_desc_init(&bd, alg, &src, &dst, strides, kernel, dil, pl,
                                                pr) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &bd, attr, dn.engine, fwd) == dnnl_success;
    else
        pd = fwd, fwd = NULL;
    ok = ok && mem(&e->src, &src) && mem(&e->dst, &dst) && finish_prim(e, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(fwd);
    dnnl_primitive_attr_destroy(attr);
    e->ok = ok;
    return ok ? e : NULL;
}

/* A pooling's input and output share one layout (layout.c keeps a pooling at neither end of a
 * blocked run): NHWC, or nChw16c, which is NHWC of n * c/16 images of 16 channels. Either way
 * sn_ops_blas's loop pools it in place, NaN winning its window, with argmax indices into the
 * same buffers for backward. */
static int pool_as_nhwc(const struct sn_pool_desc *d, struct sn_pool_desc *p)
{
    *p = *d;
    if (d->blk_in != d->blk_out)
        return 0;
    if (d->blk_in) {
        p->n = d->n * (d->c / 16);
        p->c = 16;
    }
    p->blk_in = p->blk_out = 0;
    return 1;
}

static void onednn_maxpool_forward(const struct sn_pool_desc *d, const float *in, float *out,
                                   int32_t *argmax)
{
    struct sn_pool_desc p;
    if (pool_as_nhwc(d, &p))
        sn_ops_blas.maxpool_forward(&p, in, out, argmax);
    else
        blas_maxpool_forward(d, in, out, argmax);
}

static void onednn_maxpool_backward(const struct sn_pool_desc *d, const float *dout,
                                    const int32_t *argmax, float *din)
{
    struct sn_pool_desc p;
    if (pool_as_nhwc(d, &p))
        sn_ops_blas.maxpool_backward(&p, dout, argmax, din);
    else
        blas_maxpool_backward(d, dout, argmax, din);
}

/* ---- global average pooling: a pooling window of the whole image ---------------------------- */

static struct sn_pool_desc gap_desc(int n, int hw, int c)
{
    return (struct sn_pool_desc){.n = n, .h = hw, .w = 1, .c = c, .oh = 1, .ow = 1, .ph = hw,
                                 .pw = 1, .sh = hw, .sw = 1};
}

static void onednn_avgpool_global_forward(const float *in, float *out, int n, int hw, int c)
{
    struct sn_pool_desc d = gap_desc(n, hw, c);
    struct prim *e = pool_prim(POOL_FWD, &d, dnnl_pooling_avg_exclude_padding);
    if (!e) {
        sn_ops_blas.avgpool_global_forward(in, out, n, hw, c);
        return;
    }
    set(e->src, in);
    set(e->dst, out);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_DST, e->dst}};
    run(e, 2, a);
}

static void onednn_avgpool_global_backward(const float *dout, float *din, int n, int hw, int c)
{
    struct sn_pool_desc d = gap_desc(n, hw, c);
    struct prim *e = pool_prim(POOL_BWD, &d, dnnl_pooling_avg_exclude_padding);
    if (!e) {
        sn_ops_blas.avgpool_global_backward(dout, din, n, hw, c);
        return;
    }
    set(e->src, din);
    set(e->dst, dout);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_DIFF_DST, e->dst}, {DNNL_ARG_DIFF_SRC, e->src}};
    run(e, 2, a);
}

/* ---- batch normalization: sn_ops_blas's loops --------------------------------------------------
 * oneDNN 2.6.3's batch normalization primitive (NC layout) returned wrong gradients in
 * test_ops for 4 channels (dx with batch statistics, dgamma and dbeta with given ones) and left
 * beta's gradient unwritten without a gamma, so the loops stay; the table entry is where a
 * primitive that passes those tests goes. */

static void onednn_batchnorm_forward(const float *x, float *y, size_t rows, int c, float eps,
                                     int batch_stats, const float *gamma, const float *beta,
                                     float *mean, float *var, void *scratch)
{
    sn_ops_blas.batchnorm_forward(x, y, rows, c, eps, batch_stats, gamma, beta, mean, var,
                                  scratch);
}

static void onednn_batchnorm_backward(const float *x, const float *dy, float *dx, size_t rows,
                                      int c, float eps, int batch_stats, const float *gamma,
                                      const float *mean, const float *var, float *dgamma,
                                      float *dbeta, void *scratch)
{
    sn_ops_blas.batchnorm_backward(x, dy, dx, rows, c, eps, batch_stats, gamma, mean, var, dgamma,
                                   dbeta, scratch);
}

/* oneDNN's own sgemm (JIT-compiled for the CPU, row-major): the dense layers */
static void onednn_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                        const float *b, float beta, float *c)
{
    if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, trans_a ? m : k, b,
                   trans_b ? k : n, beta, c, n) != dnnl_success)
        sn_ops_blas.gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}

static void onednn_bias_forward(float *out, const float *b, size_t rows, size_t cols)
{
    sn_ops_blas.bias_forward(out, b, rows, cols);
}

static void onednn_bias_backward(const float *dout, float *db, size_t rows, size_t cols)
{
    sn_ops_blas.bias_backward(dout, db, rows, cols);
}

static void onednn_act_forward(enum sn_act act, const float *x, float *y, size_t rows, size_t cols)
{
    sn_ops_blas.act_forward(act, x, y, rows, cols);
}

static void onednn_act_backward(enum sn_act act, const float *y, const float *dy, float *dx,
                              size_t rows, size_t cols)
{
    sn_ops_blas.act_backward(act, y, dy, dx, rows, cols);
}

/* What the two oneDNN tables share: all but the convolutions. */
#define ONEDNN_OPS_BUT_CONV                                                                    \
    .gemm = onednn_gemm, .conv2d_scratch = onednn_conv2d_scratch,                              \
    .maxpool_forward = onednn_maxpool_forward, .maxpool_backward = onednn_maxpool_backward,    \
    .act_forward = onednn_act_forward, .act_backward = onednn_act_backward,                    \
    .bias_forward = onednn_bias_forward, .bias_backward = onednn_bias_backward,                \
    .avgpool_global_forward = onednn_avgpool_global_forward,                                   \
    .avgpool_global_backward = onednn_avgpool_global_backward,                                 \
    .batchnorm_forward = onednn_batchnorm_forward, .batchnorm_backward = onednn_batchnorm_backward

const struct sn_ops sn_ops_onednn = {
    .name = "onednn",
    .caps = SN_OPS_PRIMITIVES | SN_OPS_BLOCKED,
    .conv2d_forward = onednn_conv2d_forward,
    .conv2d_backward = onednn_conv2d_backward,
    ONEDNN_OPS_BUT_CONV,
};

int sn_ops_winograd_has(const struct sn_conv_desc *d)
{
    return conv_prim(CONV_FWD, d, 1, 0, ALG_WINOGRAD) != NULL;
}

const struct sn_ops sn_ops_winograd = {
    .name = "winograd",
    .caps = SN_OPS_PRIMITIVES | SN_OPS_BLOCKED | SN_OPS_REORDERS | SN_OPS_WINOGRAD,
    .conv2d_forward = winograd_conv2d_forward,
    .conv2d_backward = winograd_conv2d_backward,
    ONEDNN_OPS_BUT_CONV,
};

const struct sn_ops sn_ops_bf16 = {
    .name = "bf16",
    .caps = SN_OPS_PRIMITIVES | SN_OPS_BLOCKED | SN_OPS_REORDERS | SN_OPS_BF16,
    .conv2d_forward = bf16_conv2d_forward,
    .conv2d_backward = bf16_conv2d_backward,
    ONEDNN_OPS_BUT_CONV,
};

int sn_ops_bf16_native(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

size_t sn_ops_onednn_primitives(void) { return dn.n; }

int sn_ops_onednn_blocked_native(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core || isa == dnnl_cpu_isa_avx512_core_vnni ||
           isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

void sn_ops_onednn_set_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

void sn_ops_onednn_describe(char *buf, size_t n)
{
    const dnnl_version_t *v = dnnl_version();
    const char *isa = "?";
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: isa = "sse41"; break;
    case dnnl_cpu_isa_avx: isa = "avx"; break;
    case dnnl_cpu_isa_avx2: isa = "avx2"; break;
    case dnnl_cpu_isa_avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl_cpu_isa_avx512_core: isa = "avx512_core"; break;
    case dnnl_cpu_isa_avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl_cpu_isa_avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl_cpu_isa_avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
    }
    snprintf(buf, n, "oneDNN %d.%d.%d %s", v->major, v->minor, v->patch, isa);
}

void sn_ops_onednn_free(void)
{
    for (size_t i = 0; i < dn.n; i++) {
        struct prim *e = &dn.prims[i];
        dnnl_primitive_destroy(e->p);
        dnnl_primitive_destroy(e->reorder);
        dnnl_primitive_destroy(e->io_src.re);
        dnnl_primitive_destroy(e->io_dst.re);
        dnnl_memory_t ms[] = {e->src,     e->wuser, e->wprim,        e->bias,         e->dst,
                              e->ws,      e->scratch, e->dbias, e->io_src.blk, e->io_dst.blk};
        for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++)
            dnnl_memory_destroy(ms[k]);
        free(e->wbuf);
        free(e->dbbuf);
    }
    free(dn.prims);
    for (int k = 0; k < POOL_SLOTS; k++)
        free(dn.pool[k]);
    if (dn.ready > 0) {
        dnnl_stream_destroy(dn.stream);
        dnnl_engine_destroy(dn.engine);
    }
    memset(&dn, 0, sizeof dn);
}
