<?php
/**
 * REST: POST /wp-json/vlm/v1/token mints a 5-minute HS256 JWT for the signed-in editor, so the
 * browser can call the vlm service directly; also exposes the SEO plugins' description meta to
 * the block editor. No refresh tokens and no revocation: tokens simply expire.
 */

defined( 'ABSPATH' ) || exit;

const VLM_TOKEN_TTL = 300;

function vlm_base64url( string $bytes ): string {
	return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' );
}

/** HS256 JWT over the given claims (slashes unescaped: iss is compared as text by the service). */
function vlm_jwt_hs256( array $claims, string $secret ): string {
	$header  = vlm_base64url( wp_json_encode( array( 'alg' => 'HS256', 'typ' => 'JWT' ), JSON_UNESCAPED_SLASHES ) );
	$payload = vlm_base64url( wp_json_encode( $claims, JSON_UNESCAPED_SLASHES ) );
	$signing = $header . '.' . $payload;
	return $signing . '.' . vlm_base64url( hash_hmac( 'sha256', $signing, $secret, true ) );
}

function vlm_rest_token_permission() {
	if ( current_user_can( 'upload_files' ) ) {
		return true;
	}
	// 403 for everyone else, signed in or not (a missing nonce also lands here as user 0).
	return new WP_Error( 'vlm_forbidden', __( 'You need to be signed in as someone who can upload files to use vlm.', 'vlm' ), array( 'status' => 403 ) );
}

function vlm_rest_token( WP_REST_Request $request ) {
	$s = vlm_get_settings();
	if ( '' === $s['endpoint'] || '' === $s['jwt_secret'] ) {
		return new WP_Error( 'vlm_not_configured', __( 'vlm is not set up yet: an administrator must enter the service URL and secret under Settings → vlm.', 'vlm' ), array( 'status' => 503 ) );
	}
	$now    = time();
	$claims = array(
		'iss' => untrailingslashit( home_url() ),
		'aud' => 'vlm',
		'sub' => 'wp:' . get_current_user_id(),
		'iat' => $now,
		'exp' => $now + VLM_TOKEN_TTL,
	);
	$response = new WP_REST_Response(
		array(
			'token'      => vlm_jwt_hs256( $claims, $s['jwt_secret'] ),
			'expires_at' => $claims['exp'],
			'endpoint'   => $s['endpoint'],
		)
	);
	$response->header( 'Cache-Control', 'no-store, private' );
	return $response;
}

add_action(
	'rest_api_init',
	static function () {
		register_rest_route(
			'vlm/v1',
			'/token',
			array(
				'methods'             => 'POST',
				'callback'            => 'vlm_rest_token',
				'permission_callback' => 'vlm_rest_token_permission',
				'args'                => array(),
			)
		);
	}
);

/** Which SEO plugins are active, for the "SEO description" targets. */
function vlm_seo_plugins(): array {
	return array(
		'yoast'    => defined( 'WPSEO_VERSION' ),
		'rankmath' => defined( 'RANK_MATH_VERSION' ) || class_exists( 'RankMath' ),
	);
}

/**
 * Yoast and Rank Math keep the description in post meta that is not always in REST;
 * registering it lets the block editor save it with the post, for people who may edit the post.
 */
add_action(
	'init',
	static function () {
		$seo  = vlm_seo_plugins();
		$keys = array();
		if ( $seo['yoast'] ) {
			$keys[] = '_yoast_wpseo_metadesc';
		}
		if ( $seo['rankmath'] ) {
			$keys[] = 'rank_math_description';
		}
		if ( ! $keys ) {
			return;
		}
		foreach ( get_post_types( array( 'show_in_rest' => true ), 'names' ) as $type ) {
			foreach ( $keys as $key ) {
				if ( registered_meta_key_exists( 'post', $key, $type ) ) {
					continue;
				}
				register_post_meta(
					$type,
					$key,
					array(
						'type'              => 'string',
						'single'            => true,
						'show_in_rest'      => true,
						'sanitize_callback' => 'sanitize_textarea_field',
						'auth_callback'     => static function ( $allowed, $meta_key, $post_id ) {
							return current_user_can( 'edit_post', $post_id );
						},
					)
				);
			}
		}
	},
	20
);
