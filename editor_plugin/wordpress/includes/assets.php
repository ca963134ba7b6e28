<?php
/**
 * Scripts for the block editor, the classic editor (TinyMCE buttons), the Media Library bulk
 * action and the alt field of the media modal and attachment screen, plus the translated UI strings they need. All JavaScript is plain files, no build step.
 * Loaded only for users who may upload files; the token route enforces that again.
 */

defined( 'ABSPATH' ) || exit;

function vlm_asset_url( string $rel ): string {
	return plugins_url( $rel, VLM_PLUGIN_FILE );
}

/** File modification time as the version, so browsers pick up edits. */
function vlm_asset_ver( string $rel ): string {
	$path  = VLM_PLUGIN_DIR . '/' . $rel;
	$mtime = is_file( $path ) ? filemtime( $path ) : false;
	return $mtime ? VLM_PLUGIN_VERSION . '.' . $mtime : VLM_PLUGIN_VERSION;
}

function vlm_user_may_use(): bool {
	return current_user_can( 'upload_files' );
}

/** UI language for the client's error messages: Chinese for any zh_* locale. */
function vlm_ui_lang(): string {
	return 0 === strpos( determine_locale(), 'zh' ) ? 'zh' : 'en';
}

/** Every string the scripts show, translated here so one .po/.mo covers PHP and JS. */
function vlm_js_strings(): array {
	return array(
		'notConfigured'     => __( 'vlm is not set up yet: an administrator must enter the service URL and secret under Settings → vlm.', 'vlm' ),
		'genericError'      => __( 'Something went wrong while talking to the vlm service.', 'vlm' ),
		'notSignedIn'       => __( 'You are not signed in any more. Reload the page and sign in again.', 'vlm' ),
		'cancel'            => __( 'Cancel', 'vlm' ),
		'apply'             => __( 'Apply', 'vlm' ),
		'dismiss'           => __( 'Dismiss', 'vlm' ),
		'retry'             => __( 'Try again', 'vlm' ),
		// Image block.
		'altPanelTitle'     => __( 'Alt text (vlm)', 'vlm' ),
		'generateAlt'       => __( 'Generate alt text', 'vlm' ),
		'generatingAlt'     => __( 'Writing alt text…', 'vlm' ),
		'altProposal'       => __( 'Proposed alt text (you can edit it before applying)', 'vlm' ),
		'altAutoProposal'   => __( 'Proposed for the image you inserted.', 'vlm' ),
		'altApplied'        => __( 'Alt text applied.', 'vlm' ),
		'altNeedsImage'     => __( 'Choose an image first.', 'vlm' ),
		'altNoticeReady'    => __( 'vlm proposed alt text for the image you inserted. Select the image to review it.', 'vlm' ),
		'altCurrent'        => __( 'Current alt text:', 'vlm' ),
		'altNone'           => __( '(none)', 'vlm' ),
		'alsoMedia'         => __( 'Also save it in the Media Library', 'vlm' ),
		// Summary panel.
		'summaryPanelTitle' => __( 'Smart summary', 'vlm' ),
		'generateSummary'   => __( 'Generate summary', 'vlm' ),
		'generateSeo'       => __( 'Generate SEO description', 'vlm' ),
		'generatingSummary' => __( 'Reading the article…', 'vlm' ),
		'summaryPreview'    => __( 'Summary (you can edit it before inserting)', 'vlm' ),
		'seoPreview'        => __( 'SEO description (you can edit it before saving)', 'vlm' ),
		'insertExcerpt'     => __( 'Use as excerpt', 'vlm' ),
		'insertTop'         => __( 'Insert at the top', 'vlm' ),
		'saveYoast'         => __( 'Save as Yoast meta description', 'vlm' ),
		'saveRankMath'      => __( 'Save as Rank Math description', 'vlm' ),
		'emptyArticle'      => __( 'Write some text first: the article is empty.', 'vlm' ),
		'insertedExcerpt'   => __( 'Saved in the excerpt. Update the post to keep it.', 'vlm' ),
		'insertedTop'       => __( 'Summary inserted at the top of the article.', 'vlm' ),
		'insertedMeta'      => __( 'Description set. Update the post to keep it.', 'vlm' ),
		'summaryPanelHelp'  => __( 'Reads the title, text and up to three images of this article.', 'vlm' ),
		// Classic editor.
		'classicAltButton'  => __( 'Alt text for the selected image (vlm)', 'vlm' ),
		'classicSumButton'  => __( 'Smart summary (vlm)', 'vlm' ),
		'classicSelectImg'  => __( 'Select an image in the editor first.', 'vlm' ),
		'classicAltTitle'   => __( 'Review the proposed alt text', 'vlm' ),
		'classicSumTitle'   => __( 'Review the summary', 'vlm' ),
		// Media Library bulk.
		'bulkTitle'         => __( 'Generating alt text', 'vlm' ),
		'bulkNoneSelected'  => __( 'Select the images first.', 'vlm' ),
		/* translators: 1: images done so far, 2: images selected */
		'bulkProgress'      => __( '%1$d of %2$d images', 'vlm' ),
		/* translators: 1: updated, 2: skipped, 3: failed */
		'bulkDone'          => __( '%1$d updated, %2$d skipped, %3$d failed', 'vlm' ),
		/* translators: 1: image title, 2: the reason in plain words */
		'bulkFailedItem'    => __( '%1$s: %2$s', 'vlm' ),
		'bulkStopped'       => __( 'Stopped: the vlm service is not answering. Nothing else was changed; try again later.', 'vlm' ),
		'bulkCancelled'     => __( 'Cancelled. Images already done keep their new alt text.', 'vlm' ),
		'bulkReload'        => __( 'Reload the list', 'vlm' ),
	);
}

/** The shared client, the token helper and their configuration. */
function vlm_register_common(): void {
	if ( wp_script_is( 'vlm-common', 'registered' ) ) {
		return;
	}
	wp_register_script( 'vlm-client', vlm_asset_url( 'assets/js/vlm-client.js' ), array(), vlm_asset_ver( 'assets/js/vlm-client.js' ), true );
	wp_register_script( 'vlm-common', vlm_asset_url( 'assets/js/vlm-common.js' ), array( 'vlm-client', 'wp-api-fetch', 'wp-i18n' ), vlm_asset_ver( 'assets/js/vlm-common.js' ), true );
	wp_register_style( 'vlm-admin', vlm_asset_url( 'assets/css/vlm-admin.css' ), array(), vlm_asset_ver( 'assets/css/vlm-admin.css' ) );

	$s    = vlm_get_settings();
	$data = array(
		'configured' => '' !== $s['endpoint'] && '' !== $s['jwt_secret'],
		'endpoint'   => $s['endpoint'],
		'language'   => $s['language'],
		// For "auto" when there is no article text to read: the site's own language.
		'siteLanguage' => 0 === strpos( get_locale(), 'zh' ) ? 'zh' : 'en',
		'autoAlt'    => (bool) $s['auto_alt'],
		'overwrite'  => $s['overwrite'],
		'uiLang'     => vlm_ui_lang(),
		'seo'        => vlm_seo_plugins(),
		'i18n'       => vlm_js_strings(),
	);
	// The secret is deliberately absent: the browser gets short-lived tokens from /vlm/v1/token.
	wp_add_inline_script( 'vlm-common', 'window.vlmWpData = ' . wp_json_encode( $data, JSON_HEX_TAG | JSON_HEX_AMP | JSON_UNESCAPED_UNICODE ) . ';', 'before' );
}

add_action(
	'enqueue_block_editor_assets',
	static function () {
		if ( ! vlm_user_may_use() ) {
			return;
		}
		vlm_register_common();
		wp_enqueue_script(
			'vlm-block-editor',
			vlm_asset_url( 'assets/js/vlm-block-editor.js' ),
			array( 'vlm-common', 'wp-plugins', 'wp-edit-post', 'wp-element', 'wp-components', 'wp-data', 'wp-block-editor', 'wp-blocks', 'wp-hooks', 'wp-compose', 'wp-i18n', 'wp-notices' ),
			vlm_asset_ver( 'assets/js/vlm-block-editor.js' ),
			true
		);
		wp_enqueue_style( 'vlm-admin' );
	}
);

add_action(
	'admin_enqueue_scripts',
	static function ( $hook ) {
		if ( ! vlm_user_may_use() ) {
			return;
		}
		if ( 'upload.php' === $hook ) {
			vlm_register_common();
			wp_enqueue_script( 'vlm-media-bulk', vlm_asset_url( 'assets/js/vlm-media-bulk.js' ), array( 'vlm-common' ), vlm_asset_ver( 'assets/js/vlm-media-bulk.js' ), true );
			wp_enqueue_style( 'vlm-admin' );
		} elseif ( 'post.php' === $hook || 'post-new.php' === $hook ) {
			// The classic editor's TinyMCE plugin needs the client and token helper on the page.
			vlm_register_common();
			wp_enqueue_script( 'vlm-common' );
			wp_enqueue_style( 'vlm-admin' );
			$screen = get_current_screen();
			if ( $screen && 'attachment' === $screen->post_type ) {
				vlm_enqueue_media_modal( false );
			}
		}
	}
);

/**
 * "Generate alt text" beside the alt field of the media modal (wherever WordPress loads it) and of
 * the attachment edit screen. In the modal the script patches media-views, so it must load after.
 */
function vlm_enqueue_media_modal( bool $with_media_views = true ): void {
	if ( ! vlm_user_may_use() || wp_script_is( 'vlm-media-modal', 'enqueued' ) ) {
		return;
	}
	vlm_register_common();
	$deps = array( 'vlm-common', 'jquery' );
	if ( $with_media_views ) {
		$deps[] = 'media-views';
	}
	wp_enqueue_script( 'vlm-media-modal', vlm_asset_url( 'assets/js/vlm-media-modal.js' ), $deps, vlm_asset_ver( 'assets/js/vlm-media-modal.js' ), true );
	wp_enqueue_style( 'vlm-admin' );
}
add_action( 'wp_enqueue_media', 'vlm_enqueue_media_modal', 10, 0 );

/* Media Library (list mode) bulk action; the work happens in the browser (vlm-media-bulk.js). */
add_filter(
	'bulk_actions-upload',
	static function ( $actions ) {
		if ( vlm_user_may_use() ) {
			$actions['vlm_generate_alt'] = __( 'Generate alt text', 'vlm' );
		}
		return $actions;
	}
);

/* Without JavaScript the action cannot run; say so instead of silently doing nothing. */
add_filter(
	'handle_bulk_actions-upload',
	static function ( $redirect, $action ) {
		if ( 'vlm_generate_alt' === $action ) {
			$redirect = add_query_arg( 'vlm_needs_js', '1', $redirect );
		}
		return $redirect;
	},
	10,
	2
);

add_action(
	'admin_notices',
	static function () {
		global $pagenow;
		if ( 'upload.php' === $pagenow && isset( $_GET['vlm_needs_js'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification -- display only
			echo '<div class="notice notice-warning"><p>' . esc_html__( 'Generating alt text runs in your browser: please enable JavaScript and try again.', 'vlm' ) . '</p></div>';
		}
	}
);

/* Classic editor: a TinyMCE plugin with two buttons. */
add_filter(
	'mce_external_plugins',
	static function ( $plugins ) {
		if ( vlm_user_may_use() ) {
			$plugins['vlm'] = add_query_arg( 'ver', vlm_asset_ver( 'assets/js/vlm-tinymce.js' ), vlm_asset_url( 'assets/js/vlm-tinymce.js' ) );
		}
		return $plugins;
	}
);

add_filter(
	'mce_buttons',
	static function ( $buttons ) {
		if ( vlm_user_may_use() ) {
			$buttons[] = 'vlm_alt';
			$buttons[] = 'vlm_summary';
		}
		return $buttons;
	}
);
