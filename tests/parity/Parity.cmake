# One CTest test runs JAX (through BF_PYTHON) once and writes every registered fixture
# (python/batch_forge/fixture_ops/) into <build>/fixtures/<op>.safetensors; the C++ parity tests
# require it through a CTest fixture, so `ctest -R Parity` regenerates what it needs.
add_test(NAME parity_fixtures
         COMMAND ${BF_PYTHON} -m batch_forge.fixtures --all --seed 0 --out-dir ${CMAKE_BINARY_DIR}/fixtures
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(parity_fixtures PROPERTIES FIXTURES_SETUP jax_fixtures
                     ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/python;JAX_PLATFORMS=cpu")

# Parity tests: tests/parity/*_parity_test.cc (one file per op group).
file(GLOB BF_PARITY_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/parity/*_parity_test.cc)
bf_add_gtest(bf_parity_test SOURCES parity/parity.cc ${BF_PARITY_TESTS} LIBS bf_io bf_backends
             PROPERTIES FIXTURES_REQUIRED jax_fixtures)
