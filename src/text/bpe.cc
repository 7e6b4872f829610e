#include "text/bpe.h"

#include <cstdio>
#include <queue>

#include "text/unicode.h"

namespace bf::text {
namespace {

// One symbol of a word being merged: a token id and the bytes of the word it covers, linked to
// its neighbours so that a merge is O(1). A merged-away symbol keeps len 0.
struct Symbol {
  int32_t id;
  int32_t prev, next;  // -1 at the ends
  uint32_t len;
};

struct Candidate {
  int32_t rank;
  int32_t pos;  // index of the left symbol
  int32_t new_id;
};
// std::priority_queue puts the "largest" on top; the lowest rank, then the leftmost, must win.
struct LowerPriority {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

std::string valid_token(const JsonField& f) {
  std::string s = f.string();
  if (const auto bad = find_invalid_utf8(s)) f.fail(cat("token is not valid UTF-8 at byte ", *bad));
  return s;
}

}  // namespace

BpeModel BpeModel::from_json(const JsonField& model) {
  BpeModel m;
  if (const auto dropout = model.maybe("dropout"); dropout && dropout->number() != 0.0)
    dropout->unsupported("BPE dropout makes encoding random and is not implemented; expected null or 0");
  m.continuing_subword_prefix_ = model.string_or("continuing_subword_prefix", "");
  m.end_of_word_suffix_ = model.string_or("end_of_word_suffix", "");
  m.fuse_unk_ = model.bool_or("fuse_unk", false);
  m.byte_fallback_ = model.bool_or("byte_fallback", false);
  m.ignore_merges_ = model.bool_or("ignore_merges", false);

  const JsonField vocab = model.at("vocab");
  if (!vocab.value().is_object()) vocab.fail("expected an object of token → id");
  std::unordered_map<int32_t, const std::string*> by_id;
  m.vocab_.reserve(vocab.value().size());
  for (const auto& [token, id_value] : vocab.value().items()) {
    const JsonField id_field(id_value, vocab.source(), cat(vocab.path(), "['", token, "']"));
    const int32_t id = id_field.id();
    if (find_invalid_utf8(token)) id_field.fail("token is not valid UTF-8");
    const auto [it, inserted] = m.vocab_.emplace(token, id);
    if (!inserted) id_field.fail("token appears twice");
    const auto [other, fresh] = by_id.emplace(id, &it->first);
    if (!fresh) id_field.fail(cat("id ", id, " is also the id of '", *other->second, "'"));
  }

  const JsonField merges = model.at("merges");
  const size_t n_merges = merges.array_size();
  m.merges_.reserve(n_merges);
  const size_t prefix_len = m.continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < n_merges; ++rank) {
    const JsonField entry = merges[rank];
    std::string a, b;
    if (entry.value().is_string()) {
      // "a b": exactly one space, as Hugging Face splits it.
      const std::string line = valid_token(entry);
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        entry.fail(cat("merge '", line, "' is not two tokens separated by one space"));
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (entry.value().is_array()) {
      if (entry.array_size() != 2) entry.fail("expected a pair of tokens [left, right]");
      a = valid_token(entry[0]);
      b = valid_token(entry[1]);
    } else {
      entry.fail("expected \"left right\" or [left, right]");
    }
    const auto id_of = [&](const std::string& token) {
      const auto it = m.vocab_.find(token);
      if (it == m.vocab_.end()) entry.fail(cat("merge refers to '", token, "', which is not in model.vocab"));
      return it->second;
    };
    const int32_t a_id = id_of(a), b_id = id_of(b);
    const int32_t new_id = id_of(a + b.substr(std::min(prefix_len, b.size())));
    // A repeated pair takes its last rank, as in Hugging Face's merge map.
    m.merges_[pair_key(a_id, b_id)] = Merge{static_cast<int32_t>(rank), new_id};
  }

  if (const auto unk = model.maybe("unk_token")) {
    const std::string token = unk->string();
    const auto it = m.vocab_.find(token);
    if (it == m.vocab_.end()) unk->fail(cat("unk_token '", token, "' is not in model.vocab"));
    m.unk_id_ = it->second;
  }
  if (m.byte_fallback_) {
    m.byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (const auto it = m.vocab_.find(std::string_view(name)); it != m.vocab_.end()) m.byte_ids_[b] = it->second;
    }
  }
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }

  // Initial symbols: one per character, with the unknown/byte-fallback handling of Hugging Face's
  // BPE::merge_word (including its order: a pending unk is flushed only before a known character).
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int32_t id, uint32_t len) {
    const int32_t n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back(Symbol{id, n - 1, -1, len});
  };
  int32_t unk_pending = -1;  // a pending unknown token: its id, and the bytes it covers
  uint32_t unk_len = 0;
  std::string decorated;
  char32_t cp;
  for (size_t i = 0; i < word.size();) {
    size_t n = decode_utf8(word, i, &cp);
    if (n == 0) n = 1;  // pieces are valid UTF-8; never loop forever
    const bool is_first = i == 0, is_last = i + n == word.size();
    std::string_view s = word.substr(i, n);
    if ((!is_first && !continuing_subword_prefix_.empty()) || (is_last && !end_of_word_suffix_.empty())) {
      decorated.assign(is_first ? "" : continuing_subword_prefix_);
      decorated += s;
      if (is_last) decorated += end_of_word_suffix_;
      s = decorated;
    }
    i += n;
    const uint32_t byte_len = static_cast<uint32_t>(n);

    if (const auto it = vocab_.find(s); it != vocab_.end()) {
      if (unk_pending >= 0) {
        add(unk_pending, unk_len);
        unk_pending = -1;
      }
      add(it->second, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (const char c : s) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (const char c : s) add(byte_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (unk_pending >= 0 && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_pending >= 0) add(unk_pending, unk_len);
        unk_pending = *unk_id_;
        unk_len = byte_len;
      }
    }
    // Without an unk_token an unknown character produces no token, as in Hugging Face.
  }
  if (unk_pending >= 0) add(unk_pending, unk_len);

  std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
      queue.push(Candidate{m->rank, static_cast<int32_t>(i), m->new_id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const Symbol right = symbols[right_pos];
    // Skip entries that went stale when a neighbour merged first.
    const Merge* m = find_merge(left.id, right.id);
    if (!m || m->new_id != top.new_id) continue;

    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    symbols[right_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;

    if (left.prev >= 0)
      if (const Merge* pm = find_merge(symbols[left.prev].id, left.id))
        queue.push(Candidate{pm->rank, left.prev, pm->new_id});
    if (left.next >= 0)
      if (const Merge* nm = find_merge(left.id, symbols[left.next].id))
        queue.push(Candidate{nm->rank, top.pos, nm->new_id});
  }

  for (const Symbol& s : symbols)
    if (s.len != 0) ids.push_back(s.id);
}

}  // namespace bf::text
