# Valgrind (issue #17): the CLI tests of plan and report run once more with every `eplb` under
# valgrind (memcheck, leaks included). Plain builds only: valgrind cannot run an ASan binary.
# Labelled valgrind (not cli), so the ASan build's `ctest -L 'unit|cli|mpi'` leaves them out.
if(NOT EPLB_SANITIZE)
  find_program(VALGRIND_PROG valgrind REQUIRED)
  foreach(script plan report)
    add_test(NAME cli_${script}_valgrind
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_valgrind.sh cli_${script}.sh)
    eplb_mpi_tmp(cli_${script}_valgrind tmp)
    set_tests_properties(cli_${script}_valgrind PROPERTIES LABELS valgrind TIMEOUT 1200 ENVIRONMENT
      "EPLB=$<TARGET_FILE:eplb>;VALGRIND=${VALGRIND_PROG};MPIRUN=${MPIEXEC_PROG};SRC=${PROJECT_SOURCE_DIR};DATA=${EPLB_TEST_DATA};${EPLB_MPI_ENV};${tmp}")
  endforeach()
endif()
