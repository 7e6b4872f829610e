#include "parity.h"

#include <cstring>

#include "batch_forge/core/error.h"
#include "support/paths.h"

namespace bf::parity {
namespace {

std::string fixture_dir() { return testing::binary_dir() + "/fixtures"; }

const std::string& meta(const SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end())
    throw Error(ErrorCode::kInvalidFile, "parity", cat(f.path(), ": fixture has no metadata '", key, "'"));
  return it->second;
}

}  // namespace

Fixture Fixture::load(std::string_view name) {
  return Fixture(SafetensorsFile::open(cat(fixture_dir(), "/", name, ".safetensors")));
}

Fixture::Fixture(SafetensorsFile file) : file_(std::move(file)) {
  op_ = meta(file_, "batch_forge.fixture.op");
  params_ = nlohmann::json::parse(meta(file_, "batch_forge.fixture.params"));
  const auto tol = nlohmann::json::parse(meta(file_, "batch_forge.fixture.tolerance"));
  tolerance_ = {tol.at("atol").get<double>(), tol.at("rtol").get<double>()};
}

std::vector<float> Fixture::read_f32(const std::string& tensor, std::vector<int64_t>* dims) const {
  const TensorInfo* t = file_.find(tensor);
  if (!t) throw Error(ErrorCode::kNotFound, "parity", cat(file_.path(), ": fixture has no tensor '", tensor, "'"));
  if (t->dtype != DType::kF32)
    throw Error(ErrorCode::kUnsupported, "parity",
                cat(file_.path(), ": tensor '", tensor, "' is ", dtype_name(t->dtype)));
  const auto bytes = file_.data(*t);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), bytes.size());  // copy: fixture data need not be aligned
  if (dims) *dims = t->dims;
  return out;
}

std::vector<float> Fixture::input(std::string_view name, std::vector<int64_t>* dims) const {
  return read_f32(cat("input.", name), dims);
}
std::vector<float> Fixture::output(std::string_view name, std::vector<int64_t>* dims) const {
  return read_f32(cat("output.", name), dims);
}

}  // namespace bf::parity
