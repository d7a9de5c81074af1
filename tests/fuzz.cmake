# Fuzzing (issue #17): four targets in tests/fuzz/ (the counts loader, the expert_map loader, the
# YAML config loader, the planner with the transfer plan), each a LLVMFuzzerTestOneInput().
#   - Every build replays them with tests/fuzz/replay_main.c (any C compiler, so the ASan build
#     of `make test` replays with gcc): one test over the seed corpus tests/fuzz/corpus/<target>/
#     and one regression test per input in tests/fuzz/crashes/<target>/ (each finding kept).
#   - With -DEPLB_FUZZ=ON (clang) the targets are also linked with libFuzzer as fuzz_<target>;
#     `make fuzz` runs them (tests/fuzz/run_fuzz.sh).
set(EPLB_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
foreach(target loads map config plan)
  add_executable(fuzz_replay_${target} fuzz/fuzz_${target}.c fuzz/replay_main.c)
  target_link_libraries(fuzz_replay_${target} PRIVATE libeplb_static m)
  add_test(NAME fuzz_${target}_corpus
           COMMAND fuzz_replay_${target} ${EPLB_FUZZ_DIR}/corpus/${target})
  set_tests_properties(fuzz_${target}_corpus PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)
  file(GLOB crashes CONFIGURE_DEPENDS ${EPLB_FUZZ_DIR}/crashes/${target}/*)
  foreach(input ${crashes})
    get_filename_component(name ${input} NAME)
    add_test(NAME fuzz_${target}_crash_${name} COMMAND fuzz_replay_${target} ${input})
    set_tests_properties(fuzz_${target}_crash_${name} PROPERTIES LABELS "unit;fuzz" TIMEOUT 60)
  endforeach()
  if(EPLB_FUZZ)
    add_executable(fuzz_${target} fuzz/fuzz_${target}.c)
    target_link_libraries(fuzz_${target} PRIVATE libeplb_static m)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()
