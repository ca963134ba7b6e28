<?php
/**
 * Runs when the plugin is deleted from Plugins: removes its one option (which holds the secret).
 * Alt text, excerpts and summaries written into posts and media stay: they belong to the site.
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

delete_option( 'vlm_settings' );
