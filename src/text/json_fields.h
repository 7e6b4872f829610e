// Typed access to tokenizer.json fields. Every failure names the source and the field's path
// ("model.merges[12]") so a user can find the broken spot:
//   [tokenizer] tokenizer.json: model.dropout: expected a number or null
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "batch_forge/core/error.h"

namespace bf::text {

using Json = nlohmann::json;

// Where a JSON value sits: the file it came from and the path to the value.
class JsonField {
 public:
  JsonField(const Json& value, std::string_view source, std::string path)
      : value_(&value), source_(source), path_(std::move(path)) {}

  const Json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  std::string_view source() const { return source_; }

  [[noreturn]] void fail(std::string_view what) const {
    throw Error(ErrorCode::kInvalidFile, "tokenizer", cat(source_, ": ", path_, ": ", what));
  }
  [[noreturn]] void unsupported(std::string_view what) const {
    throw Error(ErrorCode::kUnsupported, "tokenizer", cat(source_, ": ", path_, ": ", what));
  }

  bool is_null() const { return value_->is_null(); }
  bool has(std::string_view key) const { return value_->is_object() && value_->contains(key); }

  // The member `key` of this object; fails when this is not an object or `key` is absent.
  JsonField at(std::string_view key) const {
    if (!value_->is_object()) fail("expected an object");
    const auto it = value_->find(key);
    if (it == value_->end()) fail(cat("has no field '", key, "'"));
    return JsonField(*it, source_, child_path(key));
  }
  // The member `key`, or nullopt when it is absent or null.
  std::optional<JsonField> maybe(std::string_view key) const {
    if (!value_->is_object()) fail("expected an object");
    const auto it = value_->find(key);
    if (it == value_->end() || it->is_null()) return std::nullopt;
    return JsonField(*it, source_, child_path(key));
  }
  JsonField operator[](size_t index) const {
    return JsonField(value_->at(index), source_, cat(path_, "[", index, "]"));
  }
  size_t array_size() const {
    if (!value_->is_array()) fail("expected an array");
    return value_->size();
  }

  std::string string() const {
    if (!value_->is_string()) fail("expected a string");
    return value_->get<std::string>();
  }
  bool boolean() const {
    if (!value_->is_boolean()) fail("expected true or false");
    return value_->get<bool>();
  }
  int64_t integer() const {
    if (!value_->is_number_integer()) fail("expected an integer");
    return value_->get<int64_t>();
  }
  double number() const {
    if (!value_->is_number()) fail("expected a number");
    return value_->get<double>();
  }
  // A token id: an integer in [0, 2^31).
  int32_t id() const {
    const int64_t v = integer();
    if (v < 0 || v > INT32_MAX) fail(cat("id ", v, " is out of range [0, 2147483647]"));
    return static_cast<int32_t>(v);
  }

  // Optional members with defaults (absent or null gives the default).
  std::string string_or(std::string_view key, std::string_view fallback) const {
    const auto f = maybe(key);
    return f ? f->string() : std::string(fallback);
  }
  bool bool_or(std::string_view key, bool fallback) const {
    const auto f = maybe(key);
    return f ? f->boolean() : fallback;
  }

 private:
  std::string child_path(std::string_view key) const { return path_.empty() ? std::string(key) : cat(path_, ".", key); }

  const Json* value_;
  std::string_view source_;
  std::string path_;
};

// The "type" field of a component object, e.g. "ByteLevel".
inline std::string component_type(const JsonField& f) { return f.at("type").string(); }

}  // namespace bf::text
