/* move_int.h - internals shared by the files of the move module (not installed). */
#ifndef EPLB_MOVE_INT_H
#define EPLB_MOVE_INT_H

#include "core/eplb_int.h"

/* The longest wait, in message times, that a slot may have before its receive can be posted in
 * place: a slot waits for its old content to be sent, whose receiver may itself wait, and so on.
 * A slot that would wait longer is staged instead (its old content copied aside: no wait). */
#define EPLB__STAGE_MAX_WAIT 3

/* Fills plan->staged (allocated here, [L * to_slots]) from plan->xfers: for moving in place,
 * marks one slot of every cycle of slots that wait for each other (choosing, in each cycle, the
 * slot of the rank with the fewest staged so far in the layer, then the lowest slot), then,
 * bottom up, each slot whose wait would exceed EPLB__STAGE_MAX_WAIT. All zero when the slot
 * counts differ (no move in place). Also fills plan->step (allocated here, [L * to_slots]) with
 * the round each slot can be written in. Deterministic. @return 0 or EPLB_ENOMEM. */
int eplb__transfer_stage(eplb_transfer *plan);

#endif /* EPLB_MOVE_INT_H */
