// vlmd_process.h: the benchmarks' way to run the real vlmd: start it on a
// socket in a fresh temporary directory (its log beside it), connect clients,
// stop it. Benchmarks only: exits the process on any failure.
#pragma once

#include "ipc/vlm_ipc_client.h"

#include <sys/types.h>

#include <string>
#include <vector>

namespace vlm::bench {

double now_ms();

[[noreturn]] void die(const char *program, const std::string &message);

struct VlmdProcess {
    std::string dir, socket, log;
    pid_t       pid = -1;
};

// Starts `vlmd_path --model MODEL --socket ... extra_args...` and waits until
// a client can connect (up to 120 s).
VlmdProcess start_vlmd(const char *program, const std::string &vlmd_path, const std::string &model_dir,
                       const std::vector<std::string> &extra_args);

// A connected, ready client; nullptr if vlmd does not answer within 5 s.
vlm_ipc_client *connect_ready(const std::string &socket);

// SIGTERM, wait; removes the directory. Returns vlmd's exit status (-1: signal).
int stop_vlmd(VlmdProcess &p);

}  // namespace vlm::bench
