// kv_block_table.cpp: see kv_block_table.h.
#include "serve/kv_block_table.h"

#include "util/hash.h"

#include <algorithm>

namespace vlm {

namespace {

uint64_t block_hash(uint64_t parent, const uint64_t *keys, int n) {
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; ++i) h = mix64(h ^ keys[i]) + uint64_t(i);
    return h;
}

}  // namespace

KvBlockTable::KvBlockTable(int64_t n_blocks, int block_tokens)
    : block_tokens_(block_tokens), blocks_(size_t(std::max<int64_t>(n_blocks, 0))) {
    free_.reserve(blocks_.size());
    for (int64_t b = int64_t(blocks_.size()) - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

void KvBlockTable::take(int32_t b) {
    Meta &m = blocks_[size_t(b)];
    if (m.idle) {
        idle_.erase(m.idle_pos);
        m.idle = false;
    }
    if (m.refs++ == 0) ++used_;
}

bool KvBlockTable::allocate(int64_t n, std::vector<int32_t> &out) {
    if (n < 0 || n > available()) return false;
    for (int64_t i = 0; i < n; ++i) {
        int32_t b;
        if (!free_.empty()) {
            b = free_.back();
            free_.pop_back();
        } else {
            b = idle_.front();   // evict the least recently used cached block
            Meta &m = blocks_[size_t(b)];
            by_hash_.erase(m.hash);
            m.published = false;
            m.keys.clear();
        }
        take(b);
        out.push_back(b);
    }
    return true;
}

void KvBlockTable::release(const std::vector<int32_t> &blocks) {
    for (int32_t b : blocks) {
        if (b < 0 || size_t(b) >= blocks_.size()) continue;
        Meta &m = blocks_[size_t(b)];
        if (m.refs <= 0) continue;
        if (--m.refs > 0) continue;
        --used_;
        if (m.published) {
            m.idle = true;
            m.idle_pos = idle_.insert(idle_.end(), b);
        } else {
            free_.push_back(b);
        }
    }
}

std::vector<uint64_t> KvBlockTable::chain_hashes(const uint64_t *keys, int64_t n_full) const {
    std::vector<uint64_t> h(size_t(std::max<int64_t>(n_full, 0)));
    uint64_t parent = 0;
    for (int64_t i = 0; i < n_full; ++i) {
        parent = block_hash(parent, keys + i * block_tokens_, block_tokens_);
        h[size_t(i)] = parent;
    }
    return h;
}

int64_t KvBlockTable::match_prefix(const uint64_t *keys, int64_t max_blocks,
                                   std::vector<int32_t> &out) {
    const std::vector<uint64_t> hashes = chain_hashes(keys, max_blocks);
    uint64_t parent = 0;
    int64_t matched = 0;
    for (int64_t i = 0; i < max_blocks; ++i) {
        auto it = by_hash_.find(hashes[size_t(i)]);
        if (it == by_hash_.end()) break;
        const Meta &m = blocks_[size_t(it->second)];
        if (m.parent != parent ||
            !std::equal(m.keys.begin(), m.keys.end(), keys + i * block_tokens_))
            break;
        take(it->second);
        out.push_back(it->second);
        parent = hashes[size_t(i)];
        ++matched;
    }
    return matched;
}

void KvBlockTable::publish(const uint64_t *keys, int64_t index, uint64_t chain_hash,
                           uint64_t parent_hash, int32_t block) {
    if (block < 0 || size_t(block) >= blocks_.size() || by_hash_.count(chain_hash)) return;
    Meta &m = blocks_[size_t(block)];
    if (m.published) return;
    m.published = true;
    m.hash = chain_hash;
    m.parent = parent_hash;
    m.keys.assign(keys + index * block_tokens_, keys + (index + 1) * block_tokens_);
    by_hash_[chain_hash] = block;
}

}  // namespace vlm
