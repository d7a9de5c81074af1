# Step 3, move: placements, transfer plans, routing (unit), the MPI executor, the CLI.
eplb_unit_test(test_move test_move.c)
eplb_unit_test(test_route test_route.c)
foreach(np 2 4 8)
  eplb_mpi_test(test_migrate ${np} test_migrate.c)
  # A failed assertion on one rank can leave the others waiting in a collective: bound the wait.
  set_tests_properties(test_migrate_np${np} PROPERTIES TIMEOUT 120)
endforeach()
eplb_cli_test(cli_migrate cli_migrate.sh)
