// Added tokens (tokenizer.json "added_tokens"): strings such as "<|im_end|>" that are cut out of
// the text before normalization and BPE and map straight to their id.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bf::text {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;     // skipped by decode(skip_special); not matched when special tokens are off
  bool lstrip = false;      // the match also takes the whitespace before it
  bool rstrip = false;      // ... and after it
  bool normalized = false;  // matched in the normalized text rather than the raw text
};

// Finds added tokens in text the way Hugging Face does: leftmost-longest matches over all
// patterns, scanning on after each match.
class AddedTokenMatcher {
 public:
  // patterns[i] is matched as written (already normalized when the token is); tokens[i] says what
  // it stands for.
  AddedTokenMatcher() = default;
  AddedTokenMatcher(const std::vector<std::string>& patterns, std::vector<const AddedToken*> tokens);

  struct Segment {
    size_t begin, end;                  // bytes of the text
    const AddedToken* token = nullptr;  // nullptr: ordinary text
  };
  // Segments in order; ordinary stretches may be empty only when the text is. With
  // allow_special false, special tokens are not matched (they stay ordinary text).
  std::vector<Segment> split(std::string_view text, bool allow_special) const;

  bool empty() const { return tokens_.empty(); }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t pattern = -1;                               // a pattern ends here
  };
  int32_t child(int32_t node, uint8_t byte) const;

  std::vector<Node> nodes_;
  std::vector<const AddedToken*> tokens_;
};

}  // namespace bf::text
