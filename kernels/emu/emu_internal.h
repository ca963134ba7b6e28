// emu_internal.h: declarations shared by the emulator's implementation files (not for kernel code).
#pragma once

#include <cstddef>
#include <functional>

#include "emu_runtime.h"

namespace vlm::emu {

// Runs every block of a validated launch on the calling OS thread (block_scheduler.cpp).
void run_launch(const LaunchSpec& spec, const std::function<void()>& body);

// Fills with the 0xFF poison byte and tells valgrind the bytes are undefined (device_memory.cpp).
void fill_uninitialised(void* p, size_t bytes);

// Device allocation registry (device_memory.cpp).
enum class PtrKind { kHost, kDevice };
PtrKind classify(const void* p);
cudaError_t device_alloc(void** out, size_t bytes);
cudaError_t device_free(void* p);
cudaError_t pinned_alloc(void** out, size_t bytes);
cudaError_t pinned_free(void* p);
// Faults (aborts) when any live allocation's guard zone was overwritten; `after` names the culprit.
void check_guards(const char* after);
// Under valgrind: reports any undefined byte in [p, p+bytes) as an error at this point.
void check_defined(const void* p, size_t bytes, const char* what);
size_t device_bytes_in_use();

}  // namespace vlm::emu
