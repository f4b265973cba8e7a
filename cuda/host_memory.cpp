/// \file
/// \brief PinnedBuffer, copy_async, launch_host_function and Graph: thin RAII over the CUDA runtime, every call
/// checked (CudaError); destructors release without throwing.
#include <cuda_runtime.h>

#include <stdexcept>
#include <utility>

#include "check.hpp"
#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/stream.hpp"

namespace hmoe::cuda {

// ---- PinnedBuffer

PinnedBuffer::PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes) HMOE_CUDA_CHECK(cudaHostAlloc(&p_, bytes, cudaHostAllocDefault));
}

PinnedBuffer::~PinnedBuffer() {
  if (p_) (void)cudaFreeHost(p_);  // destructors must not throw
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

// ---- copies and host functions

void copy_async(void* dst, const void* src, std::size_t bytes, const Stream& s) {
  if (bytes) HMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, detail::native(s)));
}

void launch_host_function(const Stream& s, void (*fn)(void*), void* arg) {
  HMOE_CUDA_CHECK(cudaLaunchHostFunc(detail::native(s), fn, arg));
}

// ---- Graph

Graph::~Graph() {
  if (exec_) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}

Graph& Graph::operator=(Graph&& o) noexcept {
  std::swap(exec_, o.exec_);
  return *this;
}

void Graph::begin_capture(const Stream& s) {
  HMOE_CUDA_CHECK(cudaStreamBeginCapture(detail::native(s), cudaStreamCaptureModeThreadLocal));
}

Graph Graph::end_capture(const Stream& s) {
  cudaGraph_t graph = nullptr;
  HMOE_CUDA_CHECK(cudaStreamEndCapture(detail::native(s), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph is independent of the one it was made from
  HMOE_CUDA_CHECK(e);
  Graph g;
  g.exec_ = exec;
  return g;
}

void Graph::launch(const Stream& s) const {
  if (exec_ == nullptr) throw std::logic_error("hmoe::cuda::Graph::launch: the graph is empty");
  HMOE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), detail::native(s)));
}

}  // namespace hmoe::cuda
