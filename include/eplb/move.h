/* eplb/move.h - Step 3, move: initial placements, transfer plans between placements, routing tables.
 * Included by eplb.h; may be included on its own. */
#ifndef EPLB_MOVE_H
#define EPLB_MOVE_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MOVE_H */
