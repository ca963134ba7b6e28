// Scans DIR, turns weak/missing alts into jobs, runs them, then rewrites each document atomically.
// Leaves out: following symlinks out of DIR; downloads during --dry-run.
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
#include "image_download.h"
#include "image_source.h"
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
    std::vector<fs::path> root_dirs;
    std::string dirs_err;
    if (!site_root_dirs(root, opts.static_dirs, root_dirs, dirs_err)) {
        std::fprintf(stderr, "vlm-bulk: %s\n", dirs_err.c_str());
        return exit_usage;
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
            ImageSource source = resolve_image_source(ref.src, p.parent_path(), root, root_dirs);
            if (source.kind == SourceKind::remote_url && !opts.fetch_remote) {
                source.kind = SourceKind::skip;
                source.message = "remote image not fetched; --fetch-remote downloads it";
            } else if (source.kind == SourceKind::remote_url && opts.dry_run) {
                source.kind = SourceKind::skip;
                source.message = "remote image not downloaded in a dry run";
            }
            if (source.kind == SourceKind::skip || source.kind == SourceKind::missing) {
                row.status = source.kind == SourceKind::skip ? "skipped" : "failed";
                row.message = source.message;
                rows.push_back(row);
                if (source.kind == SourceKind::missing) status = exit_some_failed;
                continue;
            }
            Job job;
            job.key = key;
            job.title = title;
            if (source.kind == SourceKind::remote_url) {
                job.load_image = [url = source.url](HttpClient& http, std::string& bytes, std::string& e) {
                    return download_image(http, url, bytes, e);
                };
            } else {
                job.load_image = [file = source.file](HttpClient&, std::string& bytes, std::string& e) {
                    return read_file(file, bytes, max_image_bytes, e);
                };
            }
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
