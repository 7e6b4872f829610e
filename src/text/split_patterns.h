// The pre-tokenizer regexes of the byte-level BPE tokenizers in use, as hand-written scanners.
// Hugging Face runs them with Oniguruma; std::regex has no \p{L}, so instead of a regex engine the
// few known pattern strings are recognized exactly and each runs as a scanner that returns what the
// regex's leftmost-first find_iter would. Any other pattern is refused (kUnsupported) upstream.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace bf::text {

enum class SplitPattern {
  kGpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,  // (?i:'s|...|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,   // as kLlama3 with \p{N} (one digit) in place of \p{N}{1,3}
};

// The pattern a regex source string is, if it is exactly one of the known ones.
std::optional<SplitPattern> recognize_split_pattern(std::string_view regex);
std::string_view split_pattern_source(SplitPattern pattern);

// Non-overlapping matches [begin, end) in code-point indices, in order.
std::vector<std::pair<size_t, size_t>> find_pattern_matches(SplitPattern pattern, std::span<const char32_t> cps);

}  // namespace bf::text
