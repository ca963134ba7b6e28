// runtime.cpp: the CUDA runtime host API on the emulator: errors, device queries, copies, memsets,
// streams, events, graph capture/replay, kernel launch validation, and fault injection for tests
// (inject_fault: a chosen launch or copy fails, once or stickily as a dead context). Work runs eagerly
// when it is enqueued (streams are in order by construction); while a stream captures, work is
// recorded into the graph instead and runs only at cudaGraphLaunch. Leaves out: multi-device, stream
// priorities, host callbacks, cross-stream capture (events joining streams).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../cuda_compat.h"
#include "emu_internal.h"

struct CUgraph_st {
  struct Node {
    std::string what;
    std::function<void()> work;
  };
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<CUgraph_st::Node> nodes;
};
struct CUstream_st {
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  CUgraph_st* graph = nullptr;
};
struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when;
};

namespace vlm::emu {
namespace {

struct RuntimeState {
  std::mutex mu;
  cudaError_t last_error = cudaSuccess;
  CUstream_st default_stream;
  std::set<CUstream_st*> streams;
  std::set<CUevent_st*> events;
  std::set<CUgraph_st*> graphs;
  std::set<CUgraphExec_st*> execs;
  std::map<const void*, int> max_dynamic_smem;
  // Fault injection (inject_fault): the armed call, and the error a dead context returns.
  bool inject_armed = false;
  FaultSite inject_site = FaultSite::kLaunch;
  long inject_countdown = 0;
  cudaError_t inject_error = cudaSuccess;
  bool inject_sticky = false;
  cudaError_t stuck = cudaSuccess;
  long site_calls[2] = {0, 0};
};
RuntimeState& state() {
  static RuntimeState s;
  return s;
}

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) {
    std::lock_guard<std::mutex> lock(state().mu);
    state().last_error = e;
  }
  return e;
}

// Counts a call at `site`; the error it must fail with (an armed injection
// reaching its count, or a stuck error), else cudaSuccess.
cudaError_t injected(FaultSite site) {
  RuntimeState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  ++st.site_calls[static_cast<int>(site)];
  if (st.stuck != cudaSuccess) return st.stuck;
  if (!st.inject_armed || st.inject_site != site || --st.inject_countdown > 0) return cudaSuccess;
  st.inject_armed = false;
  if (st.inject_sticky) st.stuck = st.inject_error;
  return st.inject_error;
}

// The error of a dead context (a sticky injected fault), else cudaSuccess.
cudaError_t stuck_error() {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().stuck;
}

// Resolves a stream handle; nullptr for a handle that is not live.
CUstream_st* resolve(cudaStream_t s) {
  RuntimeState& st = state();
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &st.default_stream;
  std::lock_guard<std::mutex> lock(st.mu);
  return st.streams.count(s) ? s : nullptr;
}

bool any_global_capture() {
  RuntimeState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  for (CUstream_st* s : st.streams)
    if (s->capturing && s->mode != cudaStreamCaptureModeRelaxed) return true;
  return false;
}
void invalidate_captures() {
  RuntimeState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  for (CUstream_st* s : st.streams)
    if (s->capturing) s->invalidated = true;
}
// A synchronous call while a capture is active is illegal (and invalidates the capture).
cudaError_t check_sync_allowed() {
  if (!any_global_capture()) return cudaSuccess;
  invalidate_captures();
  return cudaErrorStreamCaptureUnsupported;
}

bool valid_kind(cudaMemcpyKind k) { return k >= cudaMemcpyHostToHost && k <= cudaMemcpyDefault; }

// Validates one side of a copy: device sides must lie inside one live allocation.
cudaError_t check_side(const void* p, size_t bytes, bool expect_device, bool inferred) {
  PtrKind kind = classify(p);
  if (expect_device) return device_range_ok(p, bytes) ? cudaSuccess : cudaErrorInvalidValue;
  if (!inferred && kind == PtrKind::kDevice) return cudaErrorInvalidValue;  // host side given a device pointer
  return p ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t validate_copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind, bool* d2h) {
  if (!valid_kind(kind)) return cudaErrorInvalidMemcpyDirection;
  bool dst_dev, src_dev, inferred = kind == cudaMemcpyDefault;
  if (inferred) {
    dst_dev = classify(dst) == PtrKind::kDevice;
    src_dev = classify(src) == PtrKind::kDevice;
  } else {
    dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  }
  if (cudaError_t e = check_side(dst, count, dst_dev, inferred); e != cudaSuccess) return e;
  if (cudaError_t e = check_side(src, count, src_dev, inferred); e != cudaSuccess) return e;
  *d2h = src_dev && !dst_dev;
  return cudaSuccess;
}

cudaError_t copy_async(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  if (cudaError_t e = injected(FaultSite::kMemcpy); e != cudaSuccess) return e;
  if (count == 0) return cudaSuccess;
  bool d2h = false;
  if (cudaError_t e = validate_copy(dst, src, count, kind, &d2h); e != cudaSuccess) return e;
  return enqueue(stream, "cudaMemcpy", [dst, src, count, d2h] {
    if (d2h) check_defined(src, count, "cudaMemcpy device->host");
    memmove(dst, src, count);
  });
}

}  // namespace

[[noreturn]] void fault(const std::string& message) {
  fprintf(stderr, "vlm-emu: %s\n", message.c_str());
  fflush(stderr);
  abort();
}

cudaError_t set_last_error(cudaError_t error) { return record(error); }

cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> work) {
  if (cudaError_t e = stuck_error(); e != cudaSuccess) return e;
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s == &state().default_stream && any_global_capture()) {
    invalidate_captures();
    return cudaErrorStreamCaptureImplicit;
  }
  if (s->capturing) {
    s->graph->nodes.push_back({what, std::move(work)});
    return cudaSuccess;
  }
  work();
  return cudaSuccess;
}

void launch_kernel(const LaunchSpec& spec, cudaStream_t stream, std::function<void()> thread_body) {
  if (cudaError_t e = injected(FaultSite::kLaunch); e != cudaSuccess) {
    record(e);
    return;
  }
  const dim3 b = spec.block, g = spec.grid;
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0 || b.x > kMaxBlockDimX ||
      b.y > kMaxBlockDimY || b.z > kMaxBlockDimZ || uint64_t{b.x} * b.y * b.z > kMaxThreadsPerBlock ||
      g.x > kMaxGridDimX || g.y > kMaxGridDimY || g.z > kMaxGridDimZ) {
    record(cudaErrorInvalidConfiguration);
    return;
  }
  size_t smem_limit = kDefaultSharedBytes;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    auto it = state().max_dynamic_smem.find(spec.func_key);
    if (it != state().max_dynamic_smem.end()) smem_limit = std::max<size_t>(smem_limit, static_cast<size_t>(it->second));
  }
  if (spec.dynamic_smem > smem_limit || spec.dynamic_smem > kMaxSharedOptinBytes) {
    record(cudaErrorInvalidValue);
    return;
  }
  LaunchSpec copy = spec;
  cudaError_t e = enqueue(stream, spec.name, [copy, body = std::move(thread_body)] {
    run_launch(copy, body);
    check_guards(copy.name);
  });
  record(e);
}

void inject_fault(FaultSite site, long nth, cudaError_t error, bool sticky) {
  RuntimeState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.inject_armed = nth > 0 && error != cudaSuccess;
  st.inject_site = site;
  st.inject_countdown = nth;
  st.inject_error = error;
  st.inject_sticky = sticky;
  st.site_calls[0] = st.site_calls[1] = 0;
}

void clear_injected_faults() {
  RuntimeState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.inject_armed = false;
  st.stuck = cudaSuccess;
  st.last_error = cudaSuccess;
  st.site_calls[0] = st.site_calls[1] = 0;
}

long fault_site_calls(FaultSite site) {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().site_calls[static_cast<int>(site)];
}

}  // namespace vlm::emu

using namespace vlm::emu;

// ---- device and errors ---------------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (!device) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "vlm SIMT emulator (sm_90-like)");
  prop->totalGlobalMem = size_t{80} << 30;
  prop->sharedMemPerBlock = kDefaultSharedBytes;
  prop->sharedMemPerBlockOptin = kMaxSharedOptinBytes;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->reservedSharedMemPerBlock = 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = static_cast<int>(kMaxThreadsPerBlock);
  prop->maxThreadsDim[0] = kMaxBlockDimX;
  prop->maxThreadsDim[1] = kMaxBlockDimY;
  prop->maxThreadsDim[2] = kMaxBlockDimZ;
  prop->maxGridSize[0] = static_cast<int>(kMaxGridDimX);
  prop->maxGridSize[1] = kMaxGridDimY;
  prop->maxGridSize[2] = kMaxGridDimZ;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->textureAlignment = 512;
  prop->multiProcessorCount = 132;
  prop->canMapHostMemory = 1;
  prop->concurrentKernels = 1;
  prop->asyncEngineCount = 2;
  prop->unifiedAddressing = 1;
  prop->memoryBusWidth = 5120;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (cudaError_t e = stuck_error(); e != cudaSuccess) return record(e);
  return record(check_sync_allowed());
}
cudaError_t cudaDeviceReset() { return cudaSuccess; }
cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lock(state().mu);
  if (state().stuck != cudaSuccess) return state().stuck;  // a dead context stays dead
  cudaError_t e = state().last_error;
  state().last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::mutex> lock(state().mu);
  if (state().stuck != cudaSuccess) return state().stuck;
  return state().last_error;
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define VLM_EMU_ERR(x) case x: return #x;
    VLM_EMU_ERR(cudaSuccess) VLM_EMU_ERR(cudaErrorInvalidValue) VLM_EMU_ERR(cudaErrorMemoryAllocation)
    VLM_EMU_ERR(cudaErrorInvalidConfiguration) VLM_EMU_ERR(cudaErrorInvalidPitchValue)
    VLM_EMU_ERR(cudaErrorInvalidDevicePointer) VLM_EMU_ERR(cudaErrorInvalidMemcpyDirection)
    VLM_EMU_ERR(cudaErrorInvalidDeviceFunction) VLM_EMU_ERR(cudaErrorNoDevice) VLM_EMU_ERR(cudaErrorInvalidDevice)
    VLM_EMU_ERR(cudaErrorInvalidResourceHandle) VLM_EMU_ERR(cudaErrorIllegalState) VLM_EMU_ERR(cudaErrorNotReady)
    VLM_EMU_ERR(cudaErrorIllegalAddress) VLM_EMU_ERR(cudaErrorLaunchOutOfResources)
    VLM_EMU_ERR(cudaErrorLaunchFailure) VLM_EMU_ERR(cudaErrorNotSupported)
    VLM_EMU_ERR(cudaErrorStreamCaptureUnsupported) VLM_EMU_ERR(cudaErrorStreamCaptureInvalidated)
    VLM_EMU_ERR(cudaErrorStreamCaptureUnmatched) VLM_EMU_ERR(cudaErrorStreamCaptureImplicit)
    VLM_EMU_ERR(cudaErrorUnknown)
#undef VLM_EMU_ERR
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return cudaGetErrorName(e);
  }
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return record(cudaErrorInvalidValue);
  *total_bytes = size_t{80} << 30;
  *free_bytes = *total_bytes - std::min(*total_bytes, device_bytes_in_use());
  return cudaSuccess;
}

// ---- memory ----------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** p, size_t size) {
  if (cudaError_t e = stuck_error(); e != cudaSuccess) return record(e);
  return record(device_alloc(p, size));
}
cudaError_t cudaFree(void* p) {
  // A dead context reports its error, but the emulator still frees (no leak in tests).
  cudaError_t freed = device_free(p);
  if (cudaError_t e = stuck_error(); e != cudaSuccess) return record(e);
  return record(freed);
}
cudaError_t cudaMallocHost(void** p, size_t size) { return record(pinned_alloc(p, size)); }
cudaError_t cudaHostAlloc(void** p, size_t size, unsigned int) { return record(pinned_alloc(p, size)); }
cudaError_t cudaFreeHost(void* p) { return record(pinned_free(p)); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (cudaError_t e = check_sync_allowed(); e != cudaSuccess) return record(e);
  return record(copy_async(dst, src, count, kind, nullptr));
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  return record(copy_async(dst, src, count, kind, stream));
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  if (width > dpitch || width > spitch) return record(cudaErrorInvalidPitchValue);
  if (width == 0 || height == 0) return cudaSuccess;
  size_t dst_span = dpitch * (height - 1) + width, src_span = spitch * (height - 1) + width;
  if (height > 1 && (dpitch > SIZE_MAX / (height - 1) || spitch > SIZE_MAX / (height - 1)))
    return record(cudaErrorInvalidValue);
  bool d2h = false;
  // Validate the whole spans, then copy row by row.
  if (!valid_kind(kind)) return record(cudaErrorInvalidMemcpyDirection);
  {
    bool dst_dev = kind == cudaMemcpyDefault ? classify(dst) == PtrKind::kDevice
                                             : (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice);
    bool src_dev = kind == cudaMemcpyDefault ? classify(src) == PtrKind::kDevice
                                             : (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice);
    if ((dst_dev && !device_range_ok(dst, dst_span)) || (src_dev && !device_range_ok(src, src_span)))
      return record(cudaErrorInvalidValue);
    d2h = src_dev && !dst_dev;
  }
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  return record(enqueue(stream, "cudaMemcpy2D", [d, s, dpitch, spitch, width, height, d2h] {
    for (size_t r = 0; r < height; ++r) {
      if (d2h) check_defined(s + r * spitch, width, "cudaMemcpy2D device->host");
      memmove(d + r * dpitch, s + r * spitch, width);
    }
  }));
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  if (cudaError_t e = check_sync_allowed(); e != cudaSuccess) return record(e);
  return cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (!device_range_ok(p, count)) return record(cudaErrorInvalidValue);
  return record(enqueue(stream, "cudaMemset", [p, value, count] { memset(p, value, count); }));
}
cudaError_t cudaMemset(void* p, int value, size_t count) {
  if (cudaError_t e = check_sync_allowed(); e != cudaSuccess) return record(e);
  return cudaMemsetAsync(p, value, count, nullptr);
}

// ---- streams and events ----------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  if (!stream) return record(cudaErrorInvalidValue);
  *stream = new CUstream_st;
  std::lock_guard<std::mutex> lock(state().mu);
  state().streams.insert(*stream);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (stream == nullptr || !state().streams.erase(stream)) return state().last_error = cudaErrorInvalidResourceHandle;
  delete stream->graph;
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (!s) return record(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = stuck_error(); e != cudaSuccess) return record(e);
  if (s->capturing) {
    s->invalidated = true;
    return record(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  return resolve(stream) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  if (!resolve(stream)) return record(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(state().mu);
  return state().events.count(event) ? cudaSuccess : (state().last_error = cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (!event) return record(cudaErrorInvalidValue);
  *event = new CUevent_st;
  (*event)->flags = flags;
  std::lock_guard<std::mutex> lock(state().mu);
  state().events.insert(*event);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!state().events.count(event)) return state().last_error = cudaErrorInvalidResourceHandle;
  }
  return record(enqueue(stream, "cudaEventRecord", [event] {
    event->recorded = true;
    event->when = std::chrono::steady_clock::now();
  }));
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().events.count(event) ? cudaSuccess : (state().last_error = cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return record(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(state().mu);
  if (!state().events.count(start) || !state().events.count(end) || !start->recorded || !end->recorded ||
      (start->flags & cudaEventDisableTiming) || (end->flags & cudaEventDisableTiming))
    return state().last_error = cudaErrorInvalidResourceHandle;
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (!state().events.erase(event)) return state().last_error = cudaErrorInvalidResourceHandle;
  delete event;
  return cudaSuccess;
}

// ---- graphs ------------------------------------------------------------------------------------------
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  CUstream_st* s = resolve(stream);
  if (!s) return record(cudaErrorInvalidResourceHandle);
  if (s == &state().default_stream) return record(cudaErrorStreamCaptureUnsupported);
  if (s->capturing) return record(cudaErrorIllegalState);
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->graph = new CUgraph_st;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  CUstream_st* s = resolve(stream);
  if (!s || !graph) return record(s ? cudaErrorInvalidValue : cudaErrorInvalidResourceHandle);
  if (!s->capturing) return record(cudaErrorIllegalState);
  s->capturing = false;
  CUgraph_st* g = s->graph;
  s->graph = nullptr;
  if (s->invalidated) {
    delete g;
    *graph = nullptr;
    return record(cudaErrorStreamCaptureInvalidated);
  }
  std::lock_guard<std::mutex> lock(state().mu);
  state().graphs.insert(g);
  *graph = g;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  CUstream_st* s = resolve(stream);
  if (!s || !status) return record(s ? cudaErrorInvalidValue : cudaErrorInvalidResourceHandle);
  *status = !s->capturing ? cudaStreamCaptureStatusNone
                          : (s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec) return record(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(state().mu);
  if (!state().graphs.count(graph)) return state().last_error = cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  state().execs.insert(*exec);
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!state().execs.count(exec)) return state().last_error = cudaErrorInvalidValue;
  }
  for (const auto& node : exec->nodes)
    if (cudaError_t e = enqueue(stream, node.what.c_str(), node.work); e != cudaSuccess) return record(e);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (!state().execs.erase(exec)) return state().last_error = cudaErrorInvalidValue;
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (!state().graphs.erase(graph)) return state().last_error = cudaErrorInvalidValue;
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (!func) return record(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > kMaxSharedOptinBytes) return record(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(state().mu);
    state().max_dynamic_smem[func] = value;
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout)
    return (value >= -1 && value <= 100) ? cudaSuccess : record(cudaErrorInvalidValue);
  return record(cudaErrorInvalidValue);
}

// ---- fp16 conversions (declared in emu_bf16.h) -----------------------------------------------------
namespace vlm::emu {
uint16_t float_to_half_bits_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // subnormal half (or zero): scale into integer units of 2^-24
    float a;
    memcpy(&a, &abs, 4);
    float scaled = a * 16777216.0f;  // exact power-of-two scaling
    uint32_t r = static_cast<uint32_t>(nearbyintf(scaled));
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t mant = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((mant - 0x38000000u) >> 13));
}
float half_bits_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = static_cast<float>(mant) / 16777216.0f;
    uint32_t u;
    memcpy(&u, &f, 4);
    u |= sign;
    memcpy(&f, &u, 4);
    return f;
  }
  uint32_t u = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  memcpy(&f, &u, 4);
  return f;
}
}  // namespace vlm::emu
