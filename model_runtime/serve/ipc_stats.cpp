// ipc_stats.cpp: see ipc_stats.h.
#include "serve/ipc_stats.h"

#include <jansson.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace vlm {

std::string stats_json(IpcServer &s)
{
    EngineMetrics m = s.engine.metrics();
    json_t *o = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "queue_interactive", json_integer(m.queue_interactive));
    json_object_set_new(e, "queue_bulk", json_integer(m.queue_bulk));
    json_object_set_new(e, "running", json_integer(m.running));
    json_object_set_new(e, "kv_blocks_total", json_integer(m.kv_blocks_total));
    json_object_set_new(e, "kv_blocks_used", json_integer(m.kv_blocks_used));
    json_object_set_new(e, "requests_done", json_integer(json_int_t(m.requests_done)));
    json_object_set_new(e, "requests_cancelled", json_integer(json_int_t(m.requests_cancelled)));
    json_object_set_new(e, "requests_failed", json_integer(json_int_t(m.requests_failed)));
    json_object_set_new(e, "requests_coalesced", json_integer(json_int_t(m.requests_coalesced)));
    json_object_set_new(e, "tokens_generated", json_integer(json_int_t(m.tokens_generated)));
    json_object_set_new(e, "prompt_tokens", json_integer(json_int_t(m.prompt_tokens)));
    json_object_set_new(e, "prefix_cache_hit_tokens", json_integer(json_int_t(m.prefix_cache_hit_tokens)));
    json_object_set_new(e, "prefix_cache_lookup_tokens", json_integer(json_int_t(m.prefix_cache_lookup_tokens)));
    json_object_set_new(e, "vision_cache_hits", json_integer(json_int_t(m.vision_cache_hits)));
    json_object_set_new(e, "vision_cache_misses", json_integer(json_int_t(m.vision_cache_misses)));
    json_object_set_new(e, "ttft_ms_avg", json_real(m.ttft_ms_avg));
    json_object_set_new(e, "ttft_ms_p99", json_real(m.ttft_ms_p99));
    json_object_set_new(e, "decode_tokens_per_s", json_real(m.decode_tokens_per_s));
    json_object_set_new(o, "engine", e);
    json_t *i = json_object();
    const IpcCounters &c = s.counters;
    json_object_set_new(i, "connections_active", json_integer(json_int_t(c.connections_active.load())));
    json_object_set_new(i, "connections_total", json_integer(json_int_t(c.connections_total.load())));
    json_object_set_new(i, "connections_refused", json_integer(json_int_t(c.connections_refused.load())));
    json_object_set_new(i, "bytes_in", json_integer(json_int_t(c.bytes_in.load())));
    json_object_set_new(i, "bytes_out", json_integer(json_int_t(c.bytes_out.load())));
    json_object_set_new(i, "protocol_errors", json_integer(json_int_t(c.protocol_errors.load())));
    json_object_set_new(i, "requests", json_integer(json_int_t(c.requests.load())));
    json_object_set_new(i, "requests_rejected", json_integer(json_int_t(c.requests_rejected.load())));
    json_object_set_new(i, "doorbells_in", json_integer(json_int_t(c.doorbells_in.load())));
    json_object_set_new(i, "doorbells_out", json_integer(json_int_t(c.doorbells_out.load())));
    json_object_set_new(i, "results_deferred", json_integer(json_int_t(c.results_deferred.load())));
    json_object_set_new(i, "backpressure_disconnects", json_integer(json_int_t(c.backpressure_disconnects.load())));
    json_object_set_new(o, "ipc", i);
    char epoch[24];
    std::snprintf(epoch, sizeof epoch, "%016llx", static_cast<unsigned long long>(s.epoch));
    json_object_set_new(o, "epoch", json_string(epoch));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "model", json_string(s.opt.model_name.c_str()));
    json_object_set_new(o, "uptime_s", json_real(double(steady_ms() - s.started_ms) / 1000.0));
    json_object_set_new(o, "draining", json_boolean(s.draining));
    char *text = json_dumps(o, JSON_COMPACT);
    std::string out = text ? text : "{}";
    std::free(text);
    json_decref(o);
    return out;
}

}  // namespace vlm
