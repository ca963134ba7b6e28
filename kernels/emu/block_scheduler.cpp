// block_scheduler.cpp: runs one kernel launch: every block in turn, each block's threads as fibers on
// the calling OS thread. Implements __syncthreads and warp collectives by switching fibers, and turns
// divergence (a thread exiting while others wait, a collective naming an absent lane, a barrier
// nobody can pass) into a loud fault. Leaves out: spreading blocks over several OS threads.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../cuda_compat.h"
#include "emu_internal.h"
#include "fiber.h"

namespace vlm::emu {

thread_local ThreadContext* t_current_thread = nullptr;

namespace {

enum class FiberState { kNotStarted, kReady, kAtBarrier, kAtWarp, kDone };

struct Fiber {
  ThreadContext ctx;
  FiberState state = FiberState::kNotStarted;
  void* sp = nullptr;
  void* asan_fake_stack = nullptr;
  int stack = -1;  // index into the pool while started and not done
  // Warp collective in progress.
  WarpOp op = WarpOp::kSync;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0;
  int width = 32;
  uint64_t result = 0;
};

struct BlockRun {
  const char* kernel_name = "";
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  unsigned thread_count = 0;
  unsigned barrier_arrived = 0;
  unsigned barrier_predicates = 0;  // threads with a true predicate at the current barrier
  unsigned barrier_result = 0;      // count published at the last release (__syncthreads_count)
  unsigned done_count = 0;
  size_t current = 0;
  void* scheduler_sp = nullptr;
  const void* scheduler_stack_lo = nullptr;
  size_t scheduler_stack_size = 0;
  StackPool* stacks = nullptr;
  char* dynamic_smem = nullptr;
  // Stacks of finished fibers are reused at once, so kernels without barriers touch one hot stack.
  std::vector<int> free_stacks;
  // Per warp: lanes waiting in a collective, and lanes that exited.
  std::vector<unsigned> warp_waiting, warp_exited;
};

struct SchedulerThreadState {
  BlockRun* run = nullptr;
  StackPool stacks;
  std::vector<char> dynamic_smem;
};
thread_local SchedulerThreadState t_sched;

std::string describe_thread(const BlockRun& run, size_t i) {
  const ThreadContext& c = run.fibers[i].ctx;
  char buf[160];
  snprintf(buf, sizeof buf, "thread (%u,%u,%u) of block (%u,%u,%u)", c.thread_idx.x, c.thread_idx.y,
           c.thread_idx.z, c.block_idx.x, c.block_idx.y, c.block_idx.z);
  return buf;
}

[[noreturn]] void kernel_fault(const BlockRun& run, const std::string& what) {
  fault(std::string("kernel ") + run.kernel_name + ": " + what);
}

// Switches from the running fiber back to the scheduler loop.
void yield_to_scheduler(BlockRun& run, bool finished) {
  Fiber& self = run.fibers[run.current];
  asan_before_switch(finished ? nullptr : &self.asan_fake_stack, run.scheduler_stack_lo, run.scheduler_stack_size);
  vlm_emu_switch(&self.sp, run.scheduler_sp);
  asan_after_switch(self.asan_fake_stack);
  t_current_thread = &run.fibers[run.current].ctx;
}

void fiber_main(void* arg) {
  BlockRun& run = *static_cast<BlockRun*>(arg);
  asan_after_switch(nullptr, &run.scheduler_stack_lo, &run.scheduler_stack_size);
  t_current_thread = &run.fibers[run.current].ctx;
  (*run.body)();
  Fiber& self = run.fibers[run.current];
  self.state = FiberState::kDone;
  ++run.done_count;
  run.free_stacks.push_back(self.stack);  // safe: nothing runs on it after the final switch
  if (run.barrier_arrived > 0) {
    for (size_t i = 0; i < run.fibers.size(); ++i)
      if (run.fibers[i].state == FiberState::kAtBarrier)
        kernel_fault(run, describe_thread(run, run.current) + " exited while " + describe_thread(run, i) +
                              " waits at __syncthreads (divergent barrier)");
  }
  const unsigned lane_bit = 1u << (self.ctx.linear_tid % 32);
  const size_t warp = run.current / 32;
  run.warp_exited[warp] |= lane_bit;
  if (unsigned waiting = run.warp_waiting[warp]) {
    for (unsigned l = 0; l < 32; ++l)
      if (((waiting >> l) & 1u) && (run.fibers[warp * 32 + l].mask & lane_bit))
        kernel_fault(run, describe_thread(run, run.current) + " exited while " + describe_thread(run, warp * 32 + l) +
                              " waits for it in a warp collective");
  }
  yield_to_scheduler(run, true);
  abort();  // never resumed
}

uint64_t collective_result(const BlockRun& run, size_t warp_base, const Fiber& f) {
  unsigned lane = f.ctx.linear_tid % 32;
  int width = f.width;
  unsigned seg = lane & ~static_cast<unsigned>(width - 1);
  int src = static_cast<int>(lane);
  switch (f.op) {
    case WarpOp::kSync:
      return 0;
    case WarpOp::kBallot:
    case WarpOp::kAny:
    case WarpOp::kAll: {
      unsigned ballot = 0;
      for (unsigned l = 0; l < 32; ++l)
        if ((f.mask >> l) & 1u) ballot |= (run.fibers[warp_base + l].value ? 1u : 0u) << l;
      if (f.op == WarpOp::kBallot) return ballot;
      if (f.op == WarpOp::kAny) return ballot != 0;
      return ballot == f.mask;
    }
    case WarpOp::kShflIdx:
      src = static_cast<int>(seg + (static_cast<unsigned>(f.arg) & static_cast<unsigned>(width - 1)));
      break;
    case WarpOp::kShflXor: {
      unsigned s = lane ^ static_cast<unsigned>(f.arg);
      src = (s & ~static_cast<unsigned>(width - 1)) == seg ? static_cast<int>(s) : static_cast<int>(lane);
      break;
    }
    case WarpOp::kShflDown:
      src = (lane - seg) + static_cast<unsigned>(f.arg) < static_cast<unsigned>(width) ? static_cast<int>(lane) + f.arg
                                                                                     : static_cast<int>(lane);
      break;
    case WarpOp::kShflUp:
      src = static_cast<int>(lane - seg) >= f.arg ? static_cast<int>(lane) - f.arg : static_cast<int>(lane);
      break;
  }
  if (!((f.mask >> src) & 1u))
    kernel_fault(run, describe_thread(run, warp_base + lane) + " shuffles from lane " + std::to_string(src) +
                          ", which is not in the mask (undefined on a GPU)");
  return run.fibers[warp_base + static_cast<size_t>(src)].value;
}

}  // namespace

unsigned syncthreads_count(int predicate) {
  BlockRun& run = *t_sched.run;
  Fiber& self = run.fibers[run.current];
  if (run.done_count > 0) {
    for (size_t i = 0; i < run.fibers.size(); ++i)
      if (run.fibers[i].state == FiberState::kDone)
        kernel_fault(run, describe_thread(run, run.current) + " reached __syncthreads but " +
                              describe_thread(run, i) + " already exited (divergent barrier)");
  }
  ++run.barrier_arrived;
  run.barrier_predicates += predicate != 0;
  if (run.barrier_arrived == run.thread_count) {  // last to arrive releases everyone
    run.barrier_arrived = 0;
    run.barrier_result = run.barrier_predicates;
    run.barrier_predicates = 0;
    for (Fiber& f : run.fibers)
      if (f.state == FiberState::kAtBarrier) f.state = FiberState::kReady;
    return run.barrier_result;
  }
  self.state = FiberState::kAtBarrier;
  yield_to_scheduler(run, false);
  // Nobody can publish a newer count before this thread reaches the next barrier.
  return run.barrier_result;
}

void syncthreads() { syncthreads_count(0); }

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  BlockRun& run = *t_sched.run;
  Fiber& self = run.fibers[run.current];
  unsigned lane = self.ctx.linear_tid % 32;
  size_t warp_base = run.current - lane;
  size_t lanes_present = std::min<size_t>(32, run.fibers.size() - warp_base);
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
    kernel_fault(run, describe_thread(run, run.current) + ": shuffle width " + std::to_string(width) +
                          " is not a power of two <= 32");
  if (!((mask >> lane) & 1u))
    kernel_fault(run, describe_thread(run, run.current) + " calls a warp collective with a mask that excludes itself");
  if (lanes_present < 32 && (mask >> lanes_present) != 0)
    kernel_fault(run, describe_thread(run, run.current) + ": warp collective mask 0x" +
                          [&] { char b[16]; snprintf(b, sizeof b, "%08x", mask); return std::string(b); }() +
                          " names lanes that do not exist in this partial warp");
  self.op = op;
  self.mask = mask;
  self.value = value;
  self.arg = arg;
  self.width = width;
  self.state = FiberState::kAtWarp;
  const size_t warp = warp_base / 32;
  if (unsigned gone = run.warp_exited[warp] & mask)
    kernel_fault(run, describe_thread(run, run.current) + " waits in a warp collective for " +
                          describe_thread(run, warp_base + static_cast<unsigned>(__builtin_ctz(gone))) +
                          ", which already exited");
  unsigned& waiting = run.warp_waiting[warp];
  waiting |= 1u << lane;
  if ((waiting & mask) == mask) {  // the last lane of the group arrived: compute everyone's result
    for (unsigned l = 0; l < 32; ++l) {
      if (!((mask >> l) & 1u)) continue;
      const Fiber& other = run.fibers[warp_base + l];
      if (other.mask != mask || other.op != op)
        kernel_fault(run, describe_thread(run, run.current) + " and " + describe_thread(run, warp_base + l) +
                              " are in different warp collectives (divergent masks or operations)");
    }
    for (unsigned l = 0; l < 32; ++l)
      if ((mask >> l) & 1u) run.fibers[warp_base + l].result = collective_result(run, warp_base, run.fibers[warp_base + l]);
    for (unsigned l = 0; l < 32; ++l)
      if ((mask >> l) & 1u) run.fibers[warp_base + l].state = FiberState::kReady;
    waiting &= ~mask;
    return self.result;
  }
  yield_to_scheduler(run, false);
  return run.fibers[run.current].result;
}

void* dynamic_shared_memory() { return t_sched.run ? t_sched.run->dynamic_smem : nullptr; }

void run_launch(const LaunchSpec& spec, const std::function<void()>& body) {
  SchedulerThreadState& ts = t_sched;
  if (ts.run != nullptr) fault(std::string("kernel ") + spec.name + " launched from inside a kernel (unsupported)");
  const unsigned threads = spec.block.x * spec.block.y * spec.block.z;
  if (!ts.stacks.ensure(threads, configured_stack_bytes()))
    fault(std::string("cannot allocate fiber stacks for kernel ") + spec.name);

  // Dynamic shared memory: 128-byte aligned, followed by a canary zone checked after each block.
  constexpr size_t kSmemGuard = 64;
  const size_t smem_offset = 128;
  ts.dynamic_smem.assign(smem_offset + spec.dynamic_smem + kSmemGuard + 128, 0);
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(ts.dynamic_smem.data()) + 127) & ~uintptr_t{127});

  BlockRun run;
  run.kernel_name = spec.name;
  run.body = &body;
  run.thread_count = threads;
  run.fibers.resize(threads);
  run.stacks = &ts.stacks;
  run.dynamic_smem = spec.dynamic_smem ? smem : nullptr;
  ts.run = &run;

  for (unsigned bz = 0; bz < spec.grid.z; ++bz)
    for (unsigned by = 0; by < spec.grid.y; ++by)
      for (unsigned bx = 0; bx < spec.grid.x; ++bx) {
        fill_uninitialised(smem, spec.dynamic_smem);
        memset(smem + spec.dynamic_smem, 0xA5, kSmemGuard);
        run.barrier_arrived = 0;
        run.barrier_predicates = 0;
        run.done_count = 0;
        run.free_stacks.clear();
        for (unsigned i = threads; i-- > 0;) run.free_stacks.push_back(static_cast<int>(i));
        run.warp_waiting.assign((threads + 31) / 32, 0);
        run.warp_exited.assign((threads + 31) / 32, 0);
        unsigned tid = 0;
        for (unsigned tz = 0; tz < spec.block.z; ++tz)
          for (unsigned ty = 0; ty < spec.block.y; ++ty)
            for (unsigned tx = 0; tx < spec.block.x; ++tx, ++tid) {
              Fiber& f = run.fibers[tid];
              f = Fiber{};
              f.ctx.thread_idx = uint3{tx, ty, tz};
              f.ctx.block_idx = uint3{bx, by, bz};
              f.ctx.block_dim = spec.block;
              f.ctx.grid_dim = spec.grid;
              f.ctx.linear_tid = tid;
            }
        for (;;) {
          bool progressed = false;
          for (size_t i = 0; i < threads; ++i) {
            Fiber& f = run.fibers[i];
            if (f.state == FiberState::kNotStarted) {
              f.stack = run.free_stacks.back();
              run.free_stacks.pop_back();
              f.sp = fiber_prepare(ts.stacks.at(static_cast<size_t>(f.stack)), &fiber_main, &run);
              f.state = FiberState::kReady;
            } else if (f.state != FiberState::kReady) {
              continue;
            }
            run.current = i;
            void* fake = nullptr;
            FiberStack& stack = ts.stacks.at(static_cast<size_t>(f.stack));
            asan_before_switch(&fake, stack.lo, stack.size);
            vlm_emu_switch(&run.scheduler_sp, f.sp);
            asan_after_switch(fake);
            progressed = true;
          }
          if (run.done_count == threads) break;
          if (!progressed) {
            std::string waits;
            for (size_t i = 0; i < threads && waits.size() < 400; ++i) {
              const Fiber& f = run.fibers[i];
              if (f.state == FiberState::kAtBarrier) waits += "\n  " + describe_thread(run, i) + " at __syncthreads";
              if (f.state == FiberState::kAtWarp) waits += "\n  " + describe_thread(run, i) + " in a warp collective";
            }
            kernel_fault(run, "deadlock: no thread can proceed" + waits);
          }
        }
        for (size_t g = 0; g < kSmemGuard; ++g)
          if (static_cast<unsigned char>(smem[spec.dynamic_smem + g]) != 0xA5)
            fault(std::string("kernel ") + spec.name + " wrote past the end of its dynamic shared memory (" +
                  std::to_string(spec.dynamic_smem) + " bytes)");
      }
  ts.run = nullptr;
  t_current_thread = nullptr;
}

}  // namespace vlm::emu
