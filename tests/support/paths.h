// Where tests find the source tree (committed corpus) and the build tree (fixtures written at test
// time). $BF_SOURCE_DIR / $BF_BINARY_DIR override the directories CMake compiled in.
#pragma once

#include <cstdlib>
#include <string>

namespace bf::testing {

inline std::string source_dir() {
  const char* env = std::getenv("BF_SOURCE_DIR");
  return env && *env ? env : BF_SOURCE_DIR_DEFAULT;
}

inline std::string binary_dir() {
  const char* env = std::getenv("BF_BINARY_DIR");
  return env && *env ? env : BF_BINARY_DIR_DEFAULT;
}

}  // namespace bf::testing
