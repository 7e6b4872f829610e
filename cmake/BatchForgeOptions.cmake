# Warnings and sanitizers shared by every batch_forge target.
add_library(bf_options INTERFACE)
target_compile_options(bf_options INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
target_include_directories(bf_options INTERFACE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)

if(BF_SANITIZE)
  message(STATUS "batch_forge: sanitizers ${BF_SANITIZE}")
  add_compile_options(-fsanitize=${BF_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all -g)
  add_link_options(-fsanitize=${BF_SANITIZE})
endif()

# bf_add_gtest(NAME SOURCES a_test.cc ... LIBS bf_io ...): one GoogleTest binary, registered with CTest.
function(bf_add_gtest name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} bf_options GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  # Where the tests find the source tree (corpus) and the build tree (fixtures); see
  # tests/support/paths.h. Compiled in, because CTest property lists cannot carry two variables.
  target_compile_definitions(${name} PRIVATE BF_SOURCE_DIR_DEFAULT="${CMAKE_SOURCE_DIR}"
                                             BF_BINARY_DIR_DEFAULT="${CMAKE_BINARY_DIR}")
  set(props)
  if(ARG_PROPERTIES)
    set(props PROPERTIES ${ARG_PROPERTIES})
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} ${props})
endfunction()
