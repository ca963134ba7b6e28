<?php
/**
 * Plugin Name:       vlm — alt text and summaries
 * Description:       Proposes image alt text, article summaries and SEO descriptions with a self-hosted vlm service. Nothing is applied without your review.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.0
 * Author:            vlm
 * License:           GPL-2.0-or-later
 * Text Domain:       vlm
 * Domain Path:       /languages
 *
 * Main file: loads the pieces. The browser talks to the vlm service directly with a short-lived
 * JWT minted here (includes/rest.php); the secret never leaves the server. No background jobs,
 * no WP-CLI commands (the vlm-bulk CLI covers unattended bulk work).
 */

defined( 'ABSPATH' ) || exit;

define( 'VLM_PLUGIN_VERSION', '0.1.0' );
define( 'VLM_PLUGIN_FILE', __FILE__ );
define( 'VLM_PLUGIN_DIR', __DIR__ );

require_once __DIR__ . '/includes/settings.php';
require_once __DIR__ . '/includes/rest.php';
require_once __DIR__ . '/includes/assets.php';

add_action(
	'init',
	static function () {
		load_plugin_textdomain( 'vlm', false, dirname( plugin_basename( VLM_PLUGIN_FILE ) ) . '/languages' );
	}
);
