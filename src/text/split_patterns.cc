#include "text/split_patterns.h"

#include <algorithm>

#include "text/unicode.h"

namespace bf::text {
namespace {

constexpr std::string_view kGpt2Source =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Source =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Source =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Every code point is exactly one of these in the patterns: \p{L}, \p{N}, \s, or none of them.
enum class Class : uint8_t { kLetter, kNumber, kSpace, kOther };

Class classify(char32_t c) {
  if (is_letter(c)) return Class::kLetter;
  if (is_number(c)) return Class::kNumber;
  if (is_white_space(c)) return Class::kSpace;
  return Class::kOther;
}

bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }

char32_t ascii_lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

class Scanner {
 public:
  explicit Scanner(std::span<const char32_t> cps) : cps_(cps), classes_(cps.size()) {
    for (size_t i = 0; i < cps.size(); ++i) classes_[i] = classify(cps[i]);
  }

  size_t size() const { return cps_.size(); }

  // End of the match of the GPT-2 pattern that starts at i (every position starts one).
  size_t gpt2_at(size_t i) const {
    if (const size_t end = contraction_at(i, /*ignore_case=*/false)) return end;
    for (const Class c : {Class::kLetter, Class::kNumber, Class::kOther}) {  // ` ?X+` in pattern order
      if (cps_[i] == ' ' && is(i + 1, c)) return run_end(i + 1, c);
      if (is(i, c)) return run_end(i, c);
    }
    return trailing_space_end(i);
  }

  // End of the match of the Llama-3 pattern (max_digits 3) or the Qwen2 one (max_digits 1) at i.
  size_t llama3_at(size_t i, size_t max_digits) const {
    if (const size_t end = contraction_at(i, /*ignore_case=*/true)) return end;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    const bool may_lead = !is_newline(cps_[i]) && (is(i, Class::kSpace) || is(i, Class::kOther));
    if (may_lead && is(i + 1, Class::kLetter)) return run_end(i + 1, Class::kLetter);
    if (is(i, Class::kLetter)) return run_end(i, Class::kLetter);
    // \p{N}{1,3}
    if (is(i, Class::kNumber)) return std::min(run_end(i, Class::kNumber), i + max_digits);
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t other = size();
    if (cps_[i] == ' ' && is(i + 1, Class::kOther))
      other = i + 1;
    else if (is(i, Class::kOther))
      other = i;
    if (other != size()) {
      size_t end = run_end(other, Class::kOther);
      while (end < size() && is_newline(cps_[end])) ++end;
      return end;
    }
    // \s*[\r\n]+ : the greedy \s* gives back characters until a newline follows it, so the match
    // ends just after the last newline of the whitespace run.
    const size_t run = run_end(i, Class::kSpace);
    for (size_t k = run; k > i; --k)
      if (is_newline(cps_[k - 1])) return k;
    return trailing_space_end(i);
  }

 private:
  bool is(size_t i, Class c) const { return i < size() && classes_[i] == c; }

  size_t run_end(size_t i, Class c) const {
    while (i < size() && classes_[i] == c) ++i;
    return i;
  }

  // 's|'t|'re|'ve|'m|'ll|'d (ASCII case folding only: Oniguruma does not fold U+017F to 's' here).
  size_t contraction_at(size_t i, bool ignore_case) const {
    if (cps_[i] != '\'' || i + 1 >= size()) return 0;
    const auto at = [&](size_t k) { return ignore_case ? ascii_lower(cps_[k]) : cps_[k]; };
    const char32_t a = at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 >= size()) return 0;
    const char32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
  }

  // \s+(?!\S)|\s+ at a whitespace character: the run without its last character when a non-space
  // follows it (that character then leads the next word), else the whole run.
  size_t trailing_space_end(size_t i) const {
    const size_t run = run_end(i, Class::kSpace);
    if (run == size()) return run;
    if (run - 1 > i) return run - 1;
    return run;
  }

  std::span<const char32_t> cps_;
  std::vector<Class> classes_;
};

}  // namespace

std::optional<SplitPattern> recognize_split_pattern(std::string_view regex) {
  if (regex == kGpt2Source) return SplitPattern::kGpt2;
  if (regex == kLlama3Source) return SplitPattern::kLlama3;
  if (regex == kQwen2Source) return SplitPattern::kQwen2;
  return std::nullopt;
}

std::string_view split_pattern_source(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2: return kGpt2Source;
    case SplitPattern::kLlama3: return kLlama3Source;
    case SplitPattern::kQwen2: return kQwen2Source;
  }
  return {};
}

std::vector<std::pair<size_t, size_t>> find_pattern_matches(SplitPattern pattern, std::span<const char32_t> cps) {
  const Scanner scanner(cps);
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t i = 0; i < cps.size();) {
    size_t end = 0;
    switch (pattern) {
      case SplitPattern::kGpt2: end = scanner.gpt2_at(i); break;
      case SplitPattern::kLlama3: end = scanner.llama3_at(i, 3); break;
      case SplitPattern::kQwen2: end = scanner.llama3_at(i, 1); break;
    }
    matches.emplace_back(i, end);
    i = end;
  }
  return matches;
}

}  // namespace bf::text
