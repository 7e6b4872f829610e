#include "text/added_tokens.h"

#include <algorithm>

#include "text/unicode.h"

namespace bf::text {
namespace {

// Start of the whitespace that ends text[0, end).
size_t trailing_space_begin(std::string_view text, size_t end) {
  size_t i = end;
  while (i > 0) {
    size_t start = i - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    char32_t cp;
    if (decode_utf8(text, start, &cp) == 0 || !is_white_space(cp)) break;
    i = start;
  }
  return i;
}

// End of the whitespace that starts at text[begin].
size_t leading_space_end(std::string_view text, size_t begin) {
  size_t i = begin;
  char32_t cp;
  while (i < text.size()) {
    const size_t n = decode_utf8(text, i, &cp);
    if (n == 0 || !is_white_space(cp)) break;
    i += n;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<std::string>& patterns, std::vector<const AddedToken*> tokens)
    : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t p = 0; p < patterns.size(); ++p) {
    if (patterns[p].empty()) continue;
    int32_t node = 0;
    for (const char c : patterns[p]) {
      const uint8_t byte = static_cast<uint8_t>(c);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        auto& children = nodes_[node].children;
        children.insert(std::lower_bound(children.begin(), children.end(), std::pair<uint8_t, int32_t>{byte, 0}),
                        {byte, next});
        nodes_.emplace_back();  // after the insert: `children` may dangle once nodes_ grows
      }
      node = next;
    }
    // Of two patterns that are the same string, the first one wins.
    if (nodes_[node].pattern < 0) nodes_[node].pattern = static_cast<int32_t>(p);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), std::pair<uint8_t, int32_t>{byte, 0});
  return it != children.end() && it->first == byte ? it->second : -1;
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::split(std::string_view text, bool allow_special) const {
  std::vector<Segment> out;
  size_t start_offset = 0;  // end of the last emitted segment
  for (size_t i = 0; i < text.size() && !tokens_.empty();) {
    // Longest pattern starting at i.
    int32_t node = 0, found = -1;
    size_t found_end = 0;
    for (size_t k = i; k < text.size(); ++k) {
      node = child(node, static_cast<uint8_t>(text[k]));
      if (node < 0) break;
      if (nodes_[node].pattern >= 0) {
        found = nodes_[node].pattern;
        found_end = k + 1;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    // The scan resumes after the match itself, even when stripping below widens the segment.
    size_t start = i, stop = found_end;
    i = found_end;
    const AddedToken* token = tokens_[found];
    if (token->special && !allow_special) continue;
    if (token->lstrip) start = std::max(trailing_space_begin(text, start), start_offset);
    if (token->rstrip) stop = leading_space_end(text, stop);
    if (start_offset < start) out.push_back(Segment{start_offset, start, nullptr});
    out.push_back(Segment{start, stop, token});
    start_offset = stop;
  }
  if (start_offset < text.size() || out.empty()) out.push_back(Segment{start_offset, text.size(), nullptr});
  return out;
}

}  // namespace bf::text
