// Per-sequence state: the paged KV cache (DESIGN.md "SeqState").
//
// KvPool pre-allocates, once, every page the process will use: --kv-memory bytes split into pages
// of page_size tokens, each page holding K and V of those tokens for every layer. Sequences take
// pages as they grow and give them back when they end; nothing is allocated while serving.
//
// Pages are reference counted so that sequences can share a prefix: fork() gives the new sequence
// the same full pages (no copy, no recomputation) and a private copy of a partly filled last page,
// since both continuations will write into it. A page is written only while one sequence holds
// it, so a shared page never changes.
//
// SeqState is the interface the scheduler sees for any family's state; for a transformer it is a
// page table and a token count. A recurrent family (Mamba) will hold a fixed-size state slot from
// a pool of its own through the same reserve / release / fork calls.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "batch_forge/backends/backend.h"
#include "batch_forge/models/language_model.h"

namespace bf {

class KvPool {
 public:
  // Throws Error(kInvalidArgument, "kv") when memory_bytes holds no page, and kIo when the backend
  // cannot allocate it.
  KvPool(Backend& backend, const KvLayout& layout, int64_t page_size, int64_t memory_bytes);
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  int64_t page_size() const { return page_size_; }
  int64_t n_pages() const { return n_pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_pages() const { return n_pages_ - free_pages(); }
  int64_t page_bytes() const { return page_size_ * layout_.bytes_per_token(); }
  const KvLayout& layout() const { return layout_; }
  const KvCacheView& view() const { return view_; }

  // A free page with one reference, or -1 when none is left.
  int32_t take();
  void retain(int32_t page);
  void release(int32_t page);
  int32_t references(int32_t page) const { return refs_[static_cast<size_t>(page)]; }
  // Copies the first `tokens` rows of every layer's K and V from page `from` into page `to`.
  void copy_page(int32_t from, int32_t to, int64_t tokens);

 private:
  KvLayout layout_;
  int64_t page_size_ = 0;
  int64_t n_pages_ = 0;
  std::unique_ptr<Buffer> k_, v_;
  KvCacheView view_;
  std::vector<int32_t> free_;  // a stack: the most recently freed page is reused first
  std::vector<int32_t> refs_;  // [n_pages]
};

class SeqState {
 public:
  explicit SeqState(KvPool& pool) : pool_(&pool) {}
  ~SeqState() { release(); }
  SeqState(SeqState&& other) noexcept;
  SeqState& operator=(SeqState&& other) noexcept;
  SeqState(const SeqState&) = delete;
  SeqState& operator=(const SeqState&) = delete;

  int64_t n_tokens() const { return n_tokens_; }  // tokens whose K/V are in the pages
  std::span<const int32_t> pages() const { return pages_; }
  // Pages needed to hold n_more further tokens, beyond those this sequence already has.
  int64_t pages_needed(int64_t n_more) const;

  // Makes room for n_more tokens. All or nothing: false (and no change) when the pool has too few
  // free pages. reserve() throws Error(kResourceExhausted, "kv") instead, naming the numbers.
  bool try_reserve(int64_t n_more);
  void reserve(int64_t n_more);
  // Records that the forward wrote n tokens (after a reserve covering them).
  void commit(int64_t n);
  // Forgets tokens past n (a shorter prefix is kept; pages no longer needed are released).
  void truncate(int64_t n);
  // A second sequence with the same tokens: full pages shared, a partial last page copied.
  // Throws Error(kResourceExhausted) when that copy finds no free page.
  SeqState fork() const;
  // A sequence holding the first n tokens of this one by sharing their pages; n must be a
  // multiple of the page size and at most n_tokens(). Never copies, never takes a page.
  SeqState share_prefix(int64_t n) const;
  // Returns every page to the pool; the state is empty afterwards and can be reused.
  void release();

 private:
  KvPool* pool_;
  std::vector<int32_t> pages_;
  int64_t n_tokens_ = 0;
};

}  // namespace bf
