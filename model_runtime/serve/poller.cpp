// poller.cpp: see poller.h.
#include "serve/poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace vlm {

Poller::Poller() : fd_(epoll_create1(EPOLL_CLOEXEC)) {}

Poller::~Poller()
{
    if (fd_ >= 0) close(fd_);
}

void Poller::add(int fd, uint64_t key, bool hangup)
{
    epoll_event ev{};
    ev.events = EPOLLIN | (hangup ? EPOLLRDHUP : 0u);
    ev.data.u64 = key;
    epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev);
}

void Poller::remove(int fd) { epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr); }

int Poller::wait(uint64_t *keys, int max, int timeout_ms)
{
    epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(fd_, evs, max, timeout_ms);
    if (n < 0) return 0;   // EINTR: the caller's loop comes round again
    for (int i = 0; i < n; i++) keys[i] = evs[i].data.u64;
    return n;
}

Doorbell::Doorbell() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Doorbell::~Doorbell()
{
    if (fd_ >= 0) close(fd_);
}

void Doorbell::ring() const
{
    uint64_t one = 1;
    ssize_t n = write(fd_, &one, sizeof one);   // EAGAIN: it is ringing already
    (void)n;
}

void Doorbell::clear() const
{
    uint64_t v;
    ssize_t n = read(fd_, &v, sizeof v);
    (void)n;
}

}  // namespace vlm
