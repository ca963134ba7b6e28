// Scans DIR, turns weak/missing alts into jobs, runs them, then rewrites each document atomically.
// Leaves out: fetching http(s) images and following symlinks out of DIR.
#include "files_mode.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alt_quality.h"
#include "doc_images.h"
#include "job_runner.h"
#include "run_common.h"

namespace fs = std::filesystem;

namespace vlm::bulk {

namespace {

struct Document {
    fs::path path;
    std::string rel;
    bool markdown = false;
    std::string text;
    std::vector<ImageRef> refs;
    std::vector<size_t> job_of_ref;  // index into jobs, or SIZE_MAX
};

bool read_file(const fs::path& p, std::string& out, size_t limit, std::string& err) {
    std::ifstream f(p, std::ios::binary);
    if (!f) { err = p.string() + ": cannot open"; return false; }
    std::ostringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    if (out.size() > limit) { err = p.string() + ": larger than " + std::to_string(limit >> 20) + " MiB"; return false; }
    return true;
}

// Temp file in the same directory + fsync + rename, keeping the original's permissions.
bool write_atomically(const fs::path& p, const std::string& data, mode_t mode, std::string& err) {
    std::string tmp = p.string() + ".vlm-bulk.tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) { err = tmp + ": " + std::strerror(errno); return false; }
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    bool ok = off == data.size() && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp.c_str(), p.c_str()) != 0) {
        err = p.string() + ": write failed: " + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    return true;
}

bool is_remote(const std::string& src) {
    if (src.rfind("//", 0) == 0) return true;
    size_t colon = src.find(':');
    if (colon == std::string::npos) return false;
    size_t slash = src.find('/');
    return slash == std::string::npos || colon < slash;  // a scheme: http:, https:, data:, ...
}

std::string percent_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1]))
            && std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

bool within(const fs::path& root, const fs::path& p) {
    auto r = root.begin(), q = p.begin();
    for (; r != root.end(); ++r, ++q)
        if (q == p.end() || *r != *q) return false;
    return true;
}

bool is_document(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext == ".md" || ext == ".markdown" || ext == ".html" || ext == ".htm";
}

}  // namespace

int run_files_mode(const Options& opts) {
    std::error_code ec;
    fs::path root = fs::canonical(opts.dir, ec);
    if (ec || !fs::is_directory(root)) {
        std::fprintf(stderr, "vlm-bulk: %s: not a directory\n", opts.dir.c_str());
        return exit_usage;
    }
    fs::path out_root;
    if (!opts.out_dir.empty()) {
        fs::create_directories(opts.out_dir, ec);
        out_root = fs::canonical(opts.out_dir, ec);
        if (ec) {
            std::fprintf(stderr, "vlm-bulk: --out %s: %s\n", opts.out_dir.c_str(), ec.message().c_str());
            return exit_usage;
        }
        if (out_root == root) {
            std::fprintf(stderr, "vlm-bulk: --out must differ from DIR (omit it to edit in place)\n");
            return exit_usage;
        }
    }
    Checkpoint checkpoint(opts.state, "files:" + root.string());
    int rc = prepare_checkpoint(opts, checkpoint);
    if (rc >= 0) return rc;

    // Collect documents in a stable (sorted) order so checkpoint keys and reports are reproducible.
    std::vector<fs::path> paths;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::path& p = it->path();
        if (it->is_directory() && (p.filename().string().rfind('.', 0) == 0
                                   || (!out_root.empty() && p == out_root))) {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_regular_file() && !it->is_symlink() && is_document(p)) paths.push_back(p);
    }
    std::sort(paths.begin(), paths.end());

    std::vector<Document> docs;
    std::vector<Job> jobs;
    std::vector<ReportRow> rows;
    int status = exit_ok;
    for (const auto& p : paths) {
        Document d;
        d.path = p;
        d.rel = fs::relative(p, root).string();
        std::string ext = p.extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        d.markdown = ext == ".md" || ext == ".markdown";
        std::string err;
        if (!read_file(p, d.text, size_t{32} << 20, err)) {
            rows.push_back({d.rel, "", 0, "failed", "", "", err});
            status = exit_some_failed;
            continue;
        }
        d.refs = find_images(d.text, d.markdown);
        d.job_of_ref.assign(d.refs.size(), SIZE_MAX);
        std::string title = find_document_title(d.text, d.markdown);
        for (size_t i = 0; i < d.refs.size(); ++i) {
            const ImageRef& ref = d.refs[i];
            ReportRow row{d.rel, ref.src, ref.line, "", ref.alt, "", ""};
            std::string key = d.rel + "#" + std::to_string(i) + "#" + ref.src;
            if (!opts.overwrite && ref.has_alt && !is_weak_alt(ref.alt, ref.src)) {
                std::string earlier;
                bool ours = checkpoint.lookup(key, earlier) && earlier == ref.alt;
                row.status = ours ? "updated_earlier" : "kept_human";
                rows.push_back(row);
                continue;
            }
            if (ref.src.empty() || is_remote(ref.src)) {
                row.status = "skipped";
                row.message = ref.src.empty() ? "no src" : "remote image not fetched (local files only)";
                rows.push_back(row);
                continue;
            }
            std::string local = percent_decode(ref.src.substr(0, ref.src.find_first_of("?#")));
            if (local.empty()) {
                row.status = "skipped";
                row.message = "src has no path";
                rows.push_back(row);
                continue;
            }
            fs::path img = local[0] == '/' ? root / local.substr(1) : p.parent_path() / local;
            fs::path canon = fs::weakly_canonical(img, ec);
            if (ec || !within(root, canon)) {
                row.status = "skipped";
                row.message = "image outside DIR";
                rows.push_back(row);
                continue;
            }
            if (!fs::is_regular_file(canon, ec)) {
                row.status = "failed";
                row.message = "image file not found: " + canon.string();
                rows.push_back(row);
                status = exit_some_failed;
                continue;
            }
            Job job;
            job.key = key;
            job.title = title;
            job.load_image = [canon](HttpClient&, std::string& bytes, std::string& e) {
                return read_file(canon, bytes, size_t{20} << 20, e);
            };
            d.job_of_ref[i] = jobs.size();
            jobs.push_back(std::move(job));
        }
        docs.push_back(std::move(d));
    }

    RunSummary summary;
    if (!jobs.empty()) {
        VlmSettings settings = settings_from(opts);
        rc = preflight_service(settings);
        if (rc >= 0) return rc;
        summary = run_jobs(jobs, settings, checkpoint, opts.concurrency, opts.progress_every, opts.quiet);
    }

    for (auto& d : docs) {
        std::vector<AltEdit> edits;
        for (size_t i = 0; i < d.refs.size(); ++i) {
            size_t j = d.job_of_ref[i];
            if (j == SIZE_MAX) continue;
            const JobOutcome& o = summary.outcomes[j];
            ReportRow row{d.rel, d.refs[i].src, d.refs[i].line, "", d.refs[i].alt, o.alt, o.error};
            if (o.state == JobState::generated || o.state == JobState::resumed) {
                edits.push_back({&d.refs[i], o.alt});
                row.status = opts.dry_run ? "would_update" : "updated";
                if (o.state == JobState::resumed) row.message = "alt text from the state file";
            } else {
                row.status = o.state == JobState::failed ? "failed" : "not_attempted";
            }
            rows.push_back(row);
        }
        std::string updated = edits.empty() ? d.text : apply_alt_edits(d.text, edits);
        if (opts.dry_run) {
            print_preview(d.rel, d.text, updated);
            continue;
        }
        std::string err;
        struct stat st;
        mode_t mode = stat(d.path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
        if (!out_root.empty()) {
            fs::path target = out_root / d.rel;
            fs::create_directories(target.parent_path(), ec);
            if (!write_atomically(target, updated, mode, err)) {
                std::fprintf(stderr, "vlm-bulk: %s\n", err.c_str());
                status = exit_some_failed;
            }
            continue;
        }
        if (updated == d.text) continue;
        fs::path backup = d.path.string() + ".orig";
        // Keep the first backup: after a crash/resume it still holds the untouched original.
        if (!fs::exists(backup) && !write_atomically(backup, d.text, mode, err)) {
            std::fprintf(stderr, "vlm-bulk: %s (document left unchanged)\n", err.c_str());
            status = exit_some_failed;
            continue;
        }
        if (!write_atomically(d.path, updated, mode, err)) {
            std::fprintf(stderr, "vlm-bulk: %s\n", err.c_str());
            status = exit_some_failed;
        }
    }
    int final_rc = finish_run(opts, rows, summary, checkpoint);
    return final_rc == exit_ok ? status : final_rc;
}

}  // namespace vlm::bulk
