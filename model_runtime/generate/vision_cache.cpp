// vision_cache.cpp: see vision_cache.h.
#include "generate/vision_cache.h"

namespace vlm {

std::shared_ptr<const VisionCacheEntry> VisionCache::get(const std::string &key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
}

void VisionCache::put(const std::string &key, std::shared_ptr<const VisionCacheEntry> entry) {
    if (!entry || entry->bytes() > budget_) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
        bytes_ -= it->second->second->bytes();
        lru_.erase(it->second);
        map_.erase(it);
    }
    bytes_ += entry->bytes();
    lru_.emplace_front(key, std::move(entry));
    map_[key] = lru_.begin();
    while (bytes_ > budget_ && !lru_.empty()) {
        auto &last = lru_.back();
        bytes_ -= last.second->bytes();
        map_.erase(last.first);
        lru_.pop_back();
    }
}

bool VisionCache::contains(const std::string &key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.count(key) != 0;
}

size_t VisionCache::bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
}

size_t VisionCache::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
}

}  // namespace vlm
