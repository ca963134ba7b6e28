// poller.h: the IPC thread's event source, in the manner of redis's ae_epoll:
// one epoll set whose entries carry a 64-bit key (a connection id, or one of
// the server's fixed keys), and eventfd doorbells that other threads ring to
// wake the loop. Level-triggered: a key keeps coming back until its fd is
// drained. Not here: what the keys mean (ipc_server.cpp).
#pragma once

#include <cstdint>

namespace vlm {

class Poller {
public:
    Poller();                            // check ok()
    ~Poller();
    Poller(const Poller &) = delete;
    Poller &operator=(const Poller &) = delete;

    bool ok() const { return fd_ >= 0; }
    // Readable (and, for sockets, peer hang-up) on `fd` reports `key`.
    void add(int fd, uint64_t key, bool hangup = false);
    void remove(int fd);
    // Waits up to `timeout_ms` (-1: forever) for at most `max` (<= 64) ready
    // entries and writes their keys to `keys`: readable, hung up or in
    // error alike (the owner of the key finds out which by reading).
    // Returns how many (0 on timeout or EINTR).
    int wait(uint64_t *keys, int max, int timeout_ms);

private:
    int fd_ = -1;
};

// An eventfd another thread rings; the poller reports it until clear().
class Doorbell {
public:
    Doorbell();                          // check ok()
    ~Doorbell();
    Doorbell(const Doorbell &) = delete;
    Doorbell &operator=(const Doorbell &) = delete;

    bool ok() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    void ring() const;                   // any thread; never blocks
    void clear() const;

private:
    int fd_ = -1;
};

}  // namespace vlm
