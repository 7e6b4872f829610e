// PLACEHOLDER driver (registry only) until the real one lands; replaced wholesale.
#include "bench/bench.h"

#include <map>

namespace bf::bench {
namespace {
std::map<std::string, Group>& groups() {
  static std::map<std::string, Group> g;
  return g;
}
}  // namespace
bool register_group(const char* name, Group group) {
  groups()[name] = std::move(group);
  return true;
}
}  // namespace bf::bench
