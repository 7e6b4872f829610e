// A read-only memory mapping of a whole file. Move-only; unmaps on destruction. Pages are read
// by the kernel on first touch, so mapping a large file costs no resident memory until its bytes
// are used.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace bf {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws Error(kNotFound) when the path does not exist, Error(kIo) when it cannot be opened or
  // mapped (the message names the path and the OS reason). An empty file maps to an empty span.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

  // Drops the pages wholly inside `range` (a part of bytes()) from this process's resident set:
  // for data read once and kept in another form (a tensor quantized while loading). The page
  // cache keeps them; reading them again faults them back in, so the bytes never change.
  void release(std::span<const std::byte> range) const;

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bf
