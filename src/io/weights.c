/* weights.c — reading Keras weight files (HDF5, weights.h). */
#include "weights.h"

#include <hdf5.h>   // defines: H5Fopen, H5Aread, H5Dread, H5Literate, ...
#include <stdio.h>  // defines: snprintf, fopen, rename, remove
#include <unistd.h> // defines: getpid, close
#include <stdlib.h> // defines: calloc, free, strtol
#include <string.h> // defines: strcmp, strlen, memcpy

#include "sys.h" // defines: sn_open_regular
#include "values.h"

#define MAX_ARRAYS 8 /* per layer of the file (a layer shardnet knows has SN_MAX_ARRAYS at most) */

/* One layer of the file: its name and the arrays under it, in order. */
struct file_layer {
    char name[256];
    int n;
    hid_t dset[MAX_ARRAYS];
    char path[MAX_ARRAYS][256]; /* for messages */
    int used;
};

struct file_layers {
    struct file_layer *l; /* owned, n of cap */
    int n, cap;
};

static void layers_free(struct file_layers *fl)
{
    for (int i = 0; i < fl->n; i++)
        for (int k = 0; k < fl->l[i].n; k++)
            H5Dclose(fl->l[i].dset[k]);
    free(fl->l);
}

static struct file_layer *layers_add(struct file_layers *fl, const char *name)
{
    if (fl->n == fl->cap) {
        int cap = fl->cap ? 2 * fl->cap : 32;
        struct file_layer *p = realloc(fl->l, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        fl->l = p;
        fl->cap = cap;
    }
    struct file_layer *l = &fl->l[fl->n++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    return l;
}

/* A string-array attribute (fixed-length, as numpy writes bytes, or variable-length) as a
 * malloc'ed block of n NUL-terminated strings of `width` bytes each. */
static int read_names(hid_t obj, const char *attr_name, char **out, int *n, size_t *width)
{
    *out = NULL;
    *n = 0;
    if (H5Aexists(obj, attr_name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, attr_name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    hssize_t count = H5Sget_simple_extent_npoints(s);
    int rc = -1;
    if (a >= 0 && t >= 0 && s >= 0 && count >= 0 && count < 100000 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char **v = calloc((size_t)count + 1, sizeof *v);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            size_t w = 1;
            if (v && H5Aread(a, mt, v) >= 0) {
                for (hssize_t i = 0; i < count; i++)
                    if (v[i] && strlen(v[i]) + 1 > w)
                        w = strlen(v[i]) + 1;
                *out = calloc((size_t)count + 1, w);
                for (hssize_t i = 0; *out && i < count; i++)
                    if (v[i])
                        memcpy(*out + (size_t)i * w, v[i], strlen(v[i]));
                H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
                *width = w;
                rc = *out ? 0 : -1;
            }
            H5Tclose(mt);
            free(v);
        } else {
            /* read as NUL-terminated strings one byte longer: a name as long as the
               stored width (numpy's "S" arrays are exactly as wide as the longest) keeps
               its last character */
            size_t w = H5Tget_size(t) + 1;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, w);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            *out = calloc((size_t)count + 1, w);
            if (*out && H5Aread(a, mt, *out) >= 0) {
                *width = w;
                rc = 0;
            }
            H5Tclose(mt);
        }
    }
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    if (rc == 0)
        *n = (int)count;
    else {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Keras 2: layer_names on g, weight_names on each layer's group. */
static int list_keras2(hid_t g, const char *path, struct file_layers *fl, struct sn_err *err)
{
    char *names;
    int n;
    size_t w;
    if (read_names(g, "layer_names", &names, &n, &w) != 0)
        return sn_err_set(err, SN_EFORMAT, "%s: its layer_names attribute cannot be read", path);
    int rc = SN_OK;
    for (int i = 0; rc == SN_OK && i < n; i++) {
        const char *lname = names + (size_t)i * w;
        hid_t lg = H5Gopen2(g, lname, H5P_DEFAULT);
        if (lg < 0) {
            rc = sn_err_set(err, SN_EFORMAT, "%s: layer_names lists '%s' but there is no such "
                                             "group (truncated or damaged file?)",
                            path, lname);
            break;
        }
        char *wn;
        int nw;
        size_t ww;
        if (read_names(lg, "weight_names", &wn, &nw, &ww) != 0) {
            H5Gclose(lg);
            rc = sn_err_set(err, SN_EFORMAT, "%s: layer '%s' has no readable weight_names "
                                             "attribute",
                            path, lname);
            break;
        }
        if (nw > 0) {
            struct file_layer *l = nw <= MAX_ARRAYS ? layers_add(fl, lname) : NULL;
            if (!l)
                rc = sn_err_set(err, SN_EFORMAT, "%s: layer '%s' has %d arrays, more than any "
                                                 "layer shardnet knows",
                                path, lname, nw);
            for (int k = 0; rc == SN_OK && k < nw; k++) {
                const char *dn = wn + (size_t)k * ww;
                snprintf(l->path[k], sizeof l->path[k], "%s/%s", lname, dn);
                l->dset[k] = H5Dopen2(lg, dn, H5P_DEFAULT);
                if (l->dset[k] < 0)
                    rc = sn_err_set(err, SN_EFORMAT, "%s: weight_names of layer '%s' lists '%s' "
                                                     "but there is no such array",
                                    path, lname, dn);
                else
                    l->n++;
            }
        }
        free(wn);
        H5Gclose(lg);
    }
    free(names);
    return rc;
}

struct k3_ctx {
    struct file_layers *fl;
    const char *path;
    struct sn_err *err;
    int rc;
};

/* Keras 3: each child of "layers" with a "vars" group holding 0, 1, ... */
static herr_t k3_layer(hid_t layers, const char *name, const H5L_info_t *info, void *user)
{
    struct k3_ctx *c = user;
    char vpath[512];
    snprintf(vpath, sizeof vpath, "%s/vars", name);
    if (H5Lexists(layers, name, H5P_DEFAULT) <= 0 || H5Lexists(layers, vpath, H5P_DEFAULT) <= 0)
        return 0;
    hid_t vg = H5Gopen2(layers, vpath, H5P_DEFAULT);
    H5G_info_t gi;
    if (vg < 0 || H5Gget_info(vg, &gi) < 0) {
        c->rc = sn_err_set(c->err, SN_EFORMAT, "%s: layers/%s/vars cannot be read", c->path, name);
        return -1;
    }
    if (gi.nlinks > 0) {
        struct file_layer *l = gi.nlinks <= MAX_ARRAYS ? layers_add(c->fl, name) : NULL;
        if (!l)
            c->rc = sn_err_set(c->err, SN_EFORMAT, "%s: layer '%s' has %llu arrays, more than "
                                                   "any layer shardnet knows",
                               c->path, name, (unsigned long long)gi.nlinks);
        for (hsize_t k = 0; c->rc == SN_OK && k < gi.nlinks; k++) {
            char dn[32];
            snprintf(dn, sizeof dn, "%llu", (unsigned long long)k);
            snprintf(l->path[k], sizeof l->path[k], "layers/%s/vars/%s", name, dn);
            l->dset[k] = H5Dopen2(vg, dn, H5P_DEFAULT);
            if (l->dset[k] < 0)
                c->rc = sn_err_set(c->err, SN_EFORMAT, "%s: %s is missing", c->path, l->path[k]);
            else
                l->n++;
        }
    }
    H5Gclose(vg);
    return c->rc == SN_OK ? 0 : -1;
}

/* The arrays a layer of the model takes, in Keras's order (values.h): where each goes, its name
 * and its shape. */
struct want {
    int n;
    float *dst[SN_MAX_ARRAYS];
    const char *name[SN_MAX_ARRAYS];
    int ndims[SN_MAX_ARRAYS];
    hsize_t dims[SN_MAX_ARRAYS][4];
};

/* params and state are the staging copies (or, when writing, the model's own: nothing is
 * written through the pointers then). @return 0 for a layer without weights. */
static int layer_wants(const struct sn_layer *l, float *params, float *state, struct want *w)
{
    struct sn_array a[SN_MAX_ARRAYS];
    memset(w, 0, sizeof *w);
    w->n = sn_layer_arrays(l, a);
    for (int k = 0; k < w->n; k++) {
        w->dst[k] = (a[k].in_state ? state : params) + a[k].off;
        w->name[k] = a[k].name;
        w->ndims[k] = a[k].ndims;
        for (int d = 0; d < a[k].ndims; d++)
            w->dims[k][d] = (hsize_t)a[k].dims[d];
    }
    return w->n > 0;
}

static void shape_str(char *buf, size_t n, int nd, const hsize_t *d)
{
    int len = snprintf(buf, n, "(");
    for (int i = 0; i < nd && len < (int)n; i++)
        len += snprintf(buf + len, n - len, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
    if (len < (int)n)
        snprintf(buf + len, n - len, "%s)", nd == 1 ? "," : "");
}

static int load_layer(const struct sn_layer *l, struct file_layer *fl, const struct want *w,
                      const char *path, struct sn_err *err)
{
    if (fl->n != w->n)
        return sn_err_set(err, SN_EINVAL, "%s: layer '%s' holds %d arrays, the config's %s has "
                                          "%d",
                          path, l->name, fl->n, l->type->keras_name, w->n);
    for (int k = 0; k < w->n; k++) {
        hid_t s = H5Dget_space(fl->dset[k]);
        hsize_t d[8] = {0};
        int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
        if (nd >= 0 && nd <= 8)
            H5Sget_simple_extent_dims(s, d, NULL);
        H5Sclose(s);
        int same = nd == w->ndims[k];
        for (int i = 0; same && i < nd; i++)
            same = d[i] == w->dims[k][i];
        if (!same) {
            char got[96], want[96];
            shape_str(got, sizeof got, nd > 8 ? 8 : nd, d);
            shape_str(want, sizeof want, w->ndims[k], w->dims[k]);
            return sn_err_set(err, SN_EINVAL, "%s: layer '%s', array %d (%s): shape %s in the "
                                              "file, %s in the config",
                              path, l->name, k, fl->path[k], got, want);
        }
        if (H5Dread(fl->dset[k], H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->dst[k]) < 0)
            return sn_err_set(err, SN_EFORMAT, "%s: array %s cannot be read (truncated or "
                                               "damaged file?)",
                              path, fl->path[k]);
    }
    fl->used = 1;
    return SN_OK;
}

int sn_weights_import_keras(struct sn_model *m, const char *path, int by_name, struct sn_err *err)
{
    /* HDF5 opens the file by name: it is checked to be a regular file (a FIFO would block
       HDF5's open) and readable first */
    int probe;
    int prc = sn_open_regular(path, "Keras weight file", &probe, err);
    SN_RETURN_IF(prc == SN_EIO, err, SN_EIO, "cannot read %s", path);
    SN_FORWARD(prc);
    close(probe);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported here, not printed by HDF5 */
    SN_RETURN_IF(H5Fis_hdf5(path) <= 0, err, SN_EFORMAT,
                 "%s is not an HDF5 file (a Keras weight file is: .h5 or .weights.h5)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    SN_RETURN_IF(f < 0, err, SN_EFORMAT, "%s cannot be opened as HDF5 (truncated or damaged?)",
                 path);
    struct file_layers fl = {0};
    int rc = SN_OK;
    if (H5Aexists(f, "layer_names") > 0) {
        rc = list_keras2(f, path, &fl, err); /* save_weights */
    } else if (H5Lexists(f, "model_weights", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "model_weights", H5P_DEFAULT);
        rc = list_keras2(g, path, &fl, err); /* a whole model saved with model.save */
        H5Gclose(g);
    } else if (H5Lexists(f, "layers", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "layers", H5P_DEFAULT);
        struct k3_ctx c = {&fl, path, err, SN_OK};
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, k3_layer, &c);
        rc = c.rc;
        H5Gclose(g);
    } else {
        rc = sn_err_set(err, SN_EFORMAT, "%s holds no Keras weights: neither a layer_names "
                                         "attribute (Keras 2), nor model_weights, nor layers/ "
                                         "(Keras 3 .weights.h5)",
                        path);
    }
    /* staged: m is unchanged unless every layer loads */
    float *params = rc == SN_OK ? malloc((m->n_params + 1) * sizeof(float)) : NULL;
    float *state = rc == SN_OK ? malloc((m->n_state + 1) * sizeof(float)) : NULL;
    if (rc == SN_OK && (!params || !state))
        rc = sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK) {
        memcpy(params, m->params, m->n_params * sizeof(float));
        memcpy(state, m->state, m->n_state * sizeof(float));
    }
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        struct want w;
        if (!layer_wants(l, params, state, &w))
            continue;
        struct file_layer *match = NULL;
        for (int k = 0; k < fl.n && !match; k++)
            if (strcmp(fl.l[k].name, l->name) == 0)
                match = &fl.l[k];
        if (!match) {
            char have[512] = "";
            int len = 0;
            for (int k = 0; k < fl.n && len < (int)sizeof have - 64; k++)
                len += snprintf(have + len, sizeof have - len, "%s%s", k ? ", " : "",
                                fl.l[k].name);
            rc = sn_err_set(err, SN_EINVAL, "%s has no weights for layer '%s' (%s); it has: %s",
                            path, l->name, l->type->keras_name, have[0] ? have : "none");
            break;
        }
        rc = load_layer(l, match, &w, path, err);
    }
    for (int k = 0; rc == SN_OK && !by_name && k < fl.n; k++)
        if (!fl.l[k].used)
            rc = sn_err_set(err, SN_EINVAL, "%s holds weights for layer '%s', which the config "
                                            "does not have (a file for another network? "
                                            "--by-name takes the config's layers alone)",
                            path, fl.l[k].name);
    /* a NaN or an infinity loads like any number, and would then run silently */
    if (rc == SN_OK)
        rc = sn_model_check_values(m, m->n_layers, params, state, path, err);
    if (rc == SN_OK) {
        memcpy(m->params, params, m->n_params * sizeof(float));
        memcpy(m->state, state, m->n_state * sizeof(float));
    }
    free(params);
    free(state);
    layers_free(&fl);
    H5Fclose(f);
    return rc;
}

/* ---- writing --------------------------------------------------------------------------------- */

static int write_names(hid_t obj, const char *attr_name, char (*names)[300], int n)
{
    size_t w = 1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) > w)
            w = strlen(names[i]);
    char *buf = calloc((size_t)(n > 0 ? n : 1), w);
    if (!buf)
        return -1;
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * w, names[i], strlen(names[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, w);
    H5Tset_strpad(t, H5T_STR_NULLPAD); /* numpy's "S" arrays, as Keras writes them */
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = n > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL);
    hid_t a = H5Acreate2(obj, attr_name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && (n == 0 || H5Awrite(a, t, buf) >= 0) ? 0 : -1;
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    free(buf);
    return rc;
}

static int write_string_attr(hid_t obj, const char *name, const char *value)
{
    char one[1][300];
    snprintf(one[0], sizeof one[0], "%s", value);
    /* a scalar would be closer to Keras; a one-element array reads the same in h5py */
    return write_names(obj, name, one, 1);
}

int sn_weights_export_keras(const struct sn_model *m, const char *path, struct sn_err *err)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    SN_RETURN_IF(f < 0, err, SN_EIO, "cannot create %s", tmp);
    int ok = 1;
    char(*names)[300] = calloc((size_t)m->n_layers + 1, sizeof *names);
    ok = names != NULL;
    for (int i = 0; ok && i < m->n_layers; i++)
        snprintf(names[i], sizeof names[i], "%s", m->layers[i].name);
    ok = ok && write_names(f, "layer_names", names, m->n_layers) == 0 &&
         write_string_attr(f, "backend", "tensorflow") == 0 &&
         write_string_attr(f, "keras_version", "2.11.0") == 0;
    for (int i = 0; ok && i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        struct want w;
        /* layer_wants writes nothing: its pointers only say where each array is */
        if (!layer_wants(l, m->params, m->state, &w))
            w.n = 0;
        hid_t lg = H5Gcreate2(f, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        char(*wn)[300] = calloc((size_t)w.n + 1, sizeof *wn);
        ok = lg >= 0 && wn != NULL;
        for (int k = 0; ok && k < w.n; k++) {
            snprintf(wn[k], sizeof wn[k], "%s/%s:0", l->name, w.name[k]);
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lcpl, 1);
            hid_t s = H5Screate_simple(w.ndims[k], w.dims[k], NULL);
            hid_t d = H5Dcreate2(lg, wn[k], H5T_IEEE_F32LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    w.dst[k]) >= 0;
            H5Dclose(d);
            H5Sclose(s);
            H5Pclose(lcpl);
        }
        ok = ok && write_names(lg, "weight_names", wn, w.n) == 0;
        free(wn);
        H5Gclose(lg);
    }
    free(names);
    ok = H5Fclose(f) >= 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return sn_err_set(err, SN_EIO, "cannot write %s", path);
    }
    return SN_OK;
}
