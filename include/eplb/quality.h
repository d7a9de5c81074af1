/* eplb/quality.h - Plan quality: the balanced policy, the lower bound, migration-aware re-planning, reports.
 * Included by eplb.h; may be included on its own. */
#ifndef EPLB_QUALITY_H
#define EPLB_QUALITY_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* EPLB_QUALITY_H */
