<?php
/*
 * Installs a fresh WordPress site for the tests (run by wp-env.sh with PHP's CLI, since Debian has
 * no wp-cli): the admin user, pretty permalinks, the block editor's welcome guide off, the vlm
 * plugin activated and pointed at the test vlm API, and an application password for REST
 * clients (vlm-bulk), printed as "app_password=...". It does not create content; tests do.
 *
 * usage: php wp-install.php <wp dir> <site url> <vlm url> <admin user> <admin password> <jwt secret file>
 */

if ($argc !== 7) {
    fwrite(STDERR, "usage: php wp-install.php <wp dir> <site url> <vlm url> <user> <password> <secret file>\n");
    exit(2);
}
[, $wp_dir, $site_url, $vlm_url, $admin_user, $admin_password, $secret_file] = $argv;

// WordPress reads these even from the CLI.
$_SERVER['HTTP_HOST'] = parse_url($site_url, PHP_URL_HOST) . ':' . parse_url($site_url, PHP_URL_PORT);
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';

define('WP_INSTALLING', true);
require $wp_dir . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

$result = wp_install('vlm test blog', $admin_user, 'admin@example.test', false, '',
                     wp_slash($admin_password), 'en_US');
if (is_wp_error($result) || empty($result['user_id'])) {
    fwrite(STDERR, "wp_install failed\n");
    exit(1);
}
$user_id = (int) $result['user_id'];
wp_set_current_user($user_id);

update_option('permalink_structure', '/%postname%/');

// The block editor's preferences live in this user meta since 6.1; the guide would cover the page.
global $wpdb;
update_user_meta($user_id, $wpdb->get_blog_prefix() . 'persisted_preferences', [
    'core/edit-post' => ['welcomeGuide' => false],
    '_modified' => gmdate('c'),
]);

if (file_exists(WP_PLUGIN_DIR . '/vlm/vlm.php')) {
    $activated = activate_plugin('vlm/vlm.php');
    if (is_wp_error($activated)) {
        fwrite(STDERR, 'activating vlm failed: ' . $activated->get_error_message() . "\n");
        exit(1);
    }
}
update_option('vlm_settings', [
    'endpoint'   => $vlm_url,
    'jwt_secret' => trim(file_get_contents($secret_file)),
    'language'   => 'auto',
    'auto_alt'   => true,
    'overwrite'  => 'weak',
]);

$created = WP_Application_Passwords::create_new_application_password($user_id, ['name' => 'vlm tests']);
if (is_wp_error($created)) {
    fwrite(STDERR, 'application password: ' . $created->get_error_message() . "\n");
    exit(1);
}
echo 'app_password=' . $created[0] . "\n";
