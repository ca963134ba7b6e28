// JSON checkpoint {"version":1,"scope":...,"done":{key:alt}} with crash-safe replacement.
// Leaves out: incremental appends (the whole map is rewritten; fine for tens of thousands of items).
#include "checkpoint.h"

#include <jansson.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vlm::bulk {

Checkpoint::Checkpoint(std::string path, std::string scope) : path_(std::move(path)), scope_(std::move(scope)) {}

bool Checkpoint::exists() const {
    struct stat st;
    return stat(path_.c_str(), &st) == 0;
}

bool Checkpoint::load(std::string& err) {
    json_error_t jerr;
    json_t* root = json_load_file(path_.c_str(), 0, &jerr);
    if (!root) {
        err = path_ + ": " + jerr.text;
        return false;
    }
    json_t* scope = json_object_get(root, "scope");
    json_t* done = json_object_get(root, "done");
    if (!json_is_string(scope) || !json_is_object(done)) {
        json_decref(root);
        err = path_ + ": not a vlm-bulk state file (missing scope/done)";
        return false;
    }
    if (scope_ != json_string_value(scope)) {
        err = path_ + ": belongs to another job (" + json_string_value(scope) + ")";
        json_decref(root);
        return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    const char* key;
    json_t* value;
    json_object_foreach(done, key, value) {
        if (json_is_string(value)) done_[key] = json_string_value(value);
    }
    json_decref(root);
    return true;
}

bool Checkpoint::lookup(const std::string& key, std::string& alt) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = done_.find(key);
    if (it == done_.end()) return false;
    alt = it->second;
    return true;
}

size_t Checkpoint::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return done_.size();
}

bool Checkpoint::record(const std::string& key, const std::string& alt, std::string& err) {
    std::lock_guard<std::mutex> lock(mu_);
    done_[key] = alt;
    return enabled_ ? save_locked(err) : true;
}

bool Checkpoint::save_locked(std::string& err) {
    json_t* root = json_object();
    json_t* done = json_object();
    for (const auto& [k, v] : done_) json_object_set_new(done, k.c_str(), json_string(v.c_str()));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "scope", json_string(scope_.c_str()));
    json_object_set_new(root, "done", done);
    char* text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) {
        err = path_ + ": could not encode state";
        return false;
    }
    std::string tmp = path_ + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = tmp + ": " + std::strerror(errno);
        free(text);
        return false;
    }
    size_t len = std::strlen(text), off = 0;
    bool ok = true;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { ok = false; break; }
        off += static_cast<size_t>(n);
    }
    free(text);
    if (!ok || fsync(fd) != 0) {
        err = tmp + ": write failed: " + std::strerror(errno);
        close(fd);
        unlink(tmp.c_str());
        return false;
    }
    close(fd);
    if (rename(tmp.c_str(), path_.c_str()) != 0) {
        err = path_ + ": rename failed: " + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    // The rename is durable only once the directory entry is on disk.
    std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.find_last_of('/'));
    if (dir.empty()) dir = "/";
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return true;
}

bool Checkpoint::remove_file(std::string& err) {
    if (unlink(path_.c_str()) != 0 && errno != ENOENT) {
        err = path_ + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace vlm::bulk
