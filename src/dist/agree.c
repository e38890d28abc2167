/* agree.c — one rank's failure made every rank's (agree.h). */
#include "agree.h"

int sn_dist_agree(struct sn_dist *d, int rc, struct sn_err *err)
{
    int flag = rc != SN_OK ? d->world - d->rank : 0;
    struct sn_err agree_err = {0};
    if (sn_dist_allreduce_max_int(d, &flag, &agree_err) != SN_OK) {
        *err = agree_err;
        return err->code;
    }
    if (flag == 0)
        return SN_OK;
    if (d->rank != d->world - flag) {
        sn_err_set(err, SN_EMPI, "%s", "");
        rc = SN_EMPI;
    }
    err->collective = 1;
    return rc;
}

int sn_dist_collective(const struct sn_dist *d, int rc, struct sn_err *err)
{
    if (d->rank != 0)
        err->msg[0] = '\0';
    err->collective = 1;
    return rc;
}
