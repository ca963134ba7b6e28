<?php
/**
 * Settings → vlm: one option `vlm_settings` (array) and its admin page.
 * The JWT secret is write-only from the page: the form shows whether it is set, never its value.
 * No network checks of the endpoint here (the browser, not the server, must reach it).
 */

defined( 'ABSPATH' ) || exit;

const VLM_OPTION = 'vlm_settings';

/** Defaults that work: propose alt on insert, never touch alt a human wrote beyond weak placeholders. */
function vlm_default_settings(): array {
	return array(
		'endpoint'   => '',
		'jwt_secret' => '',
		'language'   => 'auto',
		'auto_alt'   => true,
		'overwrite'  => 'weak',
	);
}

/** The stored settings merged over the defaults, with types normalised. */
function vlm_get_settings(): array {
	$stored = get_option( VLM_OPTION, array() );
	$s      = array_merge( vlm_default_settings(), is_array( $stored ) ? $stored : array() );

	$s['endpoint']   = is_string( $s['endpoint'] ) ? untrailingslashit( $s['endpoint'] ) : '';
	$s['jwt_secret'] = is_string( $s['jwt_secret'] ) ? $s['jwt_secret'] : '';
	$s['language']   = in_array( $s['language'], array( 'auto', 'en', 'zh' ), true ) ? $s['language'] : 'auto';
	$s['auto_alt']   = filter_var( $s['auto_alt'], FILTER_VALIDATE_BOOLEAN );
	$s['overwrite']  = in_array( $s['overwrite'], array( 'never', 'weak', 'always' ), true ) ? $s['overwrite'] : 'weak';
	return $s;
}

/** A usable http(s) URL without trailing slash, or null. */
function vlm_clean_endpoint( $url ): ?string {
	if ( ! is_string( $url ) ) {
		return null;
	}
	$url   = trim( $url );
	$parts = wp_parse_url( $url );
	if ( ! $parts || empty( $parts['host'] ) || ! in_array( strtolower( $parts['scheme'] ?? '' ), array( 'http', 'https' ), true ) ) {
		return null;
	}
	$clean = esc_url_raw( $url, array( 'http', 'https' ) );
	return '' === $clean ? null : untrailingslashit( $clean );
}

/**
 * Sanitises the form (or a programmatic update_option) into the stored shape.
 * Runs twice on the very first save (add_option sanitises again), so it must be idempotent.
 */
function vlm_sanitize_settings( $input ): array {
	$old   = vlm_get_settings();
	$input = is_array( $input ) ? $input : array();
	$out   = $old;

	if ( array_key_exists( 'endpoint', $input ) ) {
		$raw = is_string( $input['endpoint'] ) ? trim( $input['endpoint'] ) : '';
		if ( '' === $raw ) {
			$out['endpoint'] = '';
		} else {
			$clean = vlm_clean_endpoint( $raw );
			if ( null === $clean ) {
				add_settings_error( VLM_OPTION, 'vlm_endpoint', __( 'The service URL must start with http:// or https://. The previous URL was kept.', 'vlm' ) );
			} else {
				$out['endpoint'] = $clean;
			}
		}
	}

	// The form sends jwt_secret_new (blank = keep) and jwt_secret_clear; code may pass jwt_secret itself.
	$new_secret = isset( $input['jwt_secret_new'] ) && is_string( $input['jwt_secret_new'] ) ? trim( $input['jwt_secret_new'] ) : '';
	if ( '' !== $new_secret ) {
		$out['jwt_secret'] = $new_secret;
	} elseif ( ! empty( $input['jwt_secret_clear'] ) ) {
		$out['jwt_secret'] = '';
	} elseif ( isset( $input['jwt_secret'] ) && is_string( $input['jwt_secret'] ) ) {
		$out['jwt_secret'] = rtrim( $input['jwt_secret'], "\r\n" );
	}
	if ( '' !== $new_secret && strlen( $new_secret ) < 32 ) {
		add_settings_error( VLM_OPTION, 'vlm_secret_short', __( 'The secret is shorter than 32 characters; the vlm service will refuse it.', 'vlm' ), 'warning' );
	}

	if ( isset( $input['language'] ) && in_array( $input['language'], array( 'auto', 'en', 'zh' ), true ) ) {
		$out['language'] = $input['language'];
	}
	if ( isset( $input['overwrite'] ) && in_array( $input['overwrite'], array( 'never', 'weak', 'always' ), true ) ) {
		$out['overwrite'] = $input['overwrite'];
	}
	// An unticked checkbox is absent from the form; the hidden marker tells the form apart from code.
	if ( array_key_exists( 'auto_alt', $input ) ) {
		$out['auto_alt'] = filter_var( $input['auto_alt'], FILTER_VALIDATE_BOOLEAN );
	} elseif ( ! empty( $input['_form'] ) ) {
		$out['auto_alt'] = false;
	}

	unset( $out['jwt_secret_new'], $out['jwt_secret_clear'], $out['_form'] );
	return $out;
}

add_action(
	'admin_init',
	static function () {
		register_setting(
			'vlm',
			VLM_OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => 'vlm_sanitize_settings',
				'default'           => vlm_default_settings(),
				'show_in_rest'      => false,
			)
		);
	}
);

add_action(
	'admin_menu',
	static function () {
		add_options_page( __( 'vlm settings', 'vlm' ), 'vlm', 'manage_options', 'vlm', 'vlm_render_settings_page' );
	}
);

add_filter(
	'plugin_action_links_' . plugin_basename( VLM_PLUGIN_FILE ),
	static function ( $links ) {
		$links[] = '<a href="' . esc_url( admin_url( 'options-general.php?page=vlm' ) ) . '">' . esc_html__( 'Settings', 'vlm' ) . '</a>';
		return $links;
	}
);

function vlm_render_settings_page(): void {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	$s    = vlm_get_settings();
	$name = VLM_OPTION;
	?>
	<div class="wrap vlm-settings">
		<h1><?php esc_html_e( 'vlm settings', 'vlm' ); ?></h1>
		<p><?php esc_html_e( 'Alt text, summaries and SEO descriptions come from your vlm service. Editors always review a proposal before it is applied.', 'vlm' ); ?></p>
		<form method="post" action="options.php">
			<?php settings_fields( 'vlm' ); ?>
			<input type="hidden" name="<?php echo esc_attr( $name ); ?>[_form]" value="1" />
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><label for="vlm-endpoint"><?php esc_html_e( 'Service URL', 'vlm' ); ?></label></th>
					<td>
						<input type="url" class="regular-text code" id="vlm-endpoint" name="<?php echo esc_attr( $name ); ?>[endpoint]" value="<?php echo esc_attr( $s['endpoint'] ); ?>" placeholder="https://vlm.example.com" />
						<p class="description"><?php esc_html_e( 'The address of the vlm service as your editors\' browsers reach it. The service must allow this site\'s address as a CORS origin.', 'vlm' ); ?></p>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="vlm-secret"><?php esc_html_e( 'JWT secret', 'vlm' ); ?></label></th>
					<td>
						<p>
							<?php if ( '' !== $s['jwt_secret'] ) : ?>
								<strong class="vlm-secret-state vlm-secret-set"><?php esc_html_e( 'A secret is set.', 'vlm' ); ?></strong>
							<?php else : ?>
								<strong class="vlm-secret-state vlm-secret-unset"><?php esc_html_e( 'No secret is set: editors cannot use vlm yet.', 'vlm' ); ?></strong>
							<?php endif; ?>
						</p>
						<input type="password" class="regular-text code" id="vlm-secret" name="<?php echo esc_attr( $name ); ?>[jwt_secret_new]" value="" autocomplete="new-password" />
						<p class="description"><?php esc_html_e( 'The HS256 secret configured in nginx (vlm_jwt_key). Leave blank to keep the current secret. It stays on this server and is never sent to browsers.', 'vlm' ); ?></p>
						<?php if ( '' !== $s['jwt_secret'] ) : ?>
							<label><input type="checkbox" name="<?php echo esc_attr( $name ); ?>[jwt_secret_clear]" value="1" /> <?php esc_html_e( 'Remove the secret', 'vlm' ); ?></label>
						<?php endif; ?>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="vlm-language"><?php esc_html_e( 'Language of generated text', 'vlm' ); ?></label></th>
					<td>
						<select id="vlm-language" name="<?php echo esc_attr( $name ); ?>[language]">
							<option value="auto" <?php selected( $s['language'], 'auto' ); ?>><?php esc_html_e( 'Automatic (follow the article)', 'vlm' ); ?></option>
							<option value="en" <?php selected( $s['language'], 'en' ); ?>><?php esc_html_e( 'English', 'vlm' ); ?></option>
							<option value="zh" <?php selected( $s['language'], 'zh' ); ?>><?php esc_html_e( 'Chinese', 'vlm' ); ?></option>
						</select>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Alt text on insert', 'vlm' ); ?></th>
					<td>
						<label><input type="checkbox" name="<?php echo esc_attr( $name ); ?>[auto_alt]" value="1" <?php checked( $s['auto_alt'] ); ?> /> <?php esc_html_e( 'Propose alt text when an image is inserted in the block editor (you still choose Apply or Dismiss)', 'vlm' ); ?></label>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Existing alt text', 'vlm' ); ?></th>
					<td>
						<fieldset>
							<label><input type="radio" name="<?php echo esc_attr( $name ); ?>[overwrite]" value="never" <?php checked( $s['overwrite'], 'never' ); ?> /> <?php esc_html_e( 'Never replace alt text a person wrote (only fill empty alt)', 'vlm' ); ?></label><br />
							<label><input type="radio" name="<?php echo esc_attr( $name ); ?>[overwrite]" value="weak" <?php checked( $s['overwrite'], 'weak' ); ?> /> <?php esc_html_e( 'Replace only weak alt text (empty, a file name, "image", "IMG_1234")', 'vlm' ); ?></label><br />
							<label><input type="radio" name="<?php echo esc_attr( $name ); ?>[overwrite]" value="always" <?php checked( $s['overwrite'], 'always' ); ?> /> <?php esc_html_e( 'Always propose new alt text', 'vlm' ); ?></label>
						</fieldset>
						<p class="description"><?php esc_html_e( 'Applies to proposals on insert and to the Media Library bulk action. The "Generate alt text" button always works.', 'vlm' ); ?></p>
					</td>
				</tr>
			</table>
			<?php submit_button(); ?>
		</form>
	</div>
	<?php
}
