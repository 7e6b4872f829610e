// The BPE model of a tokenizer.json: vocabulary, ranked merges, and the per-word merge loop.
// Words are merged with a priority queue of candidate pairs (lowest rank, then leftmost first),
// O(n log n) in the word's length, exactly as Hugging Face's Word::merge_all orders them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/json_fields.h"

namespace bf::text {

// Hash and equality that let unordered_map<std::string, ...> be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
 public:
  // Parses the "model" object; throws Error(kInvalidFile) naming the field for malformed input
  // (a merge that names a token outside the vocabulary, two tokens with one id) and
  // Error(kUnsupported) for dropout, which makes encoding random.
  static BpeModel from_json(const JsonField& model);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Every (token, id) of the vocabulary.
  const std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) → rank and merged id
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<int32_t> byte_ids_;  // <0xXX> token ids for byte_fallback; -1 where absent
};

}  // namespace bf::text
