// Pre-tokenizers: split normalized text into the pieces ("words") that BPE encodes one at a time,
// and for ByteLevel map each byte to its printable stand-in character. Implemented, with the exact
// behaviour of Hugging Face tokenizers: ByteLevel, Digits, Metaspace, Split (the known patterns of
// split_patterns.h, or a literal string) and Sequence.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/json_fields.h"

namespace bf::text {

struct Piece {
  std::string text;      // valid UTF-8
  bool at_start = true;  // begins at offset 0 of the input text (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by the pieces it splits into; empty pieces are dropped.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

// Throws Error(kUnsupported) for a type or an option it does not implement, kInvalidFile for a
// malformed object.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& config);

// The byte → character table of byte-level BPE: printable bytes stand for themselves, the others
// for U+0100 onwards, so every byte string becomes printable text.
char32_t byte_to_char(uint8_t byte);
// The inverse; nullopt for a character that stands for no byte.
std::optional<uint8_t> char_to_byte(char32_t c);

}  // namespace bf::text
