/*
 * vlm_ipc.h: the wire and shared-memory layout between vlmd and its clients
 * (the nginx module, vlm-run --daemon). C11, fixed-width types, no pointers in
 * shared memory, sizes and offsets pinned by static asserts. Both sides
 * access the shared indices with the GCC/Clang __atomic builtins.
 * Not here: the client state machine (vlm_ipc_client.h), the daemon
 * (ipc_server.h).
 *
 * Connection
 *   1. The client connects to vlmd's unix socket (SOCK_SEQPACKET) and sends
 *      a vlm_ipc_msg {type HELLO, version VLM_IPC_VERSION, pid}.
 *   2. vlmd answers WELCOME {version, epoch, shm_size, pid} with one memfd
 *      attached (SCM_RIGHTS), or REFUSED {status} and closes. The memfd is
 *      sealed against shrinking and growing; the client fstat()s it, checks
 *      shm_size, mmap()s it MAP_SHARED and checks the header below.
 *   3. From then on the socket carries doorbells only (DOORBELL_REQUEST,
 *      DOORBELL_RESULT, RESULT_SPACE), plus EOF/HUP when a side dies. The
 *      epoch is random per daemon start: a reconnecting client sees a new one.
 *
 * Shared memory (one memfd per connection, offsets in the header):
 *   header | request ring | result ring | request arena | result arena
 *   - Request ring: single producer (client), single consumer (daemon) of
 *     vlm_ipc_request_entry. Result ring: daemon -> client of
 *     vlm_ipc_result_entry. Indices are 64-bit and only grow; entry i lives
 *     at i & (capacity - 1). Producer: write entry, store_release(tail),
 *     seq_cst fence, load head; if head == old tail (the ring was empty) ring
 *     the doorbell. Consumer: load_acquire(tail), copy the entry out, then
 *     store_release(head), seq_cst fence, re-check tail before sleeping.
 *   - Request arena: owned by the client, which allocates regions in it
 *     (its own allocator, state kept in its own memory), writes the request
 *     body and image bytes there once, and frees them after the request's
 *     final record. vlmd decodes images where they lie.
 *   - Result arena: a byte ring owned by vlmd. A result entry's payload is
 *     at [payload_pos, payload_pos + payload_length) of a 64-bit growing
 *     position (physical offset pos % size; a payload never wraps: the
 *     producer skips to the next lap). After consuming an entry the client
 *     stores res_arena_head = payload_pos + payload_length.
 *   - Backpressure: when the result ring or arena is full vlmd sets
 *     result_blocked = 1 and keeps results in its own memory; a client that
 *     consumes results and sees the flag clears it and sends RESULT_SPACE.
 *     A client that stays full past vlmd's timeout is disconnected.
 *
 * Requests (client -> daemon), one request ring entry each:
 *   SUBMIT  slot/gen name the request (slot < max_slots, gen chosen by the
 *           client, non-zero, must differ from the slot's previous request);
 *           body_offset/body_length: the JSON body in the request arena;
 *           timeout_ms: deadline relative to arrival (0: none).
 *   CANCEL  slot/gen of a running request; its final record is DONE with
 *           finish_reason VLM_IPC_FINISH_CANCELLED.
 *   STATS   answered by a STATS record whose payload is JSON (engine and IPC
 *           metrics). PING: answered by PONG (protocol round trip).
 *
 * Request body (UTF-8 JSON, at most max_body_length bytes):
 *   {"task": "chat" | "alt_text" | "summary" | "seo_description",  (default chat)
 *    "messages": [{"role": "system"|"user"|"assistant",
 *                  "content": "text" | [{"type":"text","text":"..."},
 *                                       {"type":"image","image":<index>}]}],
 *    "images": [{"offset": <arena offset>, "length": <bytes>}],
 *    "language": "auto"|"en"|"zh", "title": "...", "text": "...",
 *    "max_chars": N,                                 (tasks)
 *    "max_tokens": N, "temperature": T, "top_p": P, "top_k": K, "seed": S,
 *    "stop": ["..."], "logprobs": -1 (none) | 0..20 (top K; chat only),
 *    "ignore_eos": false, "enable_thinking": false,
 *    "priority": "interactive" | "bulk"}
 *   Image regions must lie inside the request arena. Unknown keys are errors.
 *   Chat messages reach the model's chat template as sent: a string
 *   "content" as a string, parts as [{"type":"text","text"}, {"type":"image"}];
 *   "enable_thinking" is passed to the template only when the body has it
 *   (absent: the template's default).
 *
 * Results (daemon -> client), one result ring entry each (a task gets no
 * DELTA: its post-processed answer comes whole in DONE):
 *   DELTA   payload = text[text_length] int32 tokens[n_tokens] (unaligned,
 *           little endian) then logprobs_length bytes of logprob records:
 *           per token: entry, uint32 n_top, n_top entries; entry = int32 id,
 *           float32 logprob, uint32 n_bytes, the token's bytes.
 *   DONE    finish_reason (a VLM_IPC_FINISH_* number: stop, length,
 *           cancelled, deadline), prompt_tokens, completion_tokens;
 *           payload = the post-processed answer for tasks (text_length
 *           bytes; empty for chat, whose text is the concatenated deltas);
 *           language "en"/"zh" for tasks.
 *   ERROR   status (HTTP-like: 400, 413, 429, 503, 504) and payload = one
 *           line of text. DONE and ERROR are final: the slot is free again.
 *   STATS   payload = JSON.   PONG: no payload.
 *
 * Everything the daemon reads from shared memory is untrusted: entries are
 * copied once and validated, regions are checked against the arena, and a
 * client that breaks the protocol is disconnected.
 */
#ifndef VLM_IPC_H
#define VLM_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VLM_IPC_MAGIC          0x314349504d4c56ULL   /* "VLMIPC1" */
/* 2: finish_reason is a VLM_IPC_FINISH_* number, no longer a string */
#define VLM_IPC_VERSION        2u
#define VLM_IPC_HEADER_SIZE    512u
#define VLM_IPC_LANGUAGE_LEN   4u

/* Socket messages (struct vlm_ipc_msg.type). */
enum {
    VLM_IPC_MSG_HELLO = 1,
    VLM_IPC_MSG_WELCOME = 2,
    VLM_IPC_MSG_REFUSED = 3,
    VLM_IPC_MSG_DOORBELL_REQUEST = 4,   /* client -> daemon: request ring */
    VLM_IPC_MSG_DOORBELL_RESULT = 5,    /* daemon -> client: result ring */
    VLM_IPC_MSG_RESULT_SPACE = 6        /* client -> daemon: room freed */
};

/* Request ring entry kinds. */
enum {
    VLM_IPC_REQ_SUBMIT = 1,
    VLM_IPC_REQ_CANCEL = 2,
    VLM_IPC_REQ_STATS = 3,
    VLM_IPC_REQ_PING = 4
};

/* Result ring entry kinds. */
enum {
    VLM_IPC_RES_DELTA = 1,
    VLM_IPC_RES_DONE = 2,
    VLM_IPC_RES_ERROR = 3,
    VLM_IPC_RES_STATS = 4,
    VLM_IPC_RES_PONG = 5
};

/* Why a request ended (DONE's finish_reason); names as OpenAI spells them. */
enum {
    VLM_IPC_FINISH_NONE = 0,        /* not a DONE record */
    VLM_IPC_FINISH_STOP = 1,        /* end of sequence or a stop string */
    VLM_IPC_FINISH_LENGTH = 2,      /* max_tokens generated */
    VLM_IPC_FINISH_CANCELLED = 3,   /* CANCEL, or the client went away */
    VLM_IPC_FINISH_DEADLINE = 4,    /* timeout_ms passed */
    VLM_IPC_FINISH_COUNT = 5
};

typedef struct vlm_ipc_msg {
    uint32_t type;
    uint32_t version;
    uint64_t epoch;        /* WELCOME */
    uint64_t shm_size;     /* WELCOME: bytes of the memfd */
    uint32_t pid;          /* HELLO: client pid; WELCOME: daemon pid */
    uint32_t status;       /* REFUSED: HTTP-like reason (503 draining, 426 version) */
} vlm_ipc_msg;

typedef struct vlm_ipc_request_entry {
    uint32_t kind;
    uint32_t slot;
    uint32_t gen;
    uint32_t timeout_ms;     /* SUBMIT: 0 = no deadline */
    uint64_t body_offset;    /* SUBMIT: request arena offset */
    uint64_t body_length;
    uint64_t client;         /* SUBMIT: whose request, for fair scheduling
                                (a hash of the API subject); 0: unknown */
    uint8_t  reserved[24];   /* zero */
} vlm_ipc_request_entry;

typedef struct vlm_ipc_result_entry {
    uint32_t kind;
    uint32_t slot;
    uint32_t gen;
    uint32_t status;             /* ERROR */
    uint64_t payload_pos;        /* result arena position */
    uint32_t payload_length;
    uint32_t text_length;
    uint32_t n_tokens;           /* DELTA */
    uint32_t logprobs_length;    /* DELTA */
    uint32_t prompt_tokens;      /* DONE */
    uint32_t completion_tokens;  /* DONE */
    uint32_t finish_reason;      /* DONE: VLM_IPC_FINISH_* */
    uint8_t  reserved[8];        /* zero */
    char     language[VLM_IPC_LANGUAGE_LEN];     /* DONE, tasks, NUL-padded */
} vlm_ipc_result_entry;

/* Offset 0 of the shared memory. Layout fields are written by vlmd before
 * the memfd is sent and never change; the client checks them. vlmd itself
 * keeps its own copy and never re-reads them. */
typedef struct vlm_ipc_shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t epoch;
    uint64_t shm_size;
    uint64_t request_ring_offset;
    uint64_t result_ring_offset;
    uint64_t request_arena_offset;
    uint64_t request_arena_size;
    uint64_t result_arena_offset;
    uint64_t result_arena_size;
    uint32_t request_ring_capacity;   /* entries, power of two */
    uint32_t result_ring_capacity;    /* entries, power of two */
    uint32_t max_slots;               /* requests in flight at most */
    uint32_t max_body_length;         /* bytes */
    uint32_t daemon_pid;
    uint32_t reserved0;
    uint64_t heartbeat_ms;            /* vlmd's CLOCK_MONOTONIC ms, ~1/s */
    uint8_t  pad0[128 - 112];

    /* One cache line per index, each written by one side only. */
    uint64_t request_tail;            /* client */
    uint8_t  pad1[56];
    uint64_t request_head;            /* daemon */
    uint8_t  pad2[56];
    uint64_t result_tail;             /* daemon */
    uint8_t  pad3[56];
    uint64_t result_head;             /* client */
    uint64_t result_arena_head;       /* client */
    uint8_t  pad4[48];
    uint32_t result_blocked;          /* set by daemon, cleared by client */
    uint8_t  pad5[VLM_IPC_HEADER_SIZE - 388];
} vlm_ipc_shm_header;

#ifdef __cplusplus
#define VLM_IPC_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define VLM_IPC_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

VLM_IPC_STATIC_ASSERT(sizeof(vlm_ipc_msg) == 32, "vlm_ipc_msg is 32 bytes");
VLM_IPC_STATIC_ASSERT(sizeof(vlm_ipc_request_entry) == 64, "request entry is 64 bytes");
VLM_IPC_STATIC_ASSERT(sizeof(vlm_ipc_result_entry) == 64, "result entry is 64 bytes");
VLM_IPC_STATIC_ASSERT(sizeof(vlm_ipc_shm_header) == VLM_IPC_HEADER_SIZE, "header size");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, heartbeat_ms) == 104, "heartbeat offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, request_tail) == 128, "request_tail offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, request_head) == 192, "request_head offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, result_tail) == 256, "result_tail offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, result_head) == 320, "result_head offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_shm_header, result_blocked) == 384, "result_blocked offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_result_entry, finish_reason) == 48, "finish_reason offset");
VLM_IPC_STATIC_ASSERT(offsetof(vlm_ipc_result_entry, language) == 60, "language offset");
VLM_IPC_STATIC_ASSERT(__atomic_always_lock_free(8, 0), "64-bit atomics must be lock-free");

/* Shared index access, identical on both sides. */
static inline uint64_t vlm_ipc_load_acquire(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vlm_ipc_store_release(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void vlm_ipc_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* "stop", "length", "cancelled", "deadline"; NULL for any other value. */
static inline const char *vlm_ipc_finish_name(uint32_t reason)
{
    static const char *const names[VLM_IPC_FINISH_COUNT] = {
        NULL, "stop", "length", "cancelled", "deadline"
    };

    return reason < VLM_IPC_FINISH_COUNT ? names[reason] : NULL;
}

/* The VLM_IPC_FINISH_* of a name; VLM_IPC_FINISH_NONE if it has none. */
static inline uint32_t vlm_ipc_finish_code(const char *name)
{
    uint32_t i;

    for (i = 1; i < VLM_IPC_FINISH_COUNT; i++) {
        if (strcmp(name, vlm_ipc_finish_name(i)) == 0) {
            return i;
        }
    }

    return VLM_IPC_FINISH_NONE;
}

/* True when [offset, offset + length) lies inside [0, size), without
 * overflow. */
static inline int vlm_ipc_region_ok(uint64_t offset, uint64_t length, uint64_t size)
{
    return offset <= size && length <= size - offset;
}

#ifdef __cplusplus
}
#endif

#endif /* VLM_IPC_H */
