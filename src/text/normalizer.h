// Normalizers: rewrite each stretch of input text between added tokens before pre-tokenization.
// Implemented: NFC, Replace (literal pattern), Prepend, Sequence.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "text/json_fields.h"

namespace bf::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

// Throws Error(kUnsupported) for a normalizer type or option it does not implement.
std::unique_ptr<Normalizer> make_normalizer(const JsonField& config);

// Every non-overlapping occurrence of `pattern` (non-empty), leftmost first, replaced by `content`.
std::string replace_all(std::string_view text, std::string_view pattern, std::string_view content);

// The literal of a {"String": ...} pattern; kUnsupported for {"Regex": ...}, which is not
// implemented for Replace.
std::string literal_pattern(const JsonField& pattern, std::string_view component);

}  // namespace bf::text
