/// \file
/// \brief A read-only memory mapping of a whole file (POSIX mmap), owned RAII-style.
///
/// Model weights are read in place from the mapping rather than copied: the kernel pages them in on demand and
/// can drop them under memory pressure, and opening a multi-gigabyte model costs nothing up front.
/// The mapping is private and read-only, so nothing hmoe does can modify the file.
///
/// Caveat that no reader can guard against: if another process truncates the file while it is mapped, touching
/// the lost pages raises SIGBUS.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hmoe::io {

class MappedFile {
 public:
  MappedFile() = default;

  /// Maps all of `path`. Throws std::system_error (whose what() names the path) when the file cannot be
  /// opened, is not a regular file, or cannot be mapped. An empty file gives an empty mapping.
  explicit MappedFile(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, "cannot open");
    // The descriptor is only needed to create the mapping; the mapping keeps the file alive by itself.
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(path, "cannot stat");
    if (!S_ISREG(st.st_mode)) fail(path, "not a regular file", std::make_error_code(std::errc::invalid_argument));
    if (static_cast<std::uintmax_t>(st.st_size) > std::numeric_limits<std::size_t>::max())
      fail(path, "too large to map", std::make_error_code(std::errc::file_too_large));
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return;  // mmap refuses length 0; an empty span describes the file just as well
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      size_ = 0;
      fail(path, "cannot map");
    }
    data_ = static_cast<const std::byte*>(p);
  }

  MappedFile(MappedFile&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  [[noreturn]] static void fail(const std::filesystem::path& path, const char* what,
                                std::error_code ec = std::error_code(errno, std::generic_category())) {
    throw std::system_error(ec, path.string() + ": " + what);
  }

  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hmoe::io
