// Test helper: writes small safetensors files from C++ (no alignment fillers, no checks — tests
// use it to build both valid files and files that break one rule on purpose).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bf::testing {

struct RawTensor {
  std::string name;
  std::string dtype;  // safetensors name: "F32"
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};

// The 8-byte length prefix and the header JSON, with room for `data_bytes` more bytes (zeroed).
inline std::vector<uint8_t> header_bytes(const std::string& json, uint64_t data_bytes = 0) {
  std::vector<uint8_t> out(8 + json.size() + data_bytes);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

// Header JSON + data, tensors laid out back to back in the given order.
inline std::vector<uint8_t> safetensors_bytes(const std::vector<RawTensor>& tensors,
                                              const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const RawTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.dims}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  const std::string json = header.dump();
  std::vector<uint8_t> out = header_bytes(json, offset);
  uint8_t* data = out.data() + 8 + json.size();
  for (const RawTensor& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(data, t.bytes.data(), t.bytes.size());
    data += t.bytes.size();
  }
  return out;
}

// An f32 tensor of the given dims, filled with 0, 1, 2, ...
inline RawTensor f32_tensor(std::string name, std::vector<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>(i);
  std::vector<uint8_t> bytes(n * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return {std::move(name), "F32", std::move(dims), std::move(bytes)};
}

// Writes the bytes to a fresh file under the test temp dir and returns its path.
inline std::filesystem::path write_temp_file(const std::string& name, const std::vector<uint8_t>& bytes) {
  const auto dir = std::filesystem::temp_directory_path() / "batch_forge_tests";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

}  // namespace bf::testing
