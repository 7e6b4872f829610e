#include "batch_forge/io/safetensors_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>

#include "batch_forge/core/error.h"
#include "batch_forge/io/model_file.h"

namespace bf {
namespace {

constexpr std::string_view kComponent = "safetensors";

[[noreturn]] void bad_spec(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, kComponent, what); }

std::string system_message(int err) { return std::generic_category().message(err); }

// Bytes of a tensor, refusing what the format cannot hold.
uint64_t spec_bytes(const TensorSpec& t) {
  const DTypeInfo& info = dtype_info(t.dtype);
  if (info.safetensors_name.empty())
    bad_spec(cat("tensor ", json_quote(t.name), " has dtype ", info.name,
                 ", which safetensors cannot store (write block-quantized bytes as U8)"));
  uint64_t n = 1;
  for (int64_t d : t.dims) {
    if (d < 0) bad_spec(cat("tensor ", json_quote(t.name), " has a negative dimension (", d, ")"));
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      bad_spec(cat("tensor ", json_quote(t.name), ": element count overflows 64 bits"));
  }
  const std::optional<uint64_t> bytes = dtype_bytes(t.dtype, n);
  if (!bytes) bad_spec(cat("tensor ", json_quote(t.name), ": byte count overflows 64 bits"));
  return *bytes;
}

void append_entry(std::string& json, std::string_view name, std::string_view dtype, std::span<const int64_t> dims,
                  uint64_t begin, uint64_t end) {
  json += json_quote(name);
  json += ":{\"dtype\":";
  json += json_quote(dtype);
  json += ",\"shape\":[";
  for (size_t i = 0; i < dims.size(); ++i) json += cat(i ? "," : "", dims[i]);
  json += cat("],\"data_offsets\":[", begin, ",", end, "]}");
}

}  // namespace

std::string json_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[static_cast<unsigned char>(c) >> 4];
          out += kHex[static_cast<unsigned char>(c) & 0xF];
        } else {
          out += c;  // UTF-8 passes through, as with ensure_ascii=False
        }
    }
  }
  return out + "\"";
}

SafetensorsLayout plan_safetensors(std::span<const TensorSpec> tensors, const SafetensorsMetadata& metadata) {
  SafetensorsLayout layout;
  std::string json = "{";
  if (!metadata.empty()) {
    std::set<std::string_view> keys;
    json += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      const auto& [key, value] = metadata[i];
      if (!keys.insert(key).second) bad_spec(cat("metadata key ", json_quote(key), " appears twice"));
      json += cat(i ? "," : "", json_quote(key), ":", json_quote(value));
    }
    json += "}";
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;  // in the data section, which itself starts 64-aligned in the file
  int n_pad = 0;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") bad_spec(cat("invalid tensor name ", json_quote(t.name)));
    if (t.name.starts_with(kPaddingTensorPrefix))
      bad_spec(cat("tensor name ", json_quote(t.name), " uses the reserved prefix ", kPaddingTensorPrefix));
    if (!names.insert(t.name).second) bad_spec(cat("tensor name ", json_quote(t.name), " appears twice"));
    const uint64_t nbytes = spec_bytes(t);
    const uint64_t gap = (kSafetensorsAlignment - offset % kSafetensorsAlignment) % kSafetensorsAlignment;
    if (gap) {
      if (json.size() > 1) json += ",";
      const int64_t gap_dims[] = {static_cast<int64_t>(gap)};
      append_entry(json, cat(kPaddingTensorPrefix, n_pad++, "__"), "U8", gap_dims, offset, offset + gap);
      offset += gap;
    }
    if (json.size() > 1) json += ",";
    if (uint64_t end = 0; __builtin_add_overflow(offset, nbytes, &end))
      bad_spec(cat("tensor ", json_quote(t.name), ": file size overflows 64 bits"));
    append_entry(json, t.name, dtype_info(t.dtype).safetensors_name, t.dims, offset, offset + nbytes);
    layout.gap_before.push_back(gap);
    layout.nbytes.push_back(nbytes);
    offset += nbytes;
  }
  json += "}";
  json.append((kSafetensorsAlignment - (8 + json.size()) % kSafetensorsAlignment) % kSafetensorsAlignment, ' ');

  const uint64_t n = json.size();
  layout.head.resize(8);
  for (int i = 0; i < 8; ++i) layout.head[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  layout.head += json;
  layout.file_bytes = layout.head.size() + offset;
  return layout;
}

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path, std::vector<TensorSpec> tensors,
                                     const SafetensorsMetadata& metadata)
    : path_(std::move(path)), tensors_(std::move(tensors)), layout_(plan_safetensors(tensors_, metadata)) {
  tmp_path_ = path_;
  tmp_path_ += cat(".tmp", ::getpid());
  file_.reset(std::fopen(tmp_path_.c_str(), "wb"));
  if (!file_)
    throw Error(ErrorCode::kIo, kComponent,
                cat("cannot write ", path_.string(), ": creating ", tmp_path_.string(), " failed (",
                    system_message(errno), ")"));
  write_bytes(layout_.head.data(), layout_.head.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (committed_) return;
  file_.reset();
  std::error_code ignored;  // best effort: the error that brought us here is the one to report
  std::filesystem::remove(tmp_path_, ignored);
}

const TensorSpec* SafetensorsWriter::next() const { return next_ < tensors_.size() ? &tensors_[next_] : nullptr; }

void SafetensorsWriter::write_bytes(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, file_.get()) != n)
    throw Error(ErrorCode::kIo, kComponent,
                cat("writing ", tmp_path_.string(), " failed (", system_message(errno), ")"));
}

void SafetensorsWriter::write_tensor(std::span<const std::byte> bytes) {
  BF_CHECK(file_ && next_ < tensors_.size(), "write_tensor after the last tensor of ", path_.string());
  BF_CHECK(bytes.size() == layout_.nbytes[next_], "tensor '", tensors_[next_].name, "' takes ", layout_.nbytes[next_],
           " bytes; got ", bytes.size());
  static constexpr char kZeros[kSafetensorsAlignment] = {};
  write_bytes(kZeros, layout_.gap_before[next_]);
  write_bytes(bytes.data(), bytes.size());
  ++next_;
}

uint64_t SafetensorsWriter::commit() {
  BF_CHECK(file_ && next_ == tensors_.size(), "commit of ", path_.string(), " after ", next_, " of ", tensors_.size(),
           " tensors");
  std::FILE* f = file_.release();
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !flushed)
    throw Error(ErrorCode::kIo, kComponent,
                cat("writing ", tmp_path_.string(), " failed (", system_message(flushed ? errno : err), ")"));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec)
    throw Error(ErrorCode::kIo, kComponent,
                cat("cannot move ", tmp_path_.string(), " to ", path_.string(), " (", ec.message(), ")"));
  committed_ = true;
  return layout_.file_bytes;
}

std::vector<std::byte> build_safetensors(std::span<const TensorData> tensors, const SafetensorsMetadata& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorData& t : tensors) specs.push_back(t.spec);
  const SafetensorsLayout layout = plan_safetensors(specs, metadata);
  std::vector<std::byte> out(layout.file_bytes);  // zero-filled: the fillers need no writing
  const auto* head = reinterpret_cast<const std::byte*>(layout.head.data());
  std::copy(head, head + layout.head.size(), out.begin());
  size_t at = layout.head.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    BF_CHECK(tensors[i].bytes.size() == layout.nbytes[i], "tensor '", specs[i].name, "' takes ", layout.nbytes[i],
             " bytes; got ", tensors[i].bytes.size());
    at += layout.gap_before[i];
    std::copy(tensors[i].bytes.begin(), tensors[i].bytes.end(), out.begin() + at);
    at += tensors[i].bytes.size();
  }
  return out;
}

uint64_t write_safetensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                           const SafetensorsMetadata& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorData& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter writer(path, std::move(specs), metadata);
  for (const TensorData& t : tensors) writer.write_tensor(t.bytes);
  return writer.commit();
}

}  // namespace bf
