// device_memory.cpp: emulated device memory. Each cudaMalloc block is host heap memory laid out as
// [guard 256 B][user bytes][guard to the next 256 B + 256 B], user bytes poisoned with 0xFF (NaN in
// fp32/bf16/fp16). Guards hold a canary checked after every launch and at cudaFree (plain build),
// are poisoned for AddressSanitizer, and are no-access for valgrind, which also sees fresh memory as
// undefined. Leaves out: a real separate address space (host code could dereference device pointers).
#include <valgrind/memcheck.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define VLM_EMU_ASAN 1
#else
#define VLM_EMU_ASAN 0
#endif

namespace vlm::emu {
namespace {

constexpr size_t kGuard = 256;
constexpr unsigned char kCanary = 0xFD;

struct Allocation {
  char* base = nullptr;  // what posix_memalign returned
  size_t size = 0;       // user bytes
  size_t total = 0;
};

struct Registry {
  std::mutex mu;
  std::map<uintptr_t, Allocation> device;  // keyed by user pointer
  std::set<uintptr_t> pinned;
  size_t bytes = 0;
};
Registry& registry() {
  static Registry r;
  return r;
}

void protect_guards(const Allocation& a, bool on) {
  char* user = a.base + kGuard;
  char* tail = user + a.size;
  size_t tail_bytes = a.total - kGuard - a.size;
#if VLM_EMU_ASAN
  if (on) {
    __asan_poison_memory_region(a.base, kGuard);
    __asan_poison_memory_region(tail, tail_bytes);
  } else {
    __asan_unpoison_memory_region(a.base, kGuard);
    __asan_unpoison_memory_region(tail, tail_bytes);
  }
#endif
  if (on) {
    VALGRIND_MAKE_MEM_NOACCESS(a.base, kGuard);
    VALGRIND_MAKE_MEM_NOACCESS(tail, tail_bytes);
  } else {
    VALGRIND_MAKE_MEM_DEFINED(a.base, kGuard);
    VALGRIND_MAKE_MEM_DEFINED(tail, tail_bytes);
  }
}

bool guards_intact(const Allocation& a) {
  if (VLM_EMU_ASAN) return true;  // ASan already stopped any access to the guards
  protect_guards(a, false);
  bool ok = true;
  const char* tail = a.base + kGuard + a.size;
  size_t tail_bytes = a.total - kGuard - a.size;
  for (size_t i = 0; i < kGuard && ok; ++i) ok = static_cast<unsigned char>(a.base[i]) == kCanary;
  for (size_t i = 0; i < tail_bytes && ok; ++i) ok = static_cast<unsigned char>(tail[i]) == kCanary;
  protect_guards(a, true);
  return ok;
}

const Allocation* find_locked(Registry& r, const void* p) {
  uintptr_t u = reinterpret_cast<uintptr_t>(p);
  auto it = r.device.upper_bound(u);
  if (it == r.device.begin()) return nullptr;
  --it;
  const Allocation& a = it->second;
  if (u < it->first || u >= it->first + (a.size ? a.size : 1)) return nullptr;
  return &a;
}

}  // namespace

void fill_uninitialised(void* p, size_t bytes) {
  if (bytes == 0) return;
  memset(p, 0xFF, bytes);
  VALGRIND_MAKE_MEM_UNDEFINED(p, bytes);
}

PtrKind classify(const void* p) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return find_locked(r, p) ? PtrKind::kDevice : PtrKind::kHost;
}

bool device_range_ok(const void* p, size_t bytes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const Allocation* a = find_locked(r, p);
  if (!a) return false;
  uintptr_t offset = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(a->base + kGuard);
  return bytes <= a->size - offset;
}

cudaError_t device_alloc(void** out, size_t bytes) {
  if (out == nullptr) return cudaErrorInvalidValue;
  *out = nullptr;
  if (bytes == 0) return cudaSuccess;  // as CUDA: success, null pointer
  if (bytes > (size_t{1} << 46)) return cudaErrorMemoryAllocation;
  size_t rounded = (bytes + 255) & ~size_t{255};
  Allocation a;
  a.size = bytes;
  a.total = kGuard + rounded + kGuard;
  void* mem = nullptr;
  if (posix_memalign(&mem, 256, a.total) != 0) return cudaErrorMemoryAllocation;
  a.base = static_cast<char*>(mem);
  memset(a.base, kCanary, kGuard);
  memset(a.base + kGuard + bytes, kCanary, a.total - kGuard - bytes);
  fill_uninitialised(a.base + kGuard, bytes);
  protect_guards(a, true);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.device[reinterpret_cast<uintptr_t>(a.base + kGuard)] = a;
  r.bytes += bytes;
  *out = a.base + kGuard;
  return cudaSuccess;
}

cudaError_t device_free(void* p) {
  if (p == nullptr) return cudaSuccess;
  Registry& r = registry();
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.device.find(reinterpret_cast<uintptr_t>(p));
    if (it == r.device.end()) return cudaErrorInvalidValue;  // never allocated, interior, or freed twice
    a = it->second;
    r.device.erase(it);
    r.bytes -= a.size;
  }
  if (!guards_intact(a))
    fault("guard zone of a " + std::to_string(a.size) + "-byte device allocation was overwritten (found at cudaFree)");
  protect_guards(a, false);
  VALGRIND_MAKE_MEM_UNDEFINED(a.base, a.total);
  free(a.base);
  return cudaSuccess;
}

cudaError_t pinned_alloc(void** out, size_t bytes) {
  if (out == nullptr) return cudaErrorInvalidValue;
  void* mem = nullptr;
  if (posix_memalign(&mem, 256, bytes ? bytes : 1) != 0) return cudaErrorMemoryAllocation;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.pinned.insert(reinterpret_cast<uintptr_t>(mem));
  *out = mem;
  return cudaSuccess;
}

cudaError_t pinned_free(void* p) {
  if (p == nullptr) return cudaSuccess;
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.pinned.erase(reinterpret_cast<uintptr_t>(p)) == 0) return cudaErrorInvalidValue;
  }
  free(p);
  return cudaSuccess;
}

void check_guards(const char* after) {
  if (VLM_EMU_ASAN) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [user, a] : r.device)
    if (!guards_intact(a))
      fault(std::string("out-of-bounds write: guard zone of a ") + std::to_string(a.size) +
            "-byte device allocation was overwritten by " + after);
}

void check_defined(const void* p, size_t bytes, const char* what) {
  if (RUNNING_ON_VALGRIND && VALGRIND_CHECK_MEM_IS_DEFINED(p, bytes) != 0)
    fprintf(stderr, "vlm-emu: %s copies uninitialised device bytes to the host (see valgrind report above)\n", what);
}

size_t device_bytes_in_use() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.bytes;
}

}  // namespace vlm::emu
