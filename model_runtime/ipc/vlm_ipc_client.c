/*
 * vlm_ipc_client.c: client side of the vlmd protocol (see vlm_ipc.h): the
 * handshake and memfd mapping, the request-arena allocator (its state lives
 * in this process, never in shared memory), slots with generations, ring
 * production with doorbells on empty -> non-empty, and result consumption
 * with bounds checks (the daemon is trusted less than our own memory).
 * Not here: reconnecting, timers, JSON.
 */
#define _GNU_SOURCE
#include "vlm_ipc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ARENA_ALIGN 64u

typedef struct arena_range {
    uint64_t offset;
    uint64_t length;
} arena_range;

typedef struct client_slot {
    int      in_use;
    uint32_t gen;
    void    *user;
    uint64_t regions[VLM_IPC_MAX_REGIONS];
    size_t   n_regions;
} client_slot;

enum { STATE_NEW, STATE_HANDSHAKE, STATE_READY, STATE_CLOSED };

struct vlm_ipc_client {
    int                  fd;
    int                  state;
    char                 error[160];
    uint8_t             *base;
    uint64_t             shm_size;
    vlm_ipc_shm_header  *hdr;
    vlm_ipc_shm_header   layout;        /* validated copy of the header */
    vlm_ipc_request_entry *req_ring;
    vlm_ipc_result_entry  *res_ring;
    uint8_t             *req_arena;
    uint8_t             *res_arena;
    uint64_t             req_tail;      /* our copy of what we published */
    uint64_t             res_head;      /* next result to read */
    int                  have_prev;     /* previous event not yet released */
    uint64_t             prev_arena_end;
    client_slot         *slots;
    uint32_t             next_slot;
    uint32_t             in_flight;
    uint32_t             closed_scan;   /* next slot to fail after CLOSED */
    int                  results_kept;  /* CLOSED by EOF: ring still mapped */
    arena_range         *free_list;     /* sorted by offset, coalesced */
    size_t               n_free, cap_free;
    arena_range         *used;          /* live allocations */
    size_t               n_used, cap_used;
};

static void
set_error(vlm_ipc_client *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
}

vlm_ipc_client *
vlm_ipc_client_new(void)
{
    vlm_ipc_client *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->fd = -1;
        c->state = STATE_NEW;
    }
    return c;
}

static void
unmap(vlm_ipc_client *c)
{
    if (c->base != NULL) {
        munmap(c->base, c->shm_size);
        c->base = NULL;
        c->hdr = NULL;
    }
}

void
vlm_ipc_client_free(vlm_ipc_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    unmap(c);
    free(c->slots);
    free(c->free_list);
    free(c->used);
    free(c);
}

int
vlm_ipc_client_fd(const vlm_ipc_client *c)
{
    return c->fd;
}

int
vlm_ipc_client_ready(const vlm_ipc_client *c)
{
    return c->state == STATE_READY;
}

int
vlm_ipc_client_closed(const vlm_ipc_client *c)
{
    return c->state == STATE_CLOSED;
}

uint64_t
vlm_ipc_client_epoch(const vlm_ipc_client *c)
{
    return c->layout.epoch;
}

const char *
vlm_ipc_client_error(const vlm_ipc_client *c)
{
    return c->error;
}

uint32_t
vlm_ipc_client_in_flight(const vlm_ipc_client *c)
{
    return c->in_flight;
}

/* The daemon is gone: drop the socket and the mapping at once; in-flight
 * requests are failed one by one by vlm_ipc_next_event(). */
static int
mark_closed(vlm_ipc_client *c, const char *why)
{
    if (c->state != STATE_CLOSED) {
        if (c->error[0] == '\0') {
            set_error(c, "%s", why);
        }
        c->state = STATE_CLOSED;
        c->have_prev = 0;
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
        unmap(c);
    }
    return VLM_IPC_CLOSED;
}

/* The daemon is gone but broke no rule (EOF, or a doorbell that could not be
 * sent): it may have written final results just before (drain, shutdown).
 * Keep the mapping so vlm_ipc_next_event() hands those out before failing
 * what is still open. */
static int
mark_peer_closed(vlm_ipc_client *c, const char *why)
{
    if (c->state != STATE_READY) {
        return mark_closed(c, why);
    }
    if (c->error[0] == '\0') {
        set_error(c, "%s", why);
    }
    c->state = STATE_CLOSED;
    c->have_prev = 0;
    c->results_kept = 1;
    close(c->fd);
    c->fd = -1;
    return VLM_IPC_CLOSED;
}

int
vlm_ipc_client_connect(vlm_ipc_client *c, const char *path, char *err, size_t err_len)
{
    struct sockaddr_un addr;
    vlm_ipc_msg        hello;

    if (c->state != STATE_NEW) {
        snprintf(err, err_len, "client already used");
        return VLM_IPC_ERROR;
    }
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_len, "%s: socket path too long", path);
        return VLM_IPC_ERROR;
    }
    c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return VLM_IPC_ERROR;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path));
    if (connect(c->fd, (struct sockaddr *) &addr, sizeof(addr)) != 0) {
        /* A unix connect either completes or fails at once; EAGAIN means the
         * daemon's backlog is full, which the caller treats as busy. */
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return errno == EAGAIN ? VLM_IPC_AGAIN : VLM_IPC_CLOSED;
    }
    memset(&hello, 0, sizeof(hello));
    hello.type = VLM_IPC_MSG_HELLO;
    hello.version = VLM_IPC_VERSION;
    hello.pid = (uint32_t) getpid();
    if (send(c->fd, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t) sizeof(hello)) {
        snprintf(err, err_len, "%s: hello: %s", path, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return VLM_IPC_CLOSED;
    }
    c->state = STATE_HANDSHAKE;
    return VLM_IPC_OK;
}

static int
is_pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* Checks the layout the daemon wrote before we trust any pointer into it. */
static int
attach(vlm_ipc_client *c, int memfd, const vlm_ipc_msg *w)
{
    struct stat         st;
    vlm_ipc_shm_header  h;
    uint64_t            req_bytes, res_bytes;
    int                 seals;

    if (fstat(memfd, &st) != 0 || (uint64_t) st.st_size != w->shm_size
        || w->shm_size < VLM_IPC_HEADER_SIZE)
    {
        set_error(c, "shared memory size %lld does not match the handshake",
                  (long long) st.st_size);
        return 0;
    }
    /* Unsealed, the daemon could shrink the file under our mapping and every
     * later access would be a SIGBUS in nginx. */
    seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        set_error(c, "shared memory is not sealed against resizing");
        return 0;
    }
    c->base = mmap(NULL, w->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (c->base == MAP_FAILED) {
        c->base = NULL;
        set_error(c, "mmap: %s", strerror(errno));
        return 0;
    }
    c->shm_size = w->shm_size;
    memcpy(&h, c->base, sizeof(h));
    req_bytes = (uint64_t) h.request_ring_capacity * sizeof(vlm_ipc_request_entry);
    res_bytes = (uint64_t) h.result_ring_capacity * sizeof(vlm_ipc_result_entry);
    if (h.magic != VLM_IPC_MAGIC || h.version != VLM_IPC_VERSION
        || h.header_size != VLM_IPC_HEADER_SIZE || h.shm_size != c->shm_size
        || h.epoch != w->epoch
        || !is_pow2(h.request_ring_capacity) || !is_pow2(h.result_ring_capacity)
        || h.max_slots == 0 || h.max_slots > 65536
        || !vlm_ipc_region_ok(h.request_ring_offset, req_bytes, c->shm_size)
        || !vlm_ipc_region_ok(h.result_ring_offset, res_bytes, c->shm_size)
        || !vlm_ipc_region_ok(h.request_arena_offset, h.request_arena_size, c->shm_size)
        || !vlm_ipc_region_ok(h.result_arena_offset, h.result_arena_size, c->shm_size)
        || h.request_ring_offset % 64 != 0 || h.result_ring_offset % 64 != 0
        || h.request_arena_size < ARENA_ALIGN || h.result_arena_size == 0)
    {
        set_error(c, "shared memory header is not a valid version %u layout",
                  VLM_IPC_VERSION);
        return 0;
    }
    c->layout = h;
    c->hdr = (vlm_ipc_shm_header *) c->base;
    c->req_ring = (vlm_ipc_request_entry *) (c->base + h.request_ring_offset);
    c->res_ring = (vlm_ipc_result_entry *) (c->base + h.result_ring_offset);
    c->req_arena = c->base + h.request_arena_offset;
    c->res_arena = c->base + h.result_arena_offset;
    c->req_tail = vlm_ipc_load_acquire(&c->hdr->request_tail);
    c->res_head = vlm_ipc_load_acquire(&c->hdr->result_head);
    c->slots = calloc(h.max_slots, sizeof(client_slot));
    c->cap_free = 64;
    c->free_list = malloc(c->cap_free * sizeof(arena_range));
    if (c->slots == NULL || c->free_list == NULL) {
        set_error(c, "out of memory");
        return 0;
    }
    c->free_list[0].offset = 0;
    c->free_list[0].length = h.request_arena_size - h.request_arena_size % ARENA_ALIGN;
    c->n_free = 1;
    return 1;
}

int
vlm_ipc_client_process(vlm_ipc_client *c)
{
    vlm_ipc_msg     m;
    struct msghdr   mh;
    struct iovec    iov;
    struct cmsghdr *cm;
    char            cbuf[CMSG_SPACE(sizeof(int) * 4)];
    ssize_t         n;
    int             memfd;

    if (c->state == STATE_CLOSED || c->state == STATE_NEW) {
        return c->state == STATE_CLOSED ? VLM_IPC_CLOSED : VLM_IPC_ERROR;
    }
    for ( ;; ) {
        memset(&mh, 0, sizeof(mh));
        iov.iov_base = &m;
        iov.iov_len = sizeof(m);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return c->state == STATE_READY ? VLM_IPC_OK : VLM_IPC_AGAIN;
            }
            if (errno == EINTR) {
                continue;
            }
            set_error(c, "daemon connection: %s", strerror(errno));
            return mark_closed(c, c->error);
        }
        memfd = -1;
        for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k, nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (k = 0; k < nfd; k++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                    if (memfd < 0) {
                        memfd = fd;
                    } else {
                        close(fd);
                    }
                }
            }
        }
        if (n == 0 && memfd < 0) {
            return mark_peer_closed(c, "daemon closed the connection");
        }
        if (n != (ssize_t) sizeof(m)) {
            /* Descriptors arrive with any message, even an empty one: never keep them. */
            if (memfd >= 0) {
                close(memfd);
            }
            set_error(c, "daemon sent a %zd-byte message", n);
            return mark_closed(c, c->error);
        }
        if (c->state == STATE_HANDSHAKE) {
            if (m.type == VLM_IPC_MSG_REFUSED) {
                if (memfd >= 0) {
                    close(memfd);
                }
                set_error(c, "daemon refused the connection (status %u)", m.status);
                return mark_closed(c, c->error);
            }
            if (m.type != VLM_IPC_MSG_WELCOME || m.version != VLM_IPC_VERSION || memfd < 0) {
                if (memfd >= 0) {
                    close(memfd);
                }
                set_error(c, "bad handshake from daemon (type %u version %u)", m.type,
                          m.version);
                return mark_closed(c, c->error);
            }
            if (!attach(c, memfd, &m)) {
                close(memfd);
                return mark_closed(c, c->error);
            }
            close(memfd);   /* the mapping keeps the memory */
            c->state = STATE_READY;
            continue;
        }
        if (memfd >= 0) {
            close(memfd);
        }
        /* Doorbells carry no data: the rings are read by next_event. */
    }
}

int
vlm_ipc_client_wait(vlm_ipc_client *c, int timeout_ms)
{
    struct pollfd p;
    int           rc;

    if (c->state == STATE_CLOSED) {
        return VLM_IPC_CLOSED;
    }
    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) {
        return VLM_IPC_ERROR;
    }
    return vlm_ipc_client_process(c);
}

/* ---- request arena allocator (first fit over a sorted free list) ---- */

static int
grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t nc;
    void  *p;

    if (need <= *cap) {
        return 1;
    }
    nc = *cap ? *cap * 2 : 64;
    while (nc < need) {
        nc *= 2;
    }
    p = realloc(*arr, nc * elem);
    if (p == NULL) {
        return 0;
    }
    *arr = p;
    *cap = nc;
    return 1;
}

void *
vlm_ipc_alloc(vlm_ipc_client *c, uint64_t size, uint64_t *offset)
{
    size_t   i;
    uint64_t need;

    if (c->state != STATE_READY || size == 0 || size > c->layout.request_arena_size) {
        return NULL;
    }
    need = (size + ARENA_ALIGN - 1) & ~(uint64_t) (ARENA_ALIGN - 1);
    if (!grow((void **) &c->used, &c->cap_used, c->n_used + 1, sizeof(arena_range))) {
        return NULL;
    }
    for (i = 0; i < c->n_free; i++) {
        if (c->free_list[i].length >= need) {
            uint64_t off = c->free_list[i].offset;
            c->free_list[i].offset += need;
            c->free_list[i].length -= need;
            if (c->free_list[i].length == 0) {
                memmove(&c->free_list[i], &c->free_list[i + 1],
                        (c->n_free - i - 1) * sizeof(arena_range));
                c->n_free--;
            }
            c->used[c->n_used].offset = off;
            c->used[c->n_used].length = need;
            c->n_used++;
            *offset = off;
            return c->req_arena + off;
        }
    }
    return NULL;
}

void
vlm_ipc_free(vlm_ipc_client *c, uint64_t offset)
{
    size_t      i, pos;
    arena_range r;

    for (i = 0; i < c->n_used; i++) {
        if (c->used[i].offset == offset) {
            break;
        }
    }
    if (i == c->n_used) {
        return;
    }
    r = c->used[i];
    c->used[i] = c->used[--c->n_used];
    if (c->free_list == NULL) {
        return;   /* never attached */
    }
    for (pos = 0; pos < c->n_free && c->free_list[pos].offset < r.offset; pos++) {
    }
    if (pos > 0 && c->free_list[pos - 1].offset + c->free_list[pos - 1].length == r.offset) {
        c->free_list[pos - 1].length += r.length;
        if (pos < c->n_free
            && c->free_list[pos - 1].offset + c->free_list[pos - 1].length
               == c->free_list[pos].offset)
        {
            c->free_list[pos - 1].length += c->free_list[pos].length;
            memmove(&c->free_list[pos], &c->free_list[pos + 1],
                    (c->n_free - pos - 1) * sizeof(arena_range));
            c->n_free--;
        }
        return;
    }
    if (pos < c->n_free && r.offset + r.length == c->free_list[pos].offset) {
        c->free_list[pos].offset = r.offset;
        c->free_list[pos].length += r.length;
        return;
    }
    if (!grow((void **) &c->free_list, &c->cap_free, c->n_free + 1, sizeof(arena_range))) {
        return;   /* leaks the range rather than corrupt the list */
    }
    memmove(&c->free_list[pos + 1], &c->free_list[pos], (c->n_free - pos) * sizeof(arena_range));
    c->free_list[pos] = r;
    c->n_free++;
}

/* ---- requests ---- */

static void
send_doorbell(vlm_ipc_client *c, uint32_t type)
{
    vlm_ipc_msg m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.version = VLM_IPC_VERSION;
    /* EAGAIN: the daemon has unread doorbells already, so it will look. */
    if (send(c->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) < 0
        && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    {
        set_error(c, "daemon connection: %s", strerror(errno));
        mark_peer_closed(c, c->error);
    }
}

static int
push_request(vlm_ipc_client *c, const vlm_ipc_request_entry *e)
{
    uint64_t head = vlm_ipc_load_acquire(&c->hdr->request_head);
    uint64_t old_tail = c->req_tail;

    if (old_tail - head >= c->layout.request_ring_capacity) {
        return VLM_IPC_AGAIN;
    }
    memcpy(&c->req_ring[old_tail & (c->layout.request_ring_capacity - 1)], e, sizeof(*e));
    c->req_tail = old_tail + 1;
    vlm_ipc_store_release(&c->hdr->request_tail, c->req_tail);
    vlm_ipc_fence();
    if (vlm_ipc_load_acquire(&c->hdr->request_head) == old_tail) {
        send_doorbell(c, VLM_IPC_MSG_DOORBELL_REQUEST);
    }
    return c->state == STATE_CLOSED ? VLM_IPC_CLOSED : VLM_IPC_OK;
}

static int
take_slot(vlm_ipc_client *c, uint32_t *slot)
{
    uint32_t k, s;

    for (k = 0; k < c->layout.max_slots; k++) {
        s = (c->next_slot + k) % c->layout.max_slots;
        if (!c->slots[s].in_use) {
            c->next_slot = (s + 1) % c->layout.max_slots;
            *slot = s;
            return 1;
        }
    }
    return 0;
}

static int
start_request(vlm_ipc_client *c, uint32_t kind, uint64_t body_offset, uint64_t body_length,
              uint32_t timeout_ms, uint64_t client, const uint64_t *regions, size_t n_regions, void *user,
              uint32_t *slot_out, uint32_t *gen_out)
{
    vlm_ipc_request_entry e;
    client_slot          *s;
    uint32_t              slot;
    int                   rc;

    if (c->state == STATE_CLOSED) {
        return VLM_IPC_CLOSED;
    }
    if (c->state != STATE_READY || n_regions > VLM_IPC_MAX_REGIONS) {
        return VLM_IPC_ERROR;
    }
    if (c->req_tail - vlm_ipc_load_acquire(&c->hdr->request_head)
        >= c->layout.request_ring_capacity || !take_slot(c, &slot))
    {
        return VLM_IPC_AGAIN;
    }
    s = &c->slots[slot];
    s->gen = s->gen + 1 == 0 ? 1 : s->gen + 1;
    memset(&e, 0, sizeof(e));
    e.kind = kind;
    e.slot = slot;
    e.gen = s->gen;
    e.timeout_ms = timeout_ms;
    e.body_offset = body_offset;
    e.body_length = body_length;
    e.client = client;
    rc = push_request(c, &e);
    if (rc != VLM_IPC_OK) {
        return rc;
    }
    s->in_use = 1;
    s->user = user;
    s->n_regions = n_regions;
    if (n_regions > 0) {
        memcpy(s->regions, regions, n_regions * sizeof(uint64_t));
    }
    c->in_flight++;
    if (slot_out) {
        *slot_out = slot;
    }
    if (gen_out) {
        *gen_out = s->gen;
    }
    return VLM_IPC_OK;
}

int
vlm_ipc_submit(vlm_ipc_client *c, uint64_t body_offset, uint64_t body_length,
               uint32_t timeout_ms, uint64_t client, const uint64_t *regions, size_t n_regions,
               void *user, uint32_t *slot, uint32_t *gen)
{
    return start_request(c, VLM_IPC_REQ_SUBMIT, body_offset, body_length, timeout_ms, client, regions,
                         n_regions, user, slot, gen);
}

int
vlm_ipc_stats(vlm_ipc_client *c, void *user, uint32_t *slot, uint32_t *gen)
{
    return start_request(c, VLM_IPC_REQ_STATS, 0, 0, 0, 0, NULL, 0, user, slot, gen);
}

int
vlm_ipc_ping(vlm_ipc_client *c, void *user, uint32_t *slot, uint32_t *gen)
{
    return start_request(c, VLM_IPC_REQ_PING, 0, 0, 0, 0, NULL, 0, user, slot, gen);
}

int
vlm_ipc_cancel(vlm_ipc_client *c, uint32_t slot, uint32_t gen)
{
    vlm_ipc_request_entry e;

    if (c->state == STATE_CLOSED) {
        return VLM_IPC_CLOSED;
    }
    if (c->state != STATE_READY || slot >= c->layout.max_slots || !c->slots[slot].in_use
        || c->slots[slot].gen != gen)
    {
        return VLM_IPC_ERROR;
    }
    memset(&e, 0, sizeof(e));
    e.kind = VLM_IPC_REQ_CANCEL;
    e.slot = slot;
    e.gen = gen;
    return push_request(c, &e);
}

/* ---- results ---- */

static void
finish_slot(vlm_ipc_client *c, uint32_t slot)
{
    client_slot *s = &c->slots[slot];
    size_t       i;

    for (i = 0; i < s->n_regions; i++) {
        vlm_ipc_free(c, s->regions[i]);
    }
    s->n_regions = 0;
    s->in_use = 0;
    s->user = NULL;
    c->in_flight--;
}

static void
release_prev(vlm_ipc_client *c)
{
    if (!c->have_prev || c->state != STATE_READY) {
        c->have_prev = 0;
        return;
    }
    c->have_prev = 0;
    vlm_ipc_store_release(&c->hdr->result_arena_head, c->prev_arena_end);
    vlm_ipc_store_release(&c->hdr->result_head, c->res_head);
    vlm_ipc_fence();
    if (__atomic_load_n(&c->hdr->result_blocked, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&c->hdr->result_blocked, 0, __ATOMIC_RELEASE);
        send_doorbell(c, VLM_IPC_MSG_RESULT_SPACE);
    }
}

static int
closed_event(vlm_ipc_client *c, vlm_ipc_event *ev)
{
    while (c->closed_scan < c->layout.max_slots && c->slots != NULL) {
        uint32_t s = c->closed_scan++;
        if (c->slots[s].in_use) {
            memset(ev, 0, sizeof(*ev));
            ev->kind = VLM_IPC_RES_ERROR;
            ev->slot = s;
            ev->gen = c->slots[s].gen;
            ev->status = 503;
            ev->user = c->slots[s].user;
            ev->text = c->error;
            ev->text_length = strlen(c->error);
            ev->final = 1;
            finish_slot(c, s);
            return 1;
        }
    }
    return 0;
}

/* Reads one result record: 1 with an event, 0 if the ring is empty, -1 if
 * the daemon wrote something out of bounds (the error is set). */
static int
read_result(vlm_ipc_client *c, vlm_ipc_event *ev)
{
    vlm_ipc_result_entry e;
    uint64_t             tail, phys, arena_size;
    const uint8_t       *payload;

    arena_size = c->layout.result_arena_size;
    for ( ;; ) {
        if (c->hdr == NULL) {
            return 0;   /* unmapped while releasing a record: nothing more to read */
        }
        tail = vlm_ipc_load_acquire(&c->hdr->result_tail);
        if (tail == c->res_head) {
            return 0;
        }
        if (tail - c->res_head > c->layout.result_ring_capacity) {
            set_error(c, "daemon result ring is corrupt");
            return -1;
        }
        memcpy(&e, &c->res_ring[c->res_head & (c->layout.result_ring_capacity - 1)], sizeof(e));
        c->res_head++;
        phys = e.payload_pos % arena_size;
        if (e.payload_length > arena_size - phys
            || (uint64_t) e.text_length + (uint64_t) e.n_tokens * 4 + e.logprobs_length
               > e.payload_length)
        {
            set_error(c, "daemon result record is out of bounds");
            return -1;
        }
        c->have_prev = 1;
        c->prev_arena_end = e.payload_length ? e.payload_pos + e.payload_length
                                             : vlm_ipc_load_acquire(&c->hdr->result_arena_head);
        if (e.slot >= c->layout.max_slots || !c->slots[e.slot].in_use
            || c->slots[e.slot].gen != e.gen)
        {
            release_prev(c);   /* stale: a request we already finished */
            continue;
        }
        payload = c->res_arena + phys;
        memset(ev, 0, sizeof(*ev));
        ev->kind = e.kind;
        ev->slot = e.slot;
        ev->gen = e.gen;
        ev->status = e.status;
        ev->user = c->slots[e.slot].user;
        ev->text = (const char *) payload;
        ev->text_length = e.text_length;
        ev->tokens = payload + e.text_length;
        ev->n_tokens = e.n_tokens;
        ev->logprobs = payload + e.text_length + (size_t) e.n_tokens * 4;
        ev->logprobs_length = e.logprobs_length;
        ev->prompt_tokens = e.prompt_tokens;
        ev->completion_tokens = e.completion_tokens;
        ev->finish_reason = e.finish_reason;
        memcpy(ev->language, e.language, VLM_IPC_LANGUAGE_LEN);
        ev->final = e.kind != VLM_IPC_RES_DELTA;
        if (ev->final) {
            finish_slot(c, e.slot);
        }
        return 1;
    }
}

int
vlm_ipc_next_event(vlm_ipc_client *c, vlm_ipc_event *ev)
{
    int rc;

    release_prev(c);
    if (c->state == STATE_CLOSED) {
        /* Results written before the daemon closed come first; then every
         * request still open fails with the close reason. */
        if (c->results_kept) {
            if (read_result(c, ev) == 1) {
                return 1;
            }
            c->results_kept = 0;
            unmap(c);
        }
        return closed_event(c, ev);
    }
    if (c->state != STATE_READY) {
        return 0;
    }
    rc = read_result(c, ev);
    if (rc < 0) {
        mark_closed(c, c->error);
        return closed_event(c, ev);
    }
    return rc;
}

int32_t
vlm_ipc_event_token(const vlm_ipc_event *ev, uint32_t i)
{
    int32_t v = 0;

    if (i < ev->n_tokens) {
        memcpy(&v, ev->tokens + (size_t) i * 4, 4);
    }
    return v;
}

int
vlm_ipc_logprob_next(const vlm_ipc_event *ev, size_t *pos, vlm_ipc_logprob *out)
{
    uint32_t nb;

    if (*pos > ev->logprobs_length || ev->logprobs_length - *pos < 12) {
        return 0;
    }
    memcpy(&out->id, ev->logprobs + *pos, 4);
    memcpy(&out->logprob, ev->logprobs + *pos + 4, 4);
    memcpy(&nb, ev->logprobs + *pos + 8, 4);
    if (nb > ev->logprobs_length - *pos - 12) {
        return 0;
    }
    out->bytes = ev->logprobs + *pos + 12;
    out->n_bytes = nb;
    *pos += 12 + (size_t) nb;
    return 1;
}

int
vlm_ipc_logprob_count(const vlm_ipc_event *ev, size_t *pos, uint32_t *n)
{
    if (*pos > ev->logprobs_length || ev->logprobs_length - *pos < 4) {
        return 0;
    }
    memcpy(n, ev->logprobs + *pos, 4);
    *pos += 4;
    return 1;
}
