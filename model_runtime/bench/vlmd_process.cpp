// vlmd_process.cpp: see vlmd_process.h.
#include "bench/vlmd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

extern char **environ;

namespace vlm::bench {

double now_ms()
{
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

void die(const char *program, const std::string &message)
{
    std::fprintf(stderr, "%s: %s\n", program, message.c_str());
    std::exit(1);
}

vlm_ipc_client *connect_ready(const std::string &socket)
{
    vlm_ipc_client *c = vlm_ipc_client_new();
    char err[256];
    if (vlm_ipc_client_connect(c, socket.c_str(), err, sizeof err) != VLM_IPC_OK) {
        vlm_ipc_client_free(c);
        return nullptr;
    }
    const double t0 = now_ms();
    while (!vlm_ipc_client_ready(c) && now_ms() - t0 < 5000)
        if (vlm_ipc_client_wait(c, 100) == VLM_IPC_CLOSED) break;
    if (!vlm_ipc_client_ready(c)) {
        vlm_ipc_client_free(c);
        return nullptr;
    }
    return c;
}

VlmdProcess start_vlmd(const char *program, const std::string &vlmd_path, const std::string &model_dir,
                       const std::vector<std::string> &extra_args)
{
    VlmdProcess p;
    char dir[] = "/tmp/vlm-bench-XXXXXX";
    if (!mkdtemp(dir)) die(program, "mkdtemp failed");
    p.dir = dir;
    p.socket = p.dir + "/vlmd.sock";
    p.log = p.dir + "/vlmd.log";
    std::vector<std::string> args{vlmd_path, "--model", model_dir, "--socket", p.socket};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char *> av;
    for (auto &s : args) av.push_back(const_cast<char *>(s.c_str()));
    av.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, p.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&p.pid, av[0], &fa, nullptr, av.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) die(program, "cannot start " + vlmd_path);
    vlm_ipc_client *c = nullptr;
    for (double t0 = now_ms(); !c && now_ms() - t0 < 120000; usleep(20000)) {
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid) die(program, "vlmd exited at startup (see " + p.log + ")");
        c = connect_ready(p.socket);
    }
    if (!c) die(program, "vlmd did not come up (see " + p.log + ")");
    vlm_ipc_client_free(c);
    return p;
}

int stop_vlmd(VlmdProcess &p)
{
    if (p.pid <= 0) return -1;
    kill(p.pid, SIGTERM);
    int st = 0;
    waitpid(p.pid, &st, 0);
    p.pid = -1;
    const std::string rm = "rm -rf " + p.dir;
    if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", p.dir.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace vlm::bench
