// fiber.cpp: context switch, stack pool and sanitizer annotations for emulator fibers (see fiber.h).
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include <cstdint>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define VLM_EMU_ASAN 1
#else
#define VLM_EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the SIMT emulator's context switch is written for x86-64"
#endif

// vlm_emu_switch(save_sp=rdi, new_sp=rsi): push callee-saved registers, swap stacks, pop them back.
// MXCSR and the x87 control word are not switched: all fibers of a launch share one FP environment.
// vlm_emu_fiber_entry: first code run on a fresh fiber: r12 = argument, r13 = function.
asm(R"(
  .text
  .globl vlm_emu_switch
  .type vlm_emu_switch,@function
vlm_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size vlm_emu_switch,.-vlm_emu_switch

  .globl vlm_emu_fiber_entry
  .type vlm_emu_fiber_entry,@function
vlm_emu_fiber_entry:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size vlm_emu_fiber_entry,.-vlm_emu_fiber_entry
  .section .note.GNU-stack,"",@progbits
  .text
)");

extern "C" void vlm_emu_fiber_entry();

namespace vlm::emu {

size_t configured_stack_bytes() {
  size_t kb = VLM_EMU_ASAN ? 256 : 64;
  if (const char* env = std::getenv("VLM_EMU_STACK_KB")) {
    long v = std::strtol(env, nullptr, 10);
    if (v >= 16 && v <= 65536) kb = static_cast<size_t>(v);
  }
  return kb * 1024;
}

StackPool::~StackPool() {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (FiberStack& s : stacks_) {
    VALGRIND_STACK_DEREGISTER(s.valgrind_id);
    munmap(s.lo - page, s.size + page);
  }
}

bool StackPool::ensure(size_t count, size_t size) {
  if (size != stack_size_ && !stacks_.empty()) return count <= stacks_.size();
  stack_size_ = size;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  while (stacks_.size() < count) {
    void* mem = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) return false;
    mprotect(mem, page, PROT_NONE);  // stack overflow faults instead of corrupting a neighbour
    FiberStack s;
    s.lo = static_cast<char*>(mem) + page;
    s.size = size;
    s.valgrind_id = VALGRIND_STACK_REGISTER(s.lo, s.lo + size);
    stacks_.push_back(s);
  }
  return true;
}

void* fiber_prepare(FiberStack& stack, void (*entry)(void*), void* arg) {
#if VLM_EMU_ASAN
  __asan_unpoison_memory_region(stack.lo, stack.size);
#endif
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack.lo) + stack.size) & ~uintptr_t{15};
  // Six callee-saved registers and the return address; after `ret` rsp is 16-byte aligned.
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 64 - 8);
  sp[0] = 0;                                      // r15
  sp[1] = 0;                                      // r14
  sp[2] = reinterpret_cast<uint64_t>(entry);      // r13
  sp[3] = reinterpret_cast<uint64_t>(arg);        // r12
  sp[4] = 0;                                      // rbx
  sp[5] = 0;                                      // rbp
  sp[6] = reinterpret_cast<uint64_t>(&vlm_emu_fiber_entry);
  return sp;
}

void asan_before_switch(void** fake_stack_save, const void* target_lo, size_t target_size) {
#if VLM_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, target_lo, target_size);
#else
  (void)fake_stack_save, (void)target_lo, (void)target_size;
#endif
}

void asan_after_switch(void* fake_stack_save, const void** old_lo, size_t* old_size) {
#if VLM_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_save, old_lo, old_size);
#else
  (void)fake_stack_save, (void)old_lo, (void)old_size;
#endif
}

}  // namespace vlm::emu
