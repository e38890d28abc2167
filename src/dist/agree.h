/* agree.h — making one rank's failure every rank's, before any rank waits in a collective the
 * failed rank will never enter.
 *
 * Work that only some ranks do (rank 0 reads a checkpoint, writes a file) or that may fail on
 * some ranks only (an allocation) ends with an agreement: every rank learns whether any failed,
 * the lowest failing rank keeps its message, and all return an error marked collective, so that
 * the CLI ends every rank normally and reports the error once. */
#ifndef SN_AGREE_H
#define SN_AGREE_H

#include "dist.h"
#include "err.h"

/* Every rank of d calls it with its own outcome rc. @return SN_OK when no rank failed; else
 * this rank's own error (the lowest failing rank's message kept) or SN_EMPI with no message on
 * the others, err->collective set on all. A failed agreement is this rank's own error. */
int sn_dist_agree(struct sn_dist *d, int rc, struct sn_err *err);

/* An error every rank met at the same point (a NaN loss, a stop): marked collective, with its
 * message kept on rank 0 alone, which reports it. @return rc */
int sn_dist_collective(const struct sn_dist *d, int rc, struct sn_err *err);

#endif
