/* eplb/collect.h - Step 1, collect: in-memory expert counters (no MPI; the gather is in eplb_mpi.h).
 * Included by eplb.h; may be included on its own. */
#ifndef EPLB_COLLECT_H
#define EPLB_COLLECT_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* EPLB_COLLECT_H */
