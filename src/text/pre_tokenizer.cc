#include "text/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <variant>

#include "text/split_patterns.h"
#include "text/unicode.h"

namespace bf::text {
namespace {

// A stretch of a piece, in bytes, and whether the pattern matched it.
struct Span {
  size_t begin, end;
  bool is_match;
};

// What happens to the matched stretches when a piece is split (Hugging Face's
// SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const JsonField& f) {
  const std::string s = f.string();
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  f.fail(cat("unknown split behavior '", s,
             "'; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous"));
}

// The byte ranges a piece splits into, given spans that cover it in order.
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Span>& spans, Behavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  out.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans)
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      // The mirror image of kMergedWithPrevious: walk from the end.
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().first = it->begin;
        else
          out.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

void emit_split(const Piece& piece, const std::vector<Span>& spans, Behavior behavior, std::vector<Piece>& out) {
  for (const auto& [begin, end] : apply_behavior(spans, behavior)) {
    if (begin == end) continue;
    out.push_back(Piece{piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
  }
}

// Spans from a per-character predicate: every matching character is a match of its own.
std::vector<Span> char_spans(std::string_view text, const std::function<bool(char32_t)>& pred) {
  std::vector<Span> spans;
  size_t last = 0;
  char32_t cp = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = decode_utf8(text, i, &cp);
    if (pred(cp)) {
      if (last < i) spans.push_back({last, i, false});
      spans.push_back({i, i + n, true});
      last = i + n;
    }
    i += n;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

std::vector<Span> pattern_spans(std::string_view text, SplitPattern pattern) {
  const DecodedText d = decode_text(text);
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [b, e] : find_pattern_matches(pattern, d.cps)) {
    const size_t begin = d.offsets[b], end = d.offsets[e];
    if (last < begin) spans.push_back({last, begin, false});
    spans.push_back({begin, end, true});
    last = end;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

std::vector<Span> literal_spans(std::string_view text, std::string_view literal) {
  std::vector<Span> spans;
  size_t last = 0;
  for (size_t at = text.find(literal); at != std::string_view::npos; at = text.find(literal, at + literal.size())) {
    if (last < at) spans.push_back({last, at, false});
    spans.push_back({at, at + literal.size(), true});
    last = at + literal.size();
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

constexpr std::array<char32_t, 256> make_byte_table() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}
constexpr std::array<char32_t, 256> kByteToChar = make_byte_table();

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    for (Piece& piece : pieces) {
      if (add_prefix_space_ && piece.text[0] != ' ') piece.text.insert(piece.text.begin(), ' ');
      if (use_regex_)
        emit_split(piece, pattern_spans(piece.text, SplitPattern::kGpt2), Behavior::kIsolated, split);
      else
        split.push_back(std::move(piece));
    }
    for (Piece& piece : split) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (const char c : piece.text) append_utf8(mapped, kByteToChar[static_cast<uint8_t>(c)]);
      piece.text = std::move(mapped);
    }
    pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual_digits) : individual_digits_(individual_digits) {}

  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : pieces)
      emit_split(piece, char_spans(piece.text, is_number),
                 individual_digits_ ? Behavior::kIsolated : Behavior::kContiguous, out);
    pieces = std::move(out);
  }

 private:
  bool individual_digits_;
};

enum class PrependScheme { kAlways, kNever, kFirst };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    append_utf8(replacement_utf8_, replacement);
  }

  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      std::string text;
      text.reserve(piece.text.size() + 8);
      for (const char c : piece.text) {
        if (c == ' ')
          text += replacement_utf8_;
        else
          text += c;
      }
      const bool starts_with = text.starts_with(replacement_utf8_);
      if (!starts_with && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_start)))
        text.insert(0, replacement_utf8_);
      piece.text = std::move(text);
      if (split_) {
        const char32_t r = replacement_;
        emit_split(piece, char_spans(piece.text, [r](char32_t c) { return c == r; }), Behavior::kMergedWithNext, out);
      } else {
        out.push_back(std::move(piece));
      }
    }
    pieces = std::move(out);
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::variant<SplitPattern, std::string> pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : pieces) {
      std::vector<Span> spans = std::holds_alternative<SplitPattern>(pattern_)
                                    ? pattern_spans(piece.text, std::get<SplitPattern>(pattern_))
                                    : literal_spans(piece.text, std::get<std::string>(pattern_));
      if (invert_)
        for (Span& s : spans) s.is_match = !s.is_match;
      emit_split(piece, spans, behavior_, out);
    }
    pieces = std::move(out);
  }

 private:
  std::variant<SplitPattern, std::string> pattern_;
  Behavior behavior_;
  bool invert_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}

  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

char32_t single_char(const JsonField& f) {
  const std::string s = f.string();
  if (find_invalid_utf8(s)) f.fail("is not valid UTF-8");
  const DecodedText d = decode_text(s);
  if (d.cps.size() != 1) f.fail(cat("expected one character, got '", s, "'"));
  return d.cps[0];
}

std::unique_ptr<PreTokenizer> make_metaspace(const JsonField& config) {
  const char32_t replacement = single_char(config.at("replacement"));
  PrependScheme scheme = PrependScheme::kAlways;
  if (const auto f = config.maybe("prepend_scheme")) {
    const std::string s = f->string();
    if (s == "always")
      scheme = PrependScheme::kAlways;
    else if (s == "never")
      scheme = PrependScheme::kNever;
    else if (s == "first")
      scheme = PrependScheme::kFirst;
    else
      f->fail(cat("unknown prepend_scheme '", s, "'; expected always, never or first"));
  } else {
    // Files written before prepend_scheme existed say add_prefix_space instead.
    scheme = config.bool_or("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, config.bool_or("split", true));
}

std::unique_ptr<PreTokenizer> make_split(const JsonField& config) {
  const JsonField pattern = config.at("pattern");
  std::variant<SplitPattern, std::string> p;
  if (const auto regex = pattern.maybe("Regex")) {
    const std::string source = regex->string();
    const auto known = recognize_split_pattern(source);
    if (!known)
      regex->unsupported(cat("Split pre-tokenizer regex '", source,
                             "' is not one of the supported patterns (GPT-2, Llama-3, Qwen2); "
                             "arbitrary regexes are not implemented"));
    p = *known;
  } else if (const auto literal = pattern.maybe("String")) {
    const std::string s = literal->string();
    if (s.empty()) literal->unsupported("an empty Split pattern is not supported");
    p = s;
  } else {
    pattern.fail("expected {\"Regex\": ...} or {\"String\": ...}");
  }
  return std::make_unique<SplitPreTokenizer>(std::move(p), parse_behavior(config.at("behavior")),
                                             config.bool_or("invert", false));
}

}  // namespace

char32_t byte_to_char(uint8_t byte) { return kByteToChar[byte]; }

std::optional<uint8_t> char_to_byte(char32_t c) {
  static const auto inverse = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[kByteToChar[b]] = static_cast<int16_t>(b);
    return t;
  }();
  if (c >= inverse.size() || inverse[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[c]);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& config) {
  const std::string type = component_type(config);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(config.bool_or("add_prefix_space", true),
                                                   config.bool_or("use_regex", true));
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(config.bool_or("individual_digits", false));
  if (type == "Metaspace") return make_metaspace(config);
  if (type == "Split") return make_split(config);
  if (type == "Sequence") {
    const JsonField list = config.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_pre_tokenizer(list[i]));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  config.unsupported(cat("pre-tokenizer type '", type,
                         "' is not implemented; supported: ByteLevel, Digits, Metaspace, Split, Sequence"));
}

}  // namespace bf::text
