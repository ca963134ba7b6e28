#!/bin/sh
# A real WordPress for the browser and vlm-bulk tests, all state in build/wp-env/:
#   Debian's WordPress (copied, so the config is ours and /etc is untouched), MariaDB and php-fpm
#   on private unix sockets, Redis, vlmd with the tiny fixture model, and ONE nginx loading our
#   module that serves WordPress on $WP_PORT and the vlm API on $VLM_PORT (two origins, so the
#   browser really goes through CORS and the JWT the plugin mints).
# Usage: wp-env.sh start | stop | status.  start writes build/wp-env/env.sh (WP_URL, VLM_URL,
# WP_ADMIN_USER, WP_ADMIN_PASSWORD, WP_APP_PASSWORD, WP_PATH, VLM_API_KEY_FILE,
# VLM_JWT_SECRET_FILE, NGINX_ACCESS_LOG (vlm API), WP_ACCESS_LOG, WP_DEBUG_LOG) for the tests to source.
# Each start is a fresh site; stop ends exactly the processes start recorded.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
env=$root/build/wp-env
vlmd=${VLMD:-$root/build/bin/vlmd}
model=${VLM_MODEL:-$root/tests/fixtures/models/tiny-flash}
wp_src=${WP_SRC:-/usr/share/wordpress}

die() { echo "wp-env: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() { [ -f "$env/$1.pid" ] && kill -0 "$(cat "$env/$1.pid")" 2>/dev/null; }

stop_all() {
    for name in nginx php-fpm vlmd redis mariadb; do
        alive "$name" || { rm -f "$env/$name.pid"; continue; }
        pid=$(cat "$env/$name.pid")
        if [ "$name" = nginx ]; then kill -QUIT "$pid"; else kill -TERM "$pid"; fi
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        rm -f "$env/$name.pid"
    done
}

wait_for() {  # wait_for <what> <seconds> <command...>
    what=$1; secs=$2; shift 2
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -le $((secs * 10)) ] || { stop_all; die "$what not ready after ${secs}s (logs in $env)"; }
        sleep 0.1
    done
}

start_mariadb() {
    mysql_install_db --no-defaults --datadir="$env/mysql" --user="$(id -un)" \
        --auth-root-authentication-method=normal --skip-test-db > "$env/mariadb-install.log" 2>&1 \
        || die "mysql_install_db failed (see $env/mariadb-install.log)"
    mariadbd --no-defaults --datadir="$env/mysql" --socket="$env/mysql.sock" --skip-networking \
        --user="$(id -un)" --pid-file="$env/mariadb.pid.internal" --log-error="$env/mariadb.log" \
        --innodb-buffer-pool-size=64M --skip-log-bin --open-files-limit=4096 &
    echo $! > "$env/mariadb.pid"
    wait_for MariaDB 60 mariadb-admin --no-defaults -S "$env/mysql.sock" -u root ping
    mariadb --no-defaults -S "$env/mysql.sock" -u root <<'SQL'
CREATE DATABASE wordpress CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wp';
GRANT ALL ON wordpress.* TO 'wp'@'localhost';
SQL
}

start_php_fpm() {
    fpm=$(command -v php-fpm8.2 || ls /usr/sbin/php-fpm* 2>/dev/null | head -1)
    [ -n "$fpm" ] || die "php-fpm is missing"
    user_lines=""; as_root=""
    if [ "$(id -u)" -eq 0 ]; then user_lines="user = root
group = root"; as_root="-R"; fi
    cat > "$env/php-fpm.conf" <<CONF
[global]
pid = $env/php-fpm.pid.internal
error_log = $env/php-fpm.log
daemonize = no

[wordpress]
$user_lines
listen = $env/php-fpm.sock
listen.mode = 0600
pm = static
pm.max_children = 4
catch_workers_output = yes
php_admin_value[error_log] = $env/php-errors.log
php_admin_value[upload_max_filesize] = 32M
php_admin_value[post_max_size] = 32M
php_admin_value[memory_limit] = 256M
CONF
    "$fpm" $as_root --nodaemonize --fpm-config "$env/php-fpm.conf" > "$env/php-fpm.out" 2>&1 &
    echo $! > "$env/php-fpm.pid"
    wait_for php-fpm 30 test -S "$env/php-fpm.sock"
}

write_wp_config() {
    salts=$(for k in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT \
                     LOGGED_IN_SALT NONCE_SALT; do
        printf "define('%s', '%s');\n" "$k" "$(openssl rand -hex 32)"; done)
    cat > "$env/www/wp-config.php" <<PHP
<?php
// Written by tests/browser/wp-env.sh for a throwaway test site.
define('DB_NAME', 'wordpress');
define('DB_USER', 'wp');
define('DB_PASSWORD', 'wp');
define('DB_HOST', 'localhost:$env/mysql.sock');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$salts
\$table_prefix = 'wp_';
define('WP_HOME', '$wp_url');
define('WP_SITEURL', '$wp_url');
// "local" lets application passwords work over plain http on loopback.
define('WP_ENVIRONMENT_TYPE', 'local');
// No network here: fail calls to wordpress.org at once instead of waiting for timeouts.
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('DISABLE_WP_CRON', true);
define('FS_METHOD', 'direct');
define('WP_DEBUG', true);
define('WP_DEBUG_LOG', '$env/wp-debug.log');
define('WP_DEBUG_DISPLAY', false);
if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
PHP
}

# One nginx for both origins: the shared development preamble
# (conf/dev/nginx.conf.in) around the two servers.
write_nginx_conf() {
    sh "$root/scripts/dev-nginx-conf.sh" --run "$env" \
        --module "$root/build/modules/ngx_http_vlm_module.so" --workers 2 --log-level info <<CONF
    client_max_body_size 32m;
    client_body_buffer_size 24m;

    vlm_daemon $env/vlmd.sock;
    vlm_model_revision wp-env-$(basename "$model");
    vlm_redis unix:$env/redis.sock timeout=100ms;
    vlm_api_keys $env/api-keys;
    vlm_jwt_key alg=HS256 file=$env/jwt-hs256.secret;
    vlm_jwt_issuer $wp_url;
    vlm_jwt_audience vlm;

    # For the client's retry test: nginx's own 429 under /limited/ (one request per 3 s).
    # Keyed by \$vlm_subject: CORS preflights carry no credentials, so they are never limited.
    limit_req_zone \$vlm_subject zone=wp_env_tight:1m rate=20r/m;
    limit_req_status 429;

    # The vlm API: its own origin; only the WordPress origin may call it from a browser.
    server {
        listen 127.0.0.1:$vlm_port;
        access_log $env/vlm-access.log;
        vlm_cors_origin $wp_url;
        location = /limited/v1/alt-text {
            limit_req zone=wp_env_tight nodelay;
            vlm_api alt_text;
        }
        include $root/conf/dev/api-locations.conf;
    }

    # WordPress through php-fpm.
    server {
        listen 127.0.0.1:$wp_port;
        access_log $env/wp-access.log;
        root $env/www;
        index index.php;
        location / { try_files \$uri \$uri/ /index.php?\$args; }
        location ~ \.php\$ {
            try_files \$uri =404;
            include /etc/nginx/fastcgi_params;
            # Debian's fastcgi_params pass HTTP_HOST as \$host, without the port this
            # site runs on; WordPress builds admin URLs from it.
            fastcgi_param HTTP_HOST \$host:\$server_port;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_pass unix:$env/php-fpm.sock;
            fastcgi_read_timeout 120s;
        }
    }
CONF
}

start() {
    [ -x "$vlmd" ] || die "$vlmd is missing: run 'make build' first"
    [ -f "$wp_src/wp-settings.php" ] || die "WordPress is missing at $wp_src (apt-get install wordpress)"
    for c in mariadbd mysql_install_db nginx redis-server php chromium chromedriver; do
        command -v "$c" >/dev/null || die "$c is missing: run 'make deps'"
    done
    if alive nginx; then die "already running (build/wp-env); '$0 stop' first"; fi
    stop_all

    bash "$root/scripts/build-module.sh" >/dev/null

    rm -rf "$env"
    mkdir -p "$env"
    wp_port=${WP_PORT:-$(free_port)}
    vlm_port=${VLM_PORT:-$(free_port)}
    wp_url=http://127.0.0.1:$wp_port
    vlm_url=http://127.0.0.1:$vlm_port

    # -L: Debian links some bundled libraries with relative symlinks that a copy would break.
    cp -aL "$wp_src" "$env/www"
    rm -f "$env/www/.htaccess"
    mkdir -p "$env/www/wp-content/uploads"
    ln -s "$root/editor_plugin/wordpress" "$env/www/wp-content/plugins/vlm"
    write_wp_config

    (umask 077
     openssl rand -hex 32 > "$env/jwt-hs256.secret"
     printf 'vlm-wp-env-%s\n' "$(openssl rand -hex 24)" > "$env/dev-api-key")
    printf '%s wp-env\n' "$(tr -d '\n' < "$env/dev-api-key" | sha256sum | cut -d' ' -f1)" \
        > "$env/api-keys"
    write_nginx_conf
    nginx -t -q -p "$env" -c "$env/nginx.conf" -e "$env/nginx-error.log" \
        || die "nginx rejected $env/nginx.conf"

    start_mariadb
    start_php_fpm

    redis-server "$root/conf/redis.conf" --port 0 --unixsocket "$env/redis.sock" \
        --unixsocketperm 700 --dir "$env" --daemonize no > "$env/redis.log" 2>&1 &
    echo $! > "$env/redis.pid"
    "$vlmd" --model "$model" --socket "$env/vlmd.sock" --prompts "$root/conf/prompts" \
        > "$env/vlmd.log" 2>&1 &
    echo $! > "$env/vlmd.pid"
    nginx -p "$env" -c "$env/nginx.conf" -e "$env/nginx-error.log" > "$env/nginx.out" 2>&1 &

    admin_password=$(openssl rand -hex 12)
    php "$root/tests/browser/wp-install.php" "$env/www" "$wp_url" "$vlm_url" admin "$admin_password" \
        "$env/jwt-hs256.secret" > "$env/wp-install.out" 2> "$env/wp-install.log" \
        || { cat "$env/wp-install.log" >&2; stop_all; die "WordPress install failed"; }
    app_password=$(sed -n 's/^app_password=//p' "$env/wp-install.out")
    [ -n "$app_password" ] || { stop_all; die "no application password (see $env/wp-install.out)"; }

    wait_for "vlm API" 300 curl -fsS "$vlm_url/readyz"
    wait_for WordPress 60 curl -fsS -o /dev/null "$wp_url/wp-login.php"

    cat > "$env/env.sh" <<ENV
# written by tests/browser/wp-env.sh start; source it
export WP_URL=$wp_url
export VLM_URL=$vlm_url
export WP_ADMIN_USER=admin
export WP_ADMIN_PASSWORD=$admin_password
export WP_APP_PASSWORD='$app_password'
export WP_PATH=$env/www
export WP_DEBUG_LOG=$env/wp-debug.log
export VLM_API_KEY_FILE=$env/dev-api-key
export VLM_JWT_SECRET_FILE=$env/jwt-hs256.secret
export NGINX_ACCESS_LOG=$env/vlm-access.log
export WP_ACCESS_LOG=$env/wp-access.log
ENV
    echo "wp-env: WordPress $wp_url (admin / $admin_password), vlm API $vlm_url; env in $env/env.sh"
}

case "${1:-}" in
start) start ;;
stop) stop_all; echo "wp-env: stopped" ;;
status)
    for name in nginx php-fpm vlmd redis mariadb; do
        if alive "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
    done ;;
*) die "usage: $0 start|stop|status" ;;
esac
