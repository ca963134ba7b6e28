// kv_block_table.h: bookkeeping of the paged KV cache (the memory itself is
// a KvPool, model.h): which blocks are free, a reference count per block
// (sequences sharing a prompt prefix share its blocks), and the prefix cache:
// full prompt blocks published under a hash chained over the content keys of
// every token up to the block's end, so a block is reused only behind the
// same prefix. Idle cached blocks stay reusable until memory is needed, then
// the least recently used go first. Not thread-safe (the engine locks).
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace vlm {

class KvBlockTable {
public:
    KvBlockTable(int64_t n_blocks, int block_tokens);

    int     block_tokens() const { return block_tokens_; }
    int64_t total() const { return int64_t(blocks_.size()); }
    int64_t used() const { return used_; }                 // referenced by a sequence
    int64_t cached_idle() const { return int64_t(idle_.size()); }
    int64_t available() const { return int64_t(free_.size() + idle_.size()); }

    // Takes `n` blocks (free ones first, then evicts idle cached ones).
    // False (nothing taken) when fewer are available.
    bool allocate(int64_t n, std::vector<int32_t> &out);
    // Drops one reference to each block; unreferenced blocks become free, or
    // idle-but-cached when published.
    void release(const std::vector<int32_t> &blocks);

    // Chain hashes of the first n_full full blocks of `keys`.
    std::vector<uint64_t> chain_hashes(const uint64_t *keys, int64_t n_full) const;
    // The longest run of published blocks matching the first blocks of
    // `keys` (at most max_blocks), appended to `out` with a reference taken.
    int64_t match_prefix(const uint64_t *keys, int64_t max_blocks, std::vector<int32_t> &out);
    // Publishes `block`, holding full block `index` of `keys` (whose K/V is
    // now computed). Does nothing if that content is already published.
    // `parent_hash` is the chain hash of block index - 1 (0 for the first).
    void publish(const uint64_t *keys, int64_t index, uint64_t chain_hash,
                 uint64_t parent_hash, int32_t block);

private:
    struct Meta {
        int32_t  refs = 0;
        bool     published = false;
        uint64_t hash = 0, parent = 0;
        std::vector<uint64_t> keys;        // for verification on lookup
        std::list<int32_t>::iterator idle_pos;
        bool     idle = false;
    };
    void take(int32_t b);

    int block_tokens_;
    std::vector<Meta> blocks_;
    std::vector<int32_t> free_;
    std::list<int32_t> idle_;               // front: least recently used
    std::unordered_map<uint64_t, int32_t> by_hash_;
    int64_t used_ = 0;
};

}  // namespace vlm
