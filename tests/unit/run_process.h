// run_process.h: runs a built binary with arguments (no shell) and captures its
// exit status, stdout and stderr, for suites that test the command-line tools
// as a user runs them.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char **environ;

struct ProcessResult {
    int         exit_code = -1;   // -1 when killed by a signal
    int         signal    = 0;
    std::string out, err;
};

inline std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline ProcessResult run_process(const std::vector<std::string> &argv)
{
    char out_path[] = "/tmp/vlm-test-out-XXXXXX";
    char err_path[] = "/tmp/vlm-test-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    ProcessResult r;
    if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) == 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    } else {
        r.err = "cannot start " + argv[0];
    }
    posix_spawn_file_actions_destroy(&fa);
    close(out_fd);
    close(err_fd);
    r.out = slurp(out_path);
    r.err += slurp(err_path);
    unlink(out_path);
    unlink(err_path);
    return r;
}

inline std::string env_or_die(const char *name)
{
    const char *v = std::getenv(name);
    if (!v || !*v) {
        std::fprintf(stderr, "%s is not set (run through ctest)\n", name);
        std::exit(2);
    }
    return v;
}
