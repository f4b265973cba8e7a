/// \file
/// \brief Buffer: an owned block of device memory (cudaMalloc), with typed views and host <-> device copies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hmoe::cuda {

class Stream;

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes);  ///< uninitialized device memory on the current device
  ~Buffer();
  Buffer(Buffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const noexcept { return p_; }
  std::size_t bytes() const noexcept { return bytes_; }
  template <class T>
  T* as() const noexcept { return static_cast<T*>(p_); }

  /// Synchronous copies of `bytes` at byte offset `offset` (bounds checked, std::out_of_range). They run on
  /// the legacy default stream, which does not wait for a Stream (Streams are non-blocking): synchronize the
  /// Stream that wrote the data before downloading it.
  void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
  void download(void* host, std::size_t bytes, std::size_t offset = 0) const;
  /// Queued copies on s (host memory must stay valid until s reaches them; pinned memory makes them async).
  void upload_async(const void* host, std::size_t bytes, const Stream& s, std::size_t offset = 0);
  void download_async(void* host, std::size_t bytes, const Stream& s, std::size_t offset = 0) const;
  /// Sets every byte to `value` (0xFF poisons f32 and bf16 with NaN).
  void fill_bytes(std::uint8_t value);

  /// A new buffer holding a copy of count values at host.
  template <class T>
  static Buffer from(const T* host, std::size_t count) {
    Buffer b(count * sizeof(T));
    if (count) b.upload(host, count * sizeof(T));
    return b;
  }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace hmoe::cuda
