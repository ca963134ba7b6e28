// test_vlmd_config.cpp: vlmd's configuration as an operator meets it: the
// shipped conf/vlmd.conf documents every key with its true default; a good
// file sets what it says; mistakes (unknown key, bad value, duplicate) are
// refused with file:line and a reason; flags override the file; --help
// lists every option once.
#include "serve/vlmd_config.h"

#include "run_process.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro
#include "fixture_files.h"

using namespace vlm;

namespace {

using vlm_test::read_text;

std::string conf_path() {
    const char *d = std::getenv("VLM_FIXTURES");
    return std::string(d ? d : "(VLM_FIXTURES unset)") + "/../../conf/vlmd.conf";
}

std::map<std::string, std::string> as_map(const VlmdConfig &c) {
    std::map<std::string, std::string> m;
    for (const auto &[k, v] : describe_vlmd_config(c)) m[k] = v;
    return m;
}

}  // namespace

START_TEST(example_file_documents_every_key)
{
    std::string text = read_text(conf_path());
    VlmdConfig cfg;
    std::string err;
    // As shipped (everything commented out) it loads and changes nothing.
    ck_assert_msg(load_vlmd_config(conf_path(), cfg, err), "%s", err.c_str());
    ck_assert(as_map(cfg) == as_map(VlmdConfig{}));
    // Each "#key value" line is the key's default (the allowlist example aside).
    std::istringstream in(text);
    std::string line, uncommented;
    std::map<std::string, int> documented;
    while (std::getline(in, line)) {
        if (line.size() < 2 || line[0] != '#' || !(line[1] >= 'a' && line[1] <= 'z')) continue;
        std::string key = line.substr(1, line.find(' ') - 1);
        documented[key]++;
        if (key != "remote_images_allow") uncommented += line.substr(1) + "\n";
    }
    VlmdConfig from_doc;
    ck_assert_msg(parse_vlmd_config(uncommented, "vlmd.conf (uncommented)", from_doc, err), "%s", err.c_str());
    auto want = as_map(VlmdConfig{}), got = as_map(from_doc);
    for (const auto &[k, v] : want) {
        ck_assert_msg(documented.count(k) == 1, "conf/vlmd.conf does not document %s", k.c_str());
        ck_assert_msg(got[k] == v, "conf/vlmd.conf says %s %s, the default is %s", k.c_str(), got[k].c_str(),
                      v.c_str());
    }
    std::printf("conf/vlmd.conf documents all %zu keys with their defaults\n", want.size());
    ck_assert_msg(validate_vlmd_config(VlmdConfig{}, err), "defaults invalid: %s", err.c_str());
    ck_assert(!VlmdConfig{}.remote_images.enabled);   // DESIGN decision 8
}
END_TEST

START_TEST(good_file)
{
    const char *text =
        "# a comment\n"
        "model_dir /srv/models/glm   # trailing comment\n"
        "\n"
        "   threads 4\n"
        "max_batch\t8\n"
        "kv_cache_bytes 2G\n"
        "vision_cache_bytes 512MiB\n"
        "prefill_chunk 128\n"
        "prefix_cache off\n"
        "socket_path \"/run/vlm/a b#c.sock\"\n"
        "prompts_dir /etc/vlm/prompts#v2\n"
        "remote_images on\n"
        "remote_images_allow images.example.com, *.cdn.example.org\n"
        "remote_images_allow 203.0.113.9\n"
        "remote_images_max_bytes 4M\n"
        "remote_images_timeout_ms 2500\n"
        "remote_images_max_redirects 1\n"
        "image_max_pixels 1000000\n"
        "log_level debug\n";
    VlmdConfig c;
    std::string err;
    ck_assert_msg(parse_vlmd_config(text, "good.conf", c, err), "%s", err.c_str());
    ck_assert_str_eq(c.model_dir.c_str(), "/srv/models/glm");
    ck_assert_int_eq(c.threads, 4);
    ck_assert_int_eq(c.engine.max_batch, 8);
    ck_assert_uint_eq(c.engine.kv_cache_bytes, size_t(2) << 30);
    ck_assert_uint_eq(c.engine.vision_cache_bytes, size_t(512) << 20);
    ck_assert_int_eq(c.engine.prefill_chunk_tokens, 128);
    ck_assert(!c.engine.prefix_cache);
    ck_assert_str_eq(c.socket_path.c_str(), "/run/vlm/a b#c.sock");
    ck_assert_str_eq(c.prompts_dir.c_str(), "/etc/vlm/prompts#v2");
    ck_assert(c.remote_images.enabled);
    ck_assert_uint_eq(c.remote_images.allowed_hosts.size(), 3);
    ck_assert_str_eq(c.remote_images.allowed_hosts[1].c_str(), "*.cdn.example.org");
    ck_assert_uint_eq(c.remote_images.max_bytes, size_t(4) << 20);
    ck_assert_int_eq(c.remote_images.timeout_ms, 2500);
    ck_assert_int_eq(c.remote_images.max_redirects, 1);
    ck_assert_int_eq(c.image_limits.max_pixels, 1000000);
    ck_assert(c.log_level == LogLevel::DEBUG);
    ck_assert_msg(validate_vlmd_config(c, err), "%s", err.c_str());
    // Untouched keys keep their defaults.
    ck_assert_int_eq(c.engine.queue_limit_bulk, VlmdConfig{}.engine.queue_limit_bulk);
    auto m = as_map(c);
    ck_assert_str_eq(m["kv_cache_bytes"].c_str(), "2G");
    ck_assert_str_eq(m["remote_images_allow"].c_str(), "images.example.com *.cdn.example.org 203.0.113.9");
}
END_TEST

START_TEST(mistakes_name_file_and_line)
{
    struct {
        const char *text, *want;
    } cases[] = {
        {"threads 2\nmax_batchh 8\n", "bad.conf:2: unknown key \"max_batchh\" (did you mean max_batch?)"},
        {"frobnicate 1\n", "bad.conf:1: unknown key \"frobnicate\""},
        {"\n\nmax_batch eight\n", "bad.conf:3: max_batch: expected an integer in 1..1024, got \"eight\""},
        {"max_batch 0\n", "bad.conf:1: max_batch: expected an integer in 1..1024, got \"0\""},
        {"max_batch 8x\n", "bad.conf:1: max_batch: expected an integer"},
        {"threads 99999999999999999999\n", "bad.conf:1: threads: expected an integer"},
        {"kv_cache_bytes 1Q\n", "bad.conf:1: kv_cache_bytes: expected a size in 1M..1T, got \"1Q\""},
        {"kv_cache_bytes 99999999999G\n", "bad.conf:1: kv_cache_bytes: expected a size"},
        {"kv_cache_bytes -1\n", "bad.conf:1: kv_cache_bytes: expected a size"},
        {"prefix_cache maybe\n", "bad.conf:1: prefix_cache: expected on or off, got \"maybe\""},
        {"log_level loud\n", "bad.conf:1: log_level: expected debug, info, warn or error"},
        {"model_dir\n", "bad.conf:1: model_dir: needs a value"},
        {"model_dir # only a comment\n", "bad.conf:1: model_dir: needs a value"},
        {"socket_path \"/run/x\n", "bad.conf:1: unterminated quoted value"},
        {"socket_path \"/run/x\" extra\n", "bad.conf:1: text after the quoted value"},
        {"max_batch 4\nthreads 2\nmax_batch 8\n", "bad.conf:3: max_batch: already set at line 1"},
        {"remote_images_allow *.com\n", "bad.conf:1: remote_images_allow: allowlist entry \"*.com\""},
        {"remote_images_allow http://a.com/\n", "bad.conf:1: remote_images_allow: allowlist entry"},
    };
    for (const auto &c : cases) {
        VlmdConfig cfg;
        std::string err;
        ck_assert_msg(!parse_vlmd_config(c.text, "bad.conf", cfg, err), "accepted: %s", c.text);
        ck_assert_msg(err.find(c.want) != std::string::npos, "\"%s\" lacks \"%s\"", err.c_str(), c.want);
    }
    VlmdConfig cfg;
    std::string err;
    ck_assert(!load_vlmd_config("/nonexistent/vlmd.conf", cfg, err));
    ck_assert_msg(err.find("/nonexistent/vlmd.conf: cannot open") != std::string::npos, "%s", err.c_str());
}
END_TEST

START_TEST(cross_key_validation)
{
    VlmdConfig c;
    std::string err;
    c.remote_images.enabled = true;
    ck_assert(!validate_vlmd_config(c, err));
    ck_assert_msg(err.find("remote_images_allow is empty") != std::string::npos, "%s", err.c_str());
    c.remote_images.allowed_hosts = {"images.example.com"};
    ck_assert_msg(validate_vlmd_config(c, err), "%s", err.c_str());
    c.remote_images.max_bytes = c.image_limits.max_bytes + 1;
    ck_assert(!validate_vlmd_config(c, err));
    ck_assert_msg(err.find("exceeds image_max_bytes") != std::string::npos, "%s", err.c_str());
    c = VlmdConfig{};
    c.socket_path = "/run/" + std::string(120, 'x');
    ck_assert(!validate_vlmd_config(c, err));
    ck_assert_msg(err.find("socket_path") != std::string::npos, "%s", err.c_str());
    c = VlmdConfig{};
    c.remote_images.allow_loopback_for_tests_ports = {8080};
    ck_assert(!validate_vlmd_config(c, err));
}
END_TEST

START_TEST(flags_override_file)
{
    VlmdConfig c;
    std::string err;
    ck_assert(parse_vlmd_config("max_batch 8\nremote_images_allow a.example.com\nlog_level warn\n", "f.conf", c, err));
    ck_assert_msg(apply_flag(c, "--max-batch", "32", err), "%s", err.c_str());
    ck_assert_int_eq(c.engine.max_batch, 32);
    ck_assert_msg(apply_flag(c, "log_level", "debug", err), "%s", err.c_str());
    ck_assert(c.log_level == LogLevel::DEBUG);
    ck_assert_msg(apply_flag(c, "--remote-images-allow", "b.example.com,c.example.com", err), "%s", err.c_str());
    ck_assert_uint_eq(c.remote_images.allowed_hosts.size(), 2);   // a flag replaces the list
    ck_assert_str_eq(c.remote_images.allowed_hosts[0].c_str(), "b.example.com");
    ck_assert(apply_flag(c, "--remote_images", "on", err));
    ck_assert(c.remote_images.enabled);
    ck_assert(apply_flag(c, "--kv-cache-bytes", "512M", err));
    ck_assert_uint_eq(c.engine.kv_cache_bytes, size_t(512) << 20);

    ck_assert(!apply_flag(c, "--max-bacth", "4", err));
    ck_assert_msg(err == "--max-bacth: unknown option (did you mean --max-batch?)", "%s", err.c_str());
    ck_assert(!apply_flag(c, "--max-batch", "many", err));
    ck_assert_msg(err == "--max-batch: expected an integer in 1..1024, got \"many\"", "%s", err.c_str());
    ck_assert_int_eq(c.engine.max_batch, 32);   // a refused flag changes nothing
    ck_assert(!apply_flag(c, "--prefix-cache", "", err));
    ck_assert_msg(err.find("--prefix-cache: expected on or off") == 0, "%s", err.c_str());

    // Short flags name the same keys.
    ck_assert(apply_flag(c, "--model", "/srv/m", err) && c.model_dir == "/srv/m");
    ck_assert(apply_flag(c, "--socket", "/run/s.sock", err) && c.socket_path == "/run/s.sock");
    ck_assert(apply_flag(c, "--prompts", "/etc/p", err) && c.prompts_dir == "/etc/p");
    ck_assert(!apply_flag(c, "--max-connections", "0", err));
    ck_assert_msg(err == "--max-connections: expected an integer in 1..65536, got \"0\"", "%s", err.c_str());
    ck_assert(apply_flag(c, "--request-arena-bytes", "8M", err));
    ck_assert_uint_eq(c.request_arena_bytes, uint64_t(8) << 20);
}
END_TEST

// `vlmd --help` lists every option once: one line per key, under its group,
// with the default that key really has; the flag on that line is accepted
// and sets that key. The binary prints exactly this text.
START_TEST(help_lists_each_option_once)
{
    const std::string help = vlmd_config_help();
    std::vector<std::string> option_lines;
    std::istringstream in(help);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("  --", 0) == 0) option_lines.push_back(line);
    auto defaults = describe_vlmd_config(VlmdConfig{});
    ck_assert_uint_eq(option_lines.size(), defaults.size() + 2);   // + --config, --help
    std::map<std::string, int> seen;
    for (const std::string &l : option_lines) {
        std::string flag = l.substr(2, l.find(' ', 2) - 2);
        ck_assert_msg(++seen[flag] == 1, "%s is listed twice", flag.c_str());
        if (flag == "--config" || flag == "--help") continue;
        // The line shows the default of the key the flag names, and the
        // flag accepts it.
        size_t open = l.rfind(" ["), close = l.rfind(']');
        ck_assert_msg(open != std::string::npos && close == l.size() - 1, "no default: %s", l.c_str());
        std::string shown = l.substr(open + 2, close - open - 2);
        const std::map<std::string, std::string> shorts = {
            {"--model", "model_dir"}, {"--socket", "socket_path"}, {"--prompts", "prompts_dir"}};
        std::string key = shorts.count(flag) ? shorts.at(flag) : flag.substr(2);
        for (char &ch : key)
            if (ch == '-') ch = '_';
        std::string want = "(no such key)";
        for (const auto &[k, value] : defaults)
            if (k == key) want = value.empty() ? "none" : value;
        ck_assert_msg(shown == want, "%s shows [%s], the default of %s is %s", flag.c_str(), shown.c_str(),
                      key.c_str(), want.c_str());
        VlmdConfig probe;
        std::string err;
        ck_assert_msg(want == "none" || apply_flag(probe, flag, want, err), "%s %s: %s", flag.c_str(),
                      want.c_str(), err.c_str());
    }
    // Neither the long form of a short flag nor a file key is listed again.
    for (const char *twice : {"--model-dir", "--socket-path", "--prompts-dir", "max_batch VALUE", "--kv-cache-mb",
                              "--queue-limit ", "--arena-mb"})
        ck_assert_msg(seen.count(twice) == 0 && help.find(std::string("  ") + twice) == std::string::npos,
                      "%s listed", twice);
    for (const char *group : {"\nmodel:\n", "\nconnections:\n", "\nscheduling:\n", "\ntasks:\n",
                              "\nrequest limits:\n", "\nremote images:\n", "\nlogging:\n"})
        ck_assert_msg(help.find(group) != std::string::npos, "no group %s", group + 1);
    ck_assert(help.find("  --max-batch N ") != std::string::npos);
    ck_assert(help.find("sequences decoding together [16]\n") != std::string::npos);

    const char *bin = std::getenv("VLM_BIN");
    ProcessResult r = run_process({std::string(bin ? bin : ".") + "/vlmd", "--help"});
    ck_assert_msg(r.exit_code == 0, "vlmd --help: exit %d: %s", r.exit_code, r.err.c_str());
    ck_assert_msg(r.out == help, "vlmd --help prints something else:\n%s", r.out.c_str());
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "vlmd_config", {
        {"vlmd_config", 0, {
            example_file_documents_every_key,
            good_file,
            mistakes_name_file_and_line,
            cross_key_validation,
            flags_override_file,
            help_lists_each_option_once,
        }},
    });
}
