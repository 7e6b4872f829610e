# Each fixture is one CTest test that runs JAX (through BF_PYTHON) and writes
# <build>/fixtures/<op>.safetensors; the parity tests require them through a CTest fixture.
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fixtures)
set(BF_PARITY_OPS rms_norm layer_norm softmax)
foreach(op IN LISTS BF_PARITY_OPS)
  add_test(NAME parity_fixture_${op}
           COMMAND ${BF_PYTHON} -m batch_forge.fixtures --op ${op} --seed 0
                   --out ${CMAKE_BINARY_DIR}/fixtures/${op}.safetensors
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(parity_fixture_${op} PROPERTIES FIXTURES_SETUP jax_fixtures
                       ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/python;JAX_PLATFORMS=cpu")
endforeach()

bf_add_gtest(bf_parity_test SOURCES parity/parity.cc parity/ops_parity_test.cc LIBS bf_io bf_ops
             PROPERTIES FIXTURES_REQUIRED jax_fixtures)
