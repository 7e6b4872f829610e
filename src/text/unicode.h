// UTF-8 and the few Unicode properties the tokenizer needs (letters, numbers, White_Space, NFC),
// from the generated tables in unicode_{classes,decompositions,compositions}.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bf::text {

bool is_letter(char32_t cp);       // general category L*
bool is_number(char32_t cp);       // general category N*
bool is_white_space(char32_t cp);  // the White_Space property

// Length of the well-formed UTF-8 sequence at s[i], storing its code point; 0 when the bytes there
// are not well-formed (overlong, surrogate, past U+10FFFF, truncated).
size_t decode_utf8(std::string_view s, size_t i, char32_t* cp);
void append_utf8(std::string& out, char32_t cp);
// Byte offset of the first ill-formed sequence, or nullopt for valid UTF-8.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Bytes to text the way Rust's String::from_utf8_lossy does it: each maximal ill-formed subpart
// becomes one U+FFFD (the Unicode "substitution of maximal subparts" practice).
std::string utf8_lossy(std::string_view bytes);

// Code points of valid UTF-8 text, with the byte offset where each starts; offsets has one more
// entry than cps (the text's length), so the bytes of cps[i..j) are offsets[i]..offsets[j].
struct DecodedText {
  std::vector<char32_t> cps;
  std::vector<uint32_t> offsets;
};
DecodedText decode_text(std::string_view valid_utf8);

// Unicode Normalization Form C of valid UTF-8 text.
std::string nfc(std::string_view valid_utf8);

}  // namespace bf::text
