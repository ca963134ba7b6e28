// engine.cpp: the serving engine (engine.h). Image workers (image_workers
// threads) decode and preprocess a request's images as soon as it is queued;
// a request is admissible once its images are ready. One thread runs steps:
// it admits queued requests (INTERACTIVE before BULK; within a priority the
// client with the fewest running sequences first) while the batch has room
// and the KV cache has blocks, prepares them (vision encoder through the
// vision cache, prompt ids, prefix reuse from the block table), then runs one
// forward over the
// decode row of every decoding sequence plus prefill chunks (a budget of
// prefill_chunk_tokens per step), samples, and streams events. Sequences
// join and leave between steps. Identical deterministic requests share one
// sequence (every subscriber gets the events). All scheduler state is under
// one mutex, released while the model runs; sinks are called from the engine
// thread only, never under the lock.
// A failed step (the backend's fault: a CUDA error, or an op it refused)
// fails every request of that batch with 503 (500 for a refused op), and the
// engine carries on: the model recovers the backend before its next call, so
// later requests run as before; if the device is lost (a sticky CUDA error),
// each later step fails fast with 503 saying so, until vlmd is restarted.
// Leaves out: preemption (a sequence reserves the KV blocks for its prompt
// plus max_tokens when admitted, so it can never run out mid-answer).
#include "serve/engine.h"

#include "serve/engine_request_key.h"
#include "serve/kv_block_table.h"
#include "generate/prompt_prep.h"
#include "generate/sequence_output.h"
#include "generate/vision_cache.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace vlm {

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
}

struct Subscriber {
    uint64_t  id = 0;
    EventSink sink;
    int64_t   deadline_ms = 0;
};

enum class SeqState : uint8_t { QUEUED, PREPARING, PREFILL, DECODE, FINISHED };

struct Sequence {
    Priority                 priority = Priority::INTERACTIVE;
    uint64_t                 client = 0;     // fairness key
    ChatRequest              chat;
    bool                     images_ready = true;   // decoded (or decoded at admission)
    std::unique_ptr<DecodedImages> decoded;  // the image workers' result
    std::string              key;            // coalescing key; empty: none
    std::vector<Subscriber>  subs;
    SeqState                 state = SeqState::QUEUED;
    bool                     prepared = false;
    PreparedPrompt           prep;
    std::unique_ptr<SequenceOutput> out;
    std::vector<int32_t>     blocks;
    std::vector<uint64_t>    block_hashes;   // chain hashes of the prompt's full blocks
    int64_t                  n_computed = 0; // tokens whose K/V is in the blocks
    int64_t                  published = 0;  // prompt blocks published
    int32_t                  next_token = -1;
    bool                     in_flight = false;
    Clock::time_point        submitted;
    bool                     first_token_seen = false;
};

using SeqPtr = std::shared_ptr<Sequence>;

// An event to deliver once the lock is released.
struct Outgoing {
    EventSink   sink;
    EngineEvent ev;
};

class EngineImpl final : public Engine {
public:
    EngineImpl(Model &model, const Tokenizer &tok, const EngineOptions &opt, KvPool pool)
        : model_(model), tok_(tok), opt_(opt), pool_(std::move(pool)),
          table_(pool_.n_blocks, pool_.block_tokens), vision_(opt.vision_cache_bytes) {
        thread_ = std::thread([this] { run(); });
        for (int i = 0; i < opt_.image_workers; ++i)
            workers_.emplace_back([this] { decode_images_loop(); });
    }

    ~EngineImpl() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        decode_cv_.notify_all();
        if (thread_.joinable()) thread_.join();
        for (std::thread &w : workers_) w.join();
        // The engine thread is gone: whatever is left is cancelled from here.
        std::vector<Outgoing> outbox;
        {
            std::lock_guard<std::mutex> lock(mu_);
            std::vector<SeqPtr> left(running_.begin(), running_.end());
            for (auto &q : queue_) left.insert(left.end(), q.begin(), q.end());
            for (const SeqPtr &s : left) {
                s->in_flight = false;
                finish(s, "cancelled", outbox);
            }
            queue_[0].clear();
            queue_[1].clear();
            running_.clear();
            outbox.insert(outbox.end(), outbox_.begin(), outbox_.end());
            outbox_.clear();
        }
        deliver(outbox);
    }

    SubmitResult submit(EngineRequest req, EventSink sink) override {
        SubmitResult res;
        if (!sink) {
            res.status = SubmitStatus::INVALID;
            res.error = "submit: no event sink";
            return res;
        }
        if (req.chat.max_tokens < 1) {
            res.status = SubmitStatus::INVALID;
            res.error = "max_tokens must be at least 1";
            return res;
        }
        // Settings the client left to the model are fixed now, so requests
        // that end up alike coalesce and the key says what will run.
        apply_generation_defaults(model_.generation(), req.chat);
        std::string key = request_key(req.chat);   // hashes images: outside the lock
        std::lock_guard<std::mutex> lock(mu_);
        if (draining_ || stop_) {
            res.status = SubmitStatus::DRAINING;
            return res;
        }
        if (by_id_.count(req.id)) {
            res.status = SubmitStatus::INVALID;
            res.error = "submit: request id " + std::to_string(req.id) + " already in flight";
            return res;
        }
        Subscriber sub{req.id, std::move(sink), req.deadline_ms};
        if (!key.empty()) {
            auto it = by_key_.find(key);
            if (it != by_key_.end() && it->second->state != SeqState::FINISHED) {
                join_existing(it->second, std::move(sub));
                ++m_.requests_coalesced;
                cv_.notify_all();
                return res;
            }
        }
        auto &q = queue_[int(req.priority)];
        const int limit = req.priority == Priority::INTERACTIVE ? opt_.queue_limit_interactive
                                                                : opt_.queue_limit_bulk;
        if (int(q.size()) >= limit) {
            res.status = SubmitStatus::QUEUE_FULL;
            res.retry_after_ms = retry_hint_ms();
            return res;
        }
        auto s = std::make_shared<Sequence>();
        s->priority = req.priority;
        s->client = req.client;
        s->chat = std::move(req.chat);
        s->images_ready = s->chat.images.empty() || workers_.empty();
        s->key = std::move(key);
        s->submitted = Clock::now();
        s->subs.push_back(std::move(sub));
        by_id_[req.id] = s;
        if (!s->key.empty()) by_key_[s->key] = s;
        q.push_back(s);
        if (!s->images_ready) {
            to_decode_.push_back(s);
            decode_cv_.notify_one();
        }
        cv_.notify_all();
        return res;
    }

    void cancel(uint64_t request_id) override {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = by_id_.find(request_id);
        if (it == by_id_.end()) return;
        SeqPtr s = it->second;
        drop_subscriber(s, request_id, "cancelled", outbox_);
        ++m_.requests_cancelled;
        if (s->subs.empty()) end_sequence(s);   // frees its blocks now unless in flight
        cv_.notify_all();
    }

    EngineMetrics metrics() const override {
        std::lock_guard<std::mutex> lock(mu_);
        EngineMetrics m = m_;
        m.queue_interactive = int(queue_[0].size());
        m.queue_bulk = int(queue_[1].size());
        m.running = int(running_.size());
        m.kv_blocks_total = table_.total();
        m.kv_blocks_used = table_.used();
        m.decode_tokens_per_s = decode_rate();
        if (!ttft_.empty()) {
            double sum = 0;
            for (double t : ttft_) sum += t;
            m.ttft_ms_avg = sum / double(ttft_.size());
            std::vector<double> sorted(ttft_.begin(), ttft_.end());
            std::sort(sorted.begin(), sorted.end());
            m.ttft_ms_p99 = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
        }
        return m;
    }

    void drain() override {
        std::unique_lock<std::mutex> lock(mu_);
        draining_ = true;
        cv_.notify_all();
        idle_cv_.wait(lock, [&] {
            return queue_[0].empty() && queue_[1].empty() && running_.empty() && !preparing_;
        });
    }

private:
    // ---- state changes (all under mu_) ----

    void emit(const SeqPtr &s, EngineEvent ev, std::vector<Outgoing> &outbox) {
        for (const Subscriber &sub : s->subs) {
            ev.request_id = sub.id;
            outbox.push_back(Outgoing{sub.sink, ev});
        }
    }

    EngineEvent done_event(const SeqPtr &s, const std::string &reason) const {
        EngineEvent ev;
        ev.kind = EngineEvent::DONE;
        ev.finish_reason = reason;
        if (s->out) {
            ev.text = s->out->text();
            ev.completion_tokens = int(s->out->tokens().size());
        }
        ev.prompt_tokens = int(s->prep.ids.size());
        return ev;
    }

    // A follower joins a sequence in flight: it first gets what was already
    // streamed, then the same events as the others.
    void join_existing(const SeqPtr &s, Subscriber sub) {
        if (s->out && !s->out->tokens().empty()) {
            EngineEvent ev;
            ev.kind = EngineEvent::DELTA;
            ev.request_id = sub.id;
            ev.text = s->out->text();
            ev.tokens = s->out->tokens();
            ev.logprobs = s->out->logprobs();
            outbox_.push_back(Outgoing{sub.sink, ev});
        }
        by_id_[sub.id] = s;
        s->subs.push_back(std::move(sub));
    }

    void drop_subscriber(const SeqPtr &s, uint64_t id, const std::string &reason,
                         std::vector<Outgoing> &outbox) {
        for (size_t i = 0; i < s->subs.size(); ++i) {
            if (s->subs[i].id != id) continue;
            EngineEvent ev = done_event(s, reason);
            ev.request_id = id;
            outbox.push_back(Outgoing{s->subs[i].sink, ev});
            s->subs.erase(s->subs.begin() + long(i));
            break;
        }
        by_id_.erase(id);
    }

    // Removes a sequence from the queues/batch and frees its blocks (unless
    // the model is using them right now: then right after the step).
    void end_sequence(const SeqPtr &s) {
        if (s->state == SeqState::FINISHED) return;
        for (auto &q : queue_) q.erase(std::remove(q.begin(), q.end(), s), q.end());
        if (!s->key.empty()) {
            auto it = by_key_.find(s->key);
            if (it != by_key_.end() && it->second == s) by_key_.erase(it);
        }
        for (const Subscriber &sub : s->subs) by_id_.erase(sub.id);
        s->state = SeqState::FINISHED;
        if (!s->in_flight) release_blocks(s);
        running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
        if (idle()) idle_cv_.notify_all();
    }

    void release_blocks(const SeqPtr &s) {
        table_.release(s->blocks);
        s->blocks.clear();
    }

    void finish(const SeqPtr &s, const std::string &reason, std::vector<Outgoing> &outbox) {
        if (s->state == SeqState::FINISHED) return;
        if (s->out) s->out->stop_early(reason);
        emit(s, done_event(s, reason), outbox);
        end_sequence(s);
    }

    void fail(const SeqPtr &s, int status, const std::string &err, std::vector<Outgoing> &outbox) {
        if (s->state == SeqState::FINISHED) return;
        EngineEvent ev;
        ev.kind = EngineEvent::ERROR;
        ev.error_status = status;
        ev.error = err;
        emit(s, ev, outbox);
        m_.requests_failed += s->subs.size();
        end_sequence(s);
    }

    bool idle() const {
        return queue_[0].empty() && queue_[1].empty() && running_.empty() && !preparing_;
    }

    // Subscribers past their deadline get DONE "deadline"; sequences left
    // without subscribers end.
    void expire_deadlines(std::vector<Outgoing> &outbox) {
        const int64_t now = now_ms();
        std::vector<SeqPtr> all(running_.begin(), running_.end());
        for (auto &q : queue_) all.insert(all.end(), q.begin(), q.end());
        for (const SeqPtr &s : all) {
            std::vector<uint64_t> expired;
            for (const Subscriber &sub : s->subs)
                if (sub.deadline_ms > 0 && sub.deadline_ms <= now) expired.push_back(sub.id);
            for (uint64_t id : expired) drop_subscriber(s, id, "deadline", outbox);
            if (!expired.empty() && s->subs.empty()) end_sequence(s);
        }
    }

    int64_t next_deadline() const {
        int64_t next = 0;
        auto scan = [&](const SeqPtr &s) {
            for (const Subscriber &sub : s->subs)
                if (sub.deadline_ms > 0 && (next == 0 || sub.deadline_ms < next))
                    next = sub.deadline_ms;
        };
        for (const SeqPtr &s : running_) scan(s);
        for (const auto &q : queue_)
            for (const SeqPtr &s : q) scan(s);
        return next;
    }

    // ---- throughput bookkeeping ----

    void record_tokens(uint64_t n) {
        const int64_t t = now_ms();
        rate_window_.emplace_back(t, n);
        while (!rate_window_.empty() && rate_window_.front().first < t - 10000)
            rate_window_.pop_front();
    }

    double decode_rate() const {
        if (rate_window_.size() < 2) return 0;
        uint64_t tokens = 0;
        for (size_t i = 1; i < rate_window_.size(); ++i) tokens += rate_window_[i].second;
        const double secs = double(rate_window_.back().first - rate_window_.front().first) / 1000.0;
        return secs > 0 ? double(tokens) / secs : 0;
    }

    // How long until a queue slot is likely free: the work ahead of a new
    // request (queued + running sequences at the average answer length)
    // over the recent decode rate.
    int retry_hint_ms() const {
        const double rate = decode_rate();
        const double avg_tokens =
            m_.requests_done > 0 ? double(m_.tokens_generated) / double(m_.requests_done) : 64.0;
        const double work = double(queue_[0].size() + queue_[1].size() + running_.size()) * avg_tokens;
        double ms = rate > 0 ? 1000.0 * work / rate / double(std::max(1, opt_.max_batch)) : 1000.0;
        return int(std::clamp(ms, 50.0, 60000.0));
    }

    // ---- the engine thread ----

    void deliver(std::vector<Outgoing> &outbox) {
        for (Outgoing &o : outbox) {
            try {
                o.sink(o.ev);
            } catch (...) {
                // A sink must not throw; the engine keeps going if one does.
            }
        }
        outbox.clear();
    }

    int running_of(uint64_t client) const {
        int n = 0;
        for (const SeqPtr &s : running_) n += s->client == client;
        return n;
    }

    // When `client` was last admitted (0: never, or long ago).
    uint64_t last_admitted(uint64_t client) const {
        auto it = last_admit_.find(client);
        return it == last_admit_.end() ? 0 : it->second;
    }

    // The next request to admit: the higher priority first; within it, of
    // those whose images are ready, the client with the fewest sequences
    // running, then the one admitted least recently, then the earliest
    // request (so one client's hundred requests cannot keep another's
    // single request waiting behind them: clients take turns).
    SeqPtr next_queued() const {
        for (const auto &q : queue_) {
            SeqPtr best;
            int best_running = 0;
            uint64_t best_last = 0;
            for (const SeqPtr &s : q) {
                if (!s->images_ready) continue;
                if (!opt_.fair_admission) return s;
                const int r = running_of(s->client);
                const uint64_t last = last_admitted(s->client);
                if (!best || r < best_running || (r == best_running && last < best_last)) {
                    best = s;
                    best_running = r;
                    best_last = last;
                }
            }
            if (best) return best;
        }
        return nullptr;
    }

    void note_admitted(uint64_t client) {
        last_admit_[client] = ++admissions_;
        // Forget clients not seen for a long while; they rank as "never".
        if (last_admit_.size() > 4096) {
            for (auto it = last_admit_.begin(); it != last_admit_.end();)
                it = it->second + 4096 < admissions_ ? last_admit_.erase(it) : std::next(it);
        }
    }

    bool can_admit() const {
        return int(running_.size()) < opt_.max_batch && next_queued() != nullptr;
    }

    // An image worker: takes queued requests with images (INTERACTIVE
    // first), decodes and preprocesses them with the lock released, and marks
    // them ready for admission (or fails them with the decoder's status).
    void decode_images_loop() {
        std::unique_lock<std::mutex> lock(mu_);
        while (true) {
            decode_cv_.wait(lock, [&] { return stop_ || !to_decode_.empty(); });
            if (stop_) return;
            auto it = std::find_if(to_decode_.begin(), to_decode_.end(),
                                   [](const SeqPtr &s) { return s->priority == Priority::INTERACTIVE; });
            if (it == to_decode_.end()) it = to_decode_.begin();
            SeqPtr s = *it;
            to_decode_.erase(it);
            if (s->state == SeqState::FINISHED) continue;   // cancelled while queued
            lock.unlock();
            auto decoded = std::make_unique<DecodedImages>();
            int status = 0;
            std::string err;
            bool ok;
            try {
                // s->chat is read only here until images_ready is set.
                ok = decode_images(model_.preprocessor(), s->chat, &vision_, *decoded, status, err);
            } catch (const std::exception &e) {
                ok = false;
                status = 500;
                err = std::string("image decoding: ") + e.what();
            }
            lock.lock();
            if (s->state == SeqState::FINISHED) continue;
            if (!ok) {
                fail(s, status, err, outbox_);
            } else {
                s->decoded = std::move(decoded);
                s->images_ready = true;
            }
            cv_.notify_all();
        }
    }

    // Decodes images, builds the prompt (lock released meanwhile).
    bool prepare(const SeqPtr &s, std::unique_lock<std::mutex> &lock, std::vector<Outgoing> &outbox) {
        s->state = SeqState::PREPARING;
        preparing_ = true;
        lock.unlock();
        int status = 0;
        std::string err;
        PreparedPrompt prep;
        bool ok;
        try {
            ok = prepare_prompt(model_, tok_, s->chat, &vision_, prep, status, err, s->decoded.get());
        } catch (const std::exception &e) {
            ok = false;
            status = 500;
            err = std::string("prepare: ") + e.what();
        }
        lock.lock();
        preparing_ = false;
        m_.vision_cache_hits += uint64_t(prep.vision_cache_hits);
        m_.vision_cache_misses += uint64_t(prep.vision_cache_misses);
        if (s->state == SeqState::FINISHED) return false;   // cancelled meanwhile
        s->state = SeqState::QUEUED;
        if (!ok) {
            fail(s, status, err, outbox);
            return false;
        }
        s->prep = std::move(prep);
        s->decoded.reset();
        s->chat.images.clear();   // the bytes (maybe in shared memory) are no longer needed
        s->prepared = true;
        return true;
    }

    // Reserves blocks (prefix blocks shared) and moves s into the batch.
    // False: not enough free blocks yet (s stays at the head of its queue).
    bool try_start(const SeqPtr &s, std::vector<Outgoing> &outbox) {
        const int bt = table_.block_tokens();
        const int64_t n_prompt = int64_t(s->prep.ids.size());
        const int64_t need = (n_prompt + s->chat.max_tokens + bt - 1) / bt;
        if (need > table_.total()) {
            fail(s, 413, "prompt (" + std::to_string(n_prompt) + " tokens) + max_tokens needs " +
                             std::to_string(need) + " KV blocks; the cache has " +
                             std::to_string(table_.total()), outbox);
            return true;
        }
        std::vector<int32_t> blocks;
        int64_t reuse_tokens = 0;
        const int64_t n_full = n_prompt / bt;
        if (opt_.prefix_cache) {
            s->block_hashes = table_.chain_hashes(s->prep.token_keys.data(), n_full);
            // At least one prompt token is computed (it gives the first
            // logits), and prefill resumes at a chunk boundary so the chunks
            // are those of the request alone (parity with vlm-run).
            int64_t max_tokens = n_prompt - 1;
            const int chunk = std::max(1, opt_.prefill_chunk_tokens);
            max_tokens = max_tokens / chunk * chunk;
            const int64_t max_blocks = std::min<int64_t>(n_full, max_tokens / bt);
            int64_t matched = table_.match_prefix(s->prep.token_keys.data(), max_blocks, blocks);
            int64_t usable = matched * bt / chunk * chunk / bt;   // whole chunks only
            if (usable * bt % chunk != 0) usable = 0;
            if (usable < matched) {
                std::vector<int32_t> extra(blocks.begin() + usable, blocks.end());
                table_.release(extra);
                blocks.resize(size_t(usable));
            }
            reuse_tokens = usable * bt;
            m_.prefix_cache_lookup_tokens += uint64_t(n_prompt);
            m_.prefix_cache_hit_tokens += uint64_t(reuse_tokens);
        }
        if (!table_.allocate(need - int64_t(blocks.size()), blocks)) {
            table_.release(blocks);
            return false;
        }
        s->blocks = std::move(blocks);
        s->n_computed = reuse_tokens;
        s->published = reuse_tokens / bt;
        s->out = std::make_unique<SequenceOutput>(model_, tok_, s->chat, s->prep.ids);
        s->state = SeqState::PREFILL;
        for (auto &q : queue_) q.erase(std::remove(q.begin(), q.end(), s), q.end());
        running_.push_back(s);
        note_admitted(s->client);
        m_.prompt_tokens += uint64_t(n_prompt);
        return true;
    }

    // Admits at most one request with images per step while others run
    // (preparing runs the vision encoder, which would otherwise hold up
    // everyone's decoding); text-only requests are cheap to prepare.
    void admit(std::unique_lock<std::mutex> &lock, std::vector<Outgoing> &outbox) {
        bool encoded_one = false;
        while (can_admit() && !stop_) {
            SeqPtr s = next_queued();
            if (!s->prepared) {
                const bool has_images = !s->chat.images.empty();
                if (has_images && encoded_one && !running_.empty()) return;
                encoded_one = encoded_one || has_images;
                if (!prepare(s, lock, outbox)) continue;
                if (s->state == SeqState::FINISHED) continue;
            }
            if (!try_start(s, outbox)) return;   // wait for blocks
        }
    }

    struct PlannedStep {
        SeqPtr  seq;
        int64_t start = 0, end = 0;   // prompt tokens (prefill) or the decode token
        bool    decode = false;
    };

    std::vector<PlannedStep> plan() {
        std::vector<PlannedStep> plan;
        for (const SeqPtr &s : running_)
            if (s->state == SeqState::DECODE) plan.push_back({s, s->n_computed, s->n_computed + 1, true});
        // Prefill: whole chunks, INTERACTIVE first, within the token budget
        // (the first chunk always runs so a big chunk still makes progress).
        std::vector<SeqPtr> prefill;
        for (int p = 0; p < 2; ++p)
            for (const SeqPtr &s : running_)
                if (s->state == SeqState::PREFILL && int(s->priority) == p) prefill.push_back(s);
        int64_t budget = std::max(1, opt_.prefill_chunk_tokens);
        bool first = true;
        for (const SeqPtr &s : prefill) {
            const int64_t n_prompt = int64_t(s->prep.ids.size());
            const int64_t end = prefill_chunk_end(s->n_computed, n_prompt, opt_.prefill_chunk_tokens);
            const int64_t n = end - s->n_computed;
            if (!first && n > budget) break;
            plan.push_back({s, s->n_computed, end, false});
            budget -= n;
            first = false;
        }
        return plan;
    }

    // Results of a step: tokens sampled, events queued, blocks published.
    void absorb(const std::vector<PlannedStep> &steps, const std::vector<float> &logits,
                std::vector<Outgoing> &outbox) {
        const int32_t vocab = model_.config().text.vocab_size;
        const int bt = table_.block_tokens();
        size_t row = 0;
        uint64_t new_tokens = 0;
        for (const PlannedStep &p : steps) {
            const SeqPtr &s = p.seq;
            s->in_flight = false;
            const int64_t n_prompt = int64_t(s->prep.ids.size());
            const bool wants = p.decode || p.end == n_prompt;
            const float *row_logits = wants ? logits.data() + row * size_t(vocab) : nullptr;
            if (wants) ++row;
            if (s->state == SeqState::FINISHED) {   // cancelled or expired during the step
                release_blocks(s);
                continue;
            }
            s->n_computed = p.end;
            if (!p.decode && opt_.prefix_cache) {
                const int64_t full = std::min<int64_t>(s->n_computed / bt, int64_t(s->block_hashes.size()));
                for (; s->published < full; ++s->published)
                    table_.publish(s->prep.token_keys.data(), s->published,
                                   s->block_hashes[size_t(s->published)],
                                   s->published ? s->block_hashes[size_t(s->published - 1)] : 0,
                                   s->blocks[size_t(s->published)]);
            }
            if (!wants) continue;
            TokenOutcome o;
            s->out->accept(row_logits, vocab, o);
            s->state = SeqState::DECODE;
            s->next_token = o.id;
            if (!s->first_token_seen) {
                s->first_token_seen = true;
                ttft_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s->submitted).count());
                if (ttft_.size() > 1024) ttft_.pop_front();
            }
            if (o.appended) {
                ++new_tokens;
                EngineEvent ev;
                ev.kind = EngineEvent::DELTA;
                ev.text = o.text;
                ev.tokens = {o.id};
                if (o.has_logprob) ev.logprobs = {o.logprob};
                emit(s, ev, outbox);
            } else if (!o.text.empty() || o.has_logprob) {
                EngineEvent ev;
                ev.kind = EngineEvent::DELTA;
                ev.text = o.text;
                if (o.has_logprob) ev.logprobs = {o.logprob};
                emit(s, ev, outbox);
            }
            if (o.done) {
                m_.requests_done += s->subs.size();
                finish(s, s->out->finish_reason(), outbox);
            }
        }
        m_.tokens_generated += new_tokens;
        if (new_tokens) record_tokens(new_tokens);
    }

    void run() {
        std::vector<Outgoing> outbox;
        std::vector<float> logits;
        std::unique_lock<std::mutex> lock(mu_);
        while (true) {
            outbox.insert(outbox.end(), outbox_.begin(), outbox_.end());
            outbox_.clear();
            expire_deadlines(outbox);
            if (stop_) break;
            admit(lock, outbox);
            outbox.insert(outbox.end(), outbox_.begin(), outbox_.end());
            outbox_.clear();
            std::vector<PlannedStep> steps = plan();
            if (steps.empty()) {
                if (idle()) idle_cv_.notify_all();
                if (!outbox.empty()) {
                    lock.unlock();
                    deliver(outbox);
                    lock.lock();
                    continue;
                }
                const int64_t deadline = next_deadline();
                auto woke = [&] { return stop_ || !outbox_.empty() || can_admit(); };
                if (deadline > 0)
                    cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, deadline - now_ms())), woke);
                else
                    cv_.wait(lock, woke);
                continue;
            }
            // Build the model's view of the step; the arrays live until absorb.
            std::vector<SeqStep> batch;
            std::vector<std::vector<int32_t>> pos_bufs(steps.size());
            std::vector<int32_t> decode_ids(steps.size());
            const ModelConfig &cfg = model_.config();
            for (size_t i = 0; i < steps.size(); ++i) {
                const PlannedStep &p = steps[i];
                Sequence &s = *p.seq;
                s.in_flight = true;
                if (p.decode) {
                    decode_ids[i] = s.next_token;
                    const int32_t pos = int32_t(s.n_computed) + s.prep.rope_delta;
                    pos_bufs[i] = {pos, pos, pos};
                    SeqStep st;
                    st.ids = &decode_ids[i];
                    st.positions = pos_bufs[i].data();
                    st.n = 1;
                    st.blocks = s.blocks.data();
                    st.n_blocks = int64_t(s.blocks.size());
                    st.n_past = s.n_computed;
                    st.want_logits = true;
                    batch.push_back(st);
                } else {
                    batch.push_back(prefill_step(s.prep, p.start, p.end, s.blocks, pos_bufs[i],
                                                 cfg.text.hidden_size, cfg.image_token_id));
                }
            }
            lock.unlock();
            deliver(outbox);
            std::string err;
            bool ok;
            try {
                ok = model_.forward_batch(batch, pool_, logits, err);
            } catch (const std::exception &e) {
                ok = false;
                err = e.what();
            }
            lock.lock();
            // Events made during the step (a follower's catch-up) go first.
            outbox.insert(outbox.end(), outbox_.begin(), outbox_.end());
            outbox_.clear();
            ++m_.steps;
            if (!ok) {
                // Every sequence of the step fails (503 on a device error,
                // see model_failure_status); the next step runs on a
                // recovered backend, or fails fast if the device is lost.
                const int status = model_failure_status(model_, 500);
                for (const PlannedStep &p : steps) {
                    p.seq->in_flight = false;
                    if (p.seq->state == SeqState::FINISHED) release_blocks(p.seq);
                    else fail(p.seq, status, "model step failed: " + err, outbox);
                }
                continue;
            }
            absorb(steps, logits, outbox);
        }
        lock.unlock();
        deliver(outbox);
    }

    Model &model_;
    const Tokenizer &tok_;
    EngineOptions opt_;
    KvPool pool_;

    mutable std::mutex mu_;
    std::condition_variable cv_, idle_cv_;
    KvBlockTable table_;
    VisionCache vision_;   // engine thread only
    std::deque<SeqPtr> queue_[2];   // by Priority
    std::deque<SeqPtr> to_decode_;  // queued with images not yet decoded
    std::unordered_map<uint64_t, uint64_t> last_admit_;   // client -> admissions_ then
    uint64_t admissions_ = 0;
    std::condition_variable decode_cv_;
    std::vector<std::thread> workers_;   // image workers
    std::vector<SeqPtr> running_;
    std::unordered_map<uint64_t, SeqPtr> by_id_;
    std::unordered_map<std::string, SeqPtr> by_key_;
    std::vector<Outgoing> outbox_;  // events made outside the engine thread
    bool preparing_ = false, draining_ = false, stop_ = false;
    EngineMetrics m_;
    std::deque<double> ttft_;
    std::deque<std::pair<int64_t, uint64_t>> rate_window_;
    std::thread thread_;
};

}  // namespace

std::unique_ptr<Engine> start_engine(Model &model, const Tokenizer &tok, const EngineOptions &opt,
                                     std::string &err) {
    if (opt.max_batch < 1 || opt.kv_block_tokens < 1 || opt.kv_block_tokens > 4096 ||
        opt.prefill_chunk_tokens < 1 || opt.queue_limit_interactive < 0 ||
        opt.queue_limit_bulk < 0) {
        err = "engine options out of range (max_batch, kv_block_tokens, prefill_chunk_tokens, "
              "queue limits)";
        return nullptr;
    }
    const TextConfig &t = model.config().text;
    const size_t per_block = size_t(t.num_hidden_layers) * 2 * size_t(opt.kv_block_tokens) *
                             size_t(t.num_key_value_heads) * size_t(t.head_dim) * sizeof(float);
    int64_t n_blocks = per_block ? int64_t(opt.kv_cache_bytes / per_block) : 0;
    if (n_blocks <= 0) {
        err = "engine: kv_cache_bytes " + std::to_string(opt.kv_cache_bytes) +
              " holds no KV block of " + std::to_string(per_block) + " bytes";
        return nullptr;
    }
    KvPool pool;
    if (!model.new_kv_pool(n_blocks, opt.kv_block_tokens, pool, err)) return nullptr;
    try {
        return std::make_unique<EngineImpl>(model, tok, opt, std::move(pool));
    } catch (const std::exception &e) {
        err = std::string("start_engine: ") + e.what();
        return nullptr;
    }
}

}  // namespace vlm
