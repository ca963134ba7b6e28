// The resume checkpoint: finished items (key -> generated alt text) persisted atomically
// (temp file + fsync + rename + directory fsync) after every finished image.
// Leaves out: locking against two vlm-bulk processes sharing one state file.
#pragma once
#include <map>
#include <mutex>
#include <string>

namespace vlm::bulk {

class Checkpoint {
public:
    // `scope` identifies the job (mode + root/site); a resumed file must match it.
    Checkpoint(std::string path, std::string scope);
    bool load(std::string& err);                                   // for --resume
    bool exists() const;
    bool lookup(const std::string& key, std::string& alt) const;   // thread-safe
    bool record(const std::string& key, const std::string& alt, std::string& err);  // thread-safe, durable
    size_t size() const;
    bool remove_file(std::string& err);
    void set_enabled(bool enabled) { enabled_ = enabled; }          // off for --dry-run

private:
    bool save_locked(std::string& err);
    std::string path_;
    std::string scope_;
    std::map<std::string, std::string> done_;
    mutable std::mutex mu_;
    bool enabled_ = true;
};

}  // namespace vlm::bulk
