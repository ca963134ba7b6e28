// vision_cache.h: an LRU cache of vision-encoder outputs (merged image rows
// and the image's grid) keyed by the image's SHA-256 plus the preprocessing
// settings, under a byte budget, so the same image in a later request skips
// decoding, preprocessing and the encoder. Thread-safe (one mutex): the
// engine's image workers ask contains() before decoding, the engine thread
// gets and puts. Leaves out: persistence across restarts.
#pragma once

#include "model/model.h"

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace vlm {

struct VisionCacheEntry {
    ImageGrid          grid;
    std::vector<float> embeds;   // (n_img_tok, d_model)
    size_t bytes() const { return embeds.size() * sizeof(float) + 64; }
};

class VisionCache {
public:
    explicit VisionCache(size_t budget_bytes) : budget_(budget_bytes) {}
    // The entry for `key` (now most recently used), or nullptr.
    std::shared_ptr<const VisionCacheEntry> get(const std::string &key);
    // Whether `key` is cached, without touching its recency.
    bool contains(const std::string &key) const;
    // Inserts, evicting least recently used entries past the budget; an
    // entry larger than the whole budget is not kept.
    void put(const std::string &key, std::shared_ptr<const VisionCacheEntry> entry);
    size_t bytes() const;
    size_t size() const;

private:
    using Lru = std::list<std::pair<std::string, std::shared_ptr<const VisionCacheEntry>>>;
    mutable std::mutex mu_;
    size_t budget_;
    size_t bytes_ = 0;
    Lru lru_;   // front: most recent
    std::unordered_map<std::string, Lru::iterator> map_;
};

}  // namespace vlm
