/// \file
/// \brief Device, Stream, Event and Buffer: thin RAII over the CUDA runtime, with every call checked.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "check.hpp"
#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/device.hpp"
#include "hmoe/cuda/stream.hpp"

namespace hmoe::cuda {

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error so later calls report their own
    return 0;
  }
  return n;
}

Device::Device(int index) : index_(index) {
  const int n = device_count();
  if (index < 0 || index >= n)
    throw CudaError("hmoe::cuda: no CUDA device " + std::to_string(index) + " (" + std::to_string(n) +
                    " visible)");
}

void Device::make_current() const { HMOE_CUDA_CHECK(cudaSetDevice(index_)); }

std::string Device::name() const {
  cudaDeviceProp p{};
  HMOE_CUDA_CHECK(cudaGetDeviceProperties(&p, index_));
  return p.name;
}

std::size_t Device::total_memory() const {
  cudaDeviceProp p{};
  HMOE_CUDA_CHECK(cudaGetDeviceProperties(&p, index_));
  return p.totalGlobalMem;
}

std::size_t Device::free_memory() const {
  int cur = 0;
  HMOE_CUDA_CHECK(cudaGetDevice(&cur));
  HMOE_CUDA_CHECK(cudaSetDevice(index_));
  std::size_t free = 0, total = 0;
  const cudaError_t e = cudaMemGetInfo(&free, &total);
  HMOE_CUDA_CHECK(cudaSetDevice(cur));
  HMOE_CUDA_CHECK(e);
  return free;
}

int Device::compute_capability() const {
  int major = 0, minor = 0;
  HMOE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index_));
  HMOE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index_));
  return 10 * major + minor;
}

int Device::multiprocessors() const {
  int n = 0;
  HMOE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, index_));
  return n;
}

void synchronize() { HMOE_CUDA_CHECK(cudaDeviceSynchronize()); }

// ---- Stream

Stream::Stream() : s_(nullptr) {
  cudaStream_t s{};
  HMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  s_ = s;
}

Stream::~Stream() {
  if (s_) (void)cudaStreamDestroy(static_cast<cudaStream_t>(s_));  // destructors must not throw
}

Stream& Stream::operator=(Stream&& o) noexcept {
  std::swap(s_, o.s_);
  return *this;
}

void Stream::synchronize() const { HMOE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s_))); }

// ---- Event

Event::Event() : e_(nullptr) {
  cudaEvent_t e{};
  HMOE_CUDA_CHECK(cudaEventCreate(&e));
  e_ = e;
}

Event::~Event() {
  if (e_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(e_));
}

Event& Event::operator=(Event&& o) noexcept {
  std::swap(e_, o.e_);
  return *this;
}

void Event::record(const Stream& s) {
  // Inside a stream capture the record becomes an event node of the graph (cudaEventRecordExternal): every
  // launch then records the event at that point, so a host waiting on it sees the work before the node done,
  // not the whole graph (the decode step's per-layer graphs signal the routing copy this way).
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  HMOE_CUDA_CHECK(cudaStreamIsCapturing(detail::native(s), &capture));
  const unsigned flags = capture == cudaStreamCaptureStatusActive ? cudaEventRecordExternal : cudaEventRecordDefault;
  HMOE_CUDA_CHECK(cudaEventRecordWithFlags(static_cast<cudaEvent_t>(e_), detail::native(s), flags));
}

void Event::synchronize() const { HMOE_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(e_))); }

bool Event::ready() const {
  const cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(e_));
  if (e == cudaErrorNotReady) return false;
  HMOE_CUDA_CHECK(e);
  return true;
}

void Event::wait_in(const Stream& s) const {
  HMOE_CUDA_CHECK(cudaStreamWaitEvent(detail::native(s), static_cast<cudaEvent_t>(e_), 0));
}

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  HMOE_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.e_), static_cast<cudaEvent_t>(e_)));
  return ms;
}

// ---- Buffer

Buffer::Buffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes) HMOE_CUDA_CHECK(cudaMalloc(&p_, bytes));
}

Buffer::~Buffer() {
  if (p_) (void)cudaFree(p_);
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

namespace {
void check_range(std::size_t have, std::size_t bytes, std::size_t offset, const char* what) {
  if (offset > have || bytes > have - offset)
    throw std::out_of_range(std::string("hmoe::cuda::Buffer::") + what + ": " + std::to_string(bytes) +
                            " bytes at offset " + std::to_string(offset) + " exceed the buffer's " +
                            std::to_string(have));
}
}  // namespace

void Buffer::upload(const void* host, std::size_t bytes, std::size_t offset) {
  check_range(bytes_, bytes, offset, "upload");
  if (bytes) {
    HMOE_CUDA_CHECK(cudaMemcpy(static_cast<char*>(p_) + offset, host, bytes, cudaMemcpyHostToDevice));
    // From pageable memory cudaMemcpy may return before its DMA lands, and a non-blocking Stream does not wait
    // for the legacy stream: wait here, so that work queued next on any Stream sees the data.
    HMOE_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  }
}

void Buffer::download(void* host, std::size_t bytes, std::size_t offset) const {
  check_range(bytes_, bytes, offset, "download");
  if (bytes) HMOE_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(p_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void Buffer::upload_async(const void* host, std::size_t bytes, const Stream& s, std::size_t offset) {
  check_range(bytes_, bytes, offset, "upload_async");
  if (bytes)
    HMOE_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(p_) + offset, host, bytes, cudaMemcpyHostToDevice,
                                    detail::native(s)));
}

void Buffer::download_async(void* host, std::size_t bytes, const Stream& s, std::size_t offset) const {
  check_range(bytes_, bytes, offset, "download_async");
  if (bytes)
    HMOE_CUDA_CHECK(cudaMemcpyAsync(host, static_cast<const char*>(p_) + offset, bytes, cudaMemcpyDeviceToHost,
                                    detail::native(s)));
}

void Buffer::fill_bytes(std::uint8_t value) {
  if (bytes_) {
    HMOE_CUDA_CHECK(cudaMemset(p_, value, bytes_));
    HMOE_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));  // cudaMemset is asynchronous for device memory
  }
}

}  // namespace hmoe::cuda
