// fiber.h: minimal stackful fibers for the SIMT emulator: an x86-64 context switch (callee-saved
// registers only) and stacks allocated once with a guard page below each.
// Annotated for AddressSanitizer (start/finish_switch_fiber) and valgrind (stack registration).
// Leaves out: other architectures (the build fails there with a clear #error).
#pragma once

#include <cstddef>
#include <vector>

namespace vlm::emu {

struct FiberStack {
  char* lo = nullptr;  // lowest usable byte (the guard page is below it)
  size_t size = 0;
  unsigned valgrind_id = 0;
};

// Owns `count` stacks of `size` bytes; grows on demand, never shrinks (reused across launches).
class StackPool {
 public:
  ~StackPool();
  bool ensure(size_t count, size_t size);
  FiberStack& at(size_t i) { return stacks_[i]; }

 private:
  std::vector<FiberStack> stacks_;
  size_t stack_size_ = 0;
};

// Prepares `stack` so that switching to the returned stack pointer calls entry(arg) on it.
void* fiber_prepare(FiberStack& stack, void (*entry)(void*), void* arg);
// Saves the current context into *save_sp and resumes new_sp.
extern "C" void vlm_emu_switch(void** save_sp, void* new_sp);

// Sanitizer bookkeeping around vlm_emu_switch (no-ops without ASan).
void asan_before_switch(void** fake_stack_save, const void* target_lo, size_t target_size);
void asan_after_switch(void* fake_stack_save, const void** old_lo = nullptr, size_t* old_size = nullptr);

size_t configured_stack_bytes();

}  // namespace vlm::emu
