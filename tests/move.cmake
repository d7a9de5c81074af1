# Step 3, move: placements, transfer plans, routing (unit), the MPI executor, the CLI.
eplb_unit_test(test_move test_move.c)
eplb_unit_test(test_route test_route.c)
