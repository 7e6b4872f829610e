#include "batch_forge/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

// "[mmap] model.st: cannot open: No such file or directory". ENOENT is the one failure a user
// fixes by pointing somewhere else, so it gets its own code.
[[noreturn]] void throw_os_error(const std::filesystem::path& path, std::string_view what, int err) {
  const ErrorCode code = err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo;
  throw Error(code, "mmap", cat(path.string(), ": ", what, ": ", std::system_category().message(err)));
}

// Closes the descriptor on every path out of open(); the mapping keeps the file alive by itself.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

}  // namespace

MappedFile MappedFile::open(const std::filesystem::path& path) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_os_error(path, "cannot open", errno);
  const FdCloser closer(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_os_error(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::kIo, "mmap", cat(path.string(), ": is a directory, not a file"));
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kIo, "mmap", cat(path.string(), ": is not a regular file"));

  MappedFile file;
  // mmap rejects a zero length, and an empty file has nothing to map anyway.
  if (st.st_size == 0) return file;

  const auto size = static_cast<size_t>(st.st_size);
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) throw_os_error(path, cat("cannot map ", size, " bytes"), errno);
  file.data_ = static_cast<const std::byte*>(addr);
  file.size_ = size;
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    MappedFile old(std::move(*this));  // unmapped when `old` goes out of scope
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::release(std::span<const std::byte> range) const {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(range.data()), end = begin + range.size();
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  const auto mine = reinterpret_cast<uintptr_t>(data_);
  if (first >= last || begin < mine || end > mine + size_) return;
  // A private, never written, read-only mapping: the pages are the file's, so dropping them only
  // means reading them again if asked. Advice: a refusal changes nothing either.
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  // munmap only fails for arguments we never produce; nothing useful can be done in a destructor.
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace bf
