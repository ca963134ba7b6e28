/*
 * vlm_ipc_client.h: the client side of vlmd's protocol (vlm_ipc.h) for an
 * event loop: non-blocking, driven by one fd, no threads, no callbacks, C.
 * nginx adds vlm_ipc_client_fd() to its loop, calls vlm_ipc_client_process()
 * when it is readable and then vlm_ipc_next_event() until it returns 0.
 * Not here: reconnect policy and timers (the caller's), JSON building.
 *
 * Typical use:
 *   c = vlm_ipc_client_new();
 *   vlm_ipc_client_connect(c, "/run/vlmd.sock", err, sizeof(err));
 *   ... fd readable -> vlm_ipc_client_process(c) until vlm_ipc_client_ready(c)
 *   p = vlm_ipc_alloc(c, n, &off); write image bytes / body JSON at p
 *   vlm_ipc_submit(c, body_off, body_len, timeout_ms, client, regions, n, user, &slot, &gen)
 *   ... fd readable -> process(); while (next_event(c, &ev)) handle(ev)
 *   vlm_ipc_client_free(c)
 */
#ifndef VLM_IPC_CLIENT_H
#define VLM_IPC_CLIENT_H

#include "vlm_ipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
#define VLM_IPC_OK       0
#define VLM_IPC_AGAIN    1     /* not yet / no room now: retry later */
#define VLM_IPC_ERROR   -1     /* bad argument or protocol violation */
#define VLM_IPC_CLOSED  -2     /* the daemon is gone (or refused us) */

/* arena regions freed with one request: vlmd's default max_images (8) with
 * one region each, and the body */
#define VLM_IPC_MAX_REGIONS  9

typedef struct vlm_ipc_client vlm_ipc_client;

typedef struct vlm_ipc_event {
    uint32_t        kind;          /* VLM_IPC_RES_* */
    uint32_t        slot, gen;
    uint32_t        status;        /* ERROR: HTTP-like */
    void           *user;          /* as given to submit/stats/ping */
    const char     *text;          /* DELTA/DONE text, ERROR message, STATS JSON */
    size_t          text_length;
    const uint8_t  *tokens;        /* n_tokens little-endian int32, unaligned */
    uint32_t        n_tokens;
    const uint8_t  *logprobs;      /* see vlm_ipc.h; vlm_ipc_logprob_next() */
    size_t          logprobs_length;
    uint32_t        prompt_tokens, completion_tokens;
    uint32_t        finish_reason; /* DONE: VLM_IPC_FINISH_* */
    char            language[VLM_IPC_LANGUAGE_LEN + 1];
    int             final;         /* DONE, ERROR, STATS, PONG: slot is free */
} vlm_ipc_event;

vlm_ipc_client *vlm_ipc_client_new(void);
/* Closes the socket, unmaps the shared memory, frees everything. */
void vlm_ipc_client_free(vlm_ipc_client *c);

/* Starts a non-blocking connect and sends HELLO. */
int vlm_ipc_client_connect(vlm_ipc_client *c, const char *path, char *err, size_t err_len);
int vlm_ipc_client_fd(const vlm_ipc_client *c);
/* Reads what the socket has (WELCOME, doorbells, EOF). OK, AGAIN (handshake
 * pending), CLOSED (daemon gone: pending requests turn into ERROR events). */
int vlm_ipc_client_process(vlm_ipc_client *c);
int vlm_ipc_client_ready(const vlm_ipc_client *c);
int vlm_ipc_client_closed(const vlm_ipc_client *c);
uint64_t vlm_ipc_client_epoch(const vlm_ipc_client *c);
/* A one-line reason after ERROR/CLOSED. */
const char *vlm_ipc_client_error(const vlm_ipc_client *c);
/* Requests in flight (submitted, final event not yet returned). */
uint32_t vlm_ipc_client_in_flight(const vlm_ipc_client *c);

/* Request arena: NULL when there is no room (AGAIN semantics). */
void *vlm_ipc_alloc(vlm_ipc_client *c, uint64_t size, uint64_t *offset);
void vlm_ipc_free(vlm_ipc_client *c, uint64_t offset);

/* Submits a request. `client` says whose it is (vlmd shares batch slots
 * fairly between clients of one priority; 0: unknown, the connection counts
 * as the client). `regions` (arena offsets from vlm_ipc_alloc) are freed
 * when its final event has been returned. AGAIN: ring or slots full. */
int vlm_ipc_submit(vlm_ipc_client *c, uint64_t body_offset, uint64_t body_length,
                   uint32_t timeout_ms, uint64_t client, const uint64_t *regions,
                   size_t n_regions, void *user, uint32_t *slot, uint32_t *gen);
int vlm_ipc_cancel(vlm_ipc_client *c, uint32_t slot, uint32_t gen);
int vlm_ipc_stats(vlm_ipc_client *c, void *user, uint32_t *slot, uint32_t *gen);
int vlm_ipc_ping(vlm_ipc_client *c, void *user, uint32_t *slot, uint32_t *gen);

/* 1 with the next event (its pointers stay valid until the next call), 0 if
 * none is ready. Releases the previous event's shared memory. */
int vlm_ipc_next_event(vlm_ipc_client *c, vlm_ipc_event *ev);

/* DELTA helpers. */
int32_t vlm_ipc_event_token(const vlm_ipc_event *ev, uint32_t i);
typedef struct vlm_ipc_logprob {
    int32_t        id;
    float          logprob;
    const uint8_t *bytes;
    uint32_t       n_bytes;
} vlm_ipc_logprob;
/* Reads one logprob entry at *pos (advancing it); 0 at the end or on a
 * malformed record. Per token: one entry, then uint32 n_top via
 * vlm_ipc_logprob_count(), then n_top entries. */
int vlm_ipc_logprob_next(const vlm_ipc_event *ev, size_t *pos, vlm_ipc_logprob *out);
int vlm_ipc_logprob_count(const vlm_ipc_event *ev, size_t *pos, uint32_t *n);

/* For command-line tools and tests only (blocks): waits up to timeout_ms for
 * the fd and processes it. */
int vlm_ipc_client_wait(vlm_ipc_client *c, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* VLM_IPC_CLIENT_H */
