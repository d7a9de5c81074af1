# The Python package: pytest under ctest, on the build tree's package (plain builds only: the
# sanitizer build has no package). Each file is one ctest test, labelled python.
if(TARGET eplb_python)
  set(EPLB_PY_TESTS eplb readme torch moe_proof rebalancer)
  foreach(name ${EPLB_PY_TESTS})
    set(file ${CMAKE_CURRENT_SOURCE_DIR}/python/test_${name}.py)
    if(NOT EXISTS ${file})
      continue()
    endif()
    add_test(NAME python_${name}
             COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider ${file})
    set_tests_properties(python_${name} PROPERTIES LABELS python TIMEOUT 600 ENVIRONMENT
      "PYTHONPATH=${PROJECT_BINARY_DIR}/python;EPLB=$<TARGET_FILE:eplb>;DATA=${EPLB_TEST_DATA};SRC=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=1")
  endforeach()
endif()
