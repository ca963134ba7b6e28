/*
 * vlm-common.js: shared by the block editor, classic editor and Media Library scripts.
 * Gets short-lived JWTs from /wp-json/vlm/v1/token (cached until ~30 s before expiry), builds one
 * VlmClient, turns any error into plain words, and decides whether existing alt text is "weak"
 * (the overwrite policy). It does not touch the DOM.
 */
(function () {
	'use strict';

	var data = window.vlmWpData || { i18n: {}, configured: false };
	var T = data.i18n || {};
	var cached = null; // { token, expiresAt (ms), endpoint }
	var inflight = null;
	var client = null;

	function fetchToken() {
		if (cached && Date.now() < cached.expiresAt - 30000) {
			return Promise.resolve(cached);
		}
		if (!inflight) {
			inflight = wp.apiFetch({ path: '/vlm/v1/token', method: 'POST' })
				.then(function (res) {
					cached = { token: res.token, expiresAt: res.expires_at * 1000, endpoint: res.endpoint };
					return cached;
				})
				.finally(function () { inflight = null; });
		}
		return inflight;
	}

	/** The client, created once; the token function refreshes itself. */
	function getClient() {
		if (!data.configured) {
			return Promise.reject({ code: 'vlm_not_configured', message: T.notConfigured });
		}
		if (client) {
			return Promise.resolve(client);
		}
		return fetchToken().then(function (tok) {
			if (!client) {
				client = window.VlmClient.create({
					endpoint: tok.endpoint || data.endpoint,
					token: function () { return fetchToken().then(function (t) { return t.token; }); },
					maxRetries: 2,
					lang: data.uiLang === 'zh' ? 'zh' : 'en'
				});
			}
			return client;
		});
	}

	/** Plain words for any failure: service errors, WordPress REST errors, network trouble. */
	function errorText(err) {
		var lang = data.uiLang === 'zh' ? 'zh' : 'en';
		if (!err) {
			return T.genericError;
		}
		if (err.name === 'AbortError') {
			return T.cancel;
		}
		if (window.VlmClient && err instanceof window.VlmClient.VlmError) {
			return window.VlmClient.errorMessage(err, lang) || err.message || T.genericError;
		}
		// wp.apiFetch rejects with the REST error body {code, message, data}.
		if (err.code === 'rest_cookie_invalid_nonce' || err.code === 'rest_not_logged_in') {
			return T.notSignedIn;
		}
		if (err.code && err.message) {
			return err.message;
		}
		if (window.VlmClient && window.VlmClient.errorMessage) {
			try {
				var m = window.VlmClient.errorMessage(err, lang);
				if (m) {
					return m;
				}
			} catch (e) { /* fall through */ }
		}
		return T.genericError;
	}

	function baseName(path) {
		if (!path) {
			return '';
		}
		var clean = String(path).split(/[?#]/)[0];
		var name = clean.substring(clean.lastIndexOf('/') + 1);
		try { name = decodeURIComponent(name); } catch (e) { /* keep raw */ }
		return name;
	}

	function squash(s) {
		return String(s || '').toLowerCase().replace(/\.[a-z0-9]{2,5}$/, '').replace(/-\d+x\d+$/, '')
			.replace(/-(scaled|rotated|e\d+)$/, '').replace(/[\s_\-.]+/g, '');
	}

	var GENERIC = /^(image|img|photo|picture|pic|graphic|screenshot|screen shot|untitled|logo|banner|thumbnail|icon|placeholder|alt|spacer|图片|图像|照片|截图|插图|配图)\s*\d*$/i;
	var CAMERA = /^(img|dsc|dscn|dscf|dcim|pxl|mvimg|gopr|wp|whatsapp image|screenshot|screen shot|image|photo|pic|p)[\s_\-]*\d[\d\s_\-.:at]*$/i;
	var FILE = /\.(jpe?g|png|gif|webp|avif|heic|heif|bmp|tiff?|svg)$/i;

	/** Weak alt: empty, a file name, a placeholder word, a camera counter, or just digits. */
	function isWeakAlt(alt, filename) {
		var a = String(alt || '').trim();
		if (!a) {
			return true;
		}
		if (FILE.test(a) || GENERIC.test(a) || CAMERA.test(a) || /^[\d\s_\-.]+$/.test(a)) {
			return true;
		}
		var f = squash(baseName(filename));
		return !!f && squash(a) === f;
	}

	/** Whether an automatic proposal may target this alt under the site's overwrite policy. */
	function mayReplace(alt, filename) {
		var policy = data.overwrite || 'weak';
		if (policy === 'always') {
			return true;
		}
		if (policy === 'never') {
			return String(alt || '').trim() === '';
		}
		return isWeakAlt(alt, filename);
	}

	/** Text of an HTML fragment without markup or block comments. */
	function htmlToText(html) {
		var doc = new DOMParser().parseFromString('<body>' + String(html || '').replace(/<!--[\s\S]*?-->/g, '\n') + '</body>', 'text/html');
		doc.querySelectorAll('script,style').forEach(function (n) { n.remove(); });
		doc.querySelectorAll('p,h1,h2,h3,h4,h5,h6,li,blockquote,figcaption,br,div').forEach(function (n) {
			n.insertAdjacentText('afterend', '\n');
		});
		return (doc.body.textContent || '').replace(/[ \t]+/g, ' ').replace(/\n\s*\n+/g, '\n\n').trim();
	}

	/** Only same-origin (or data:) images: the client fetches them itself, and CORS blocks others. */
	function usableImageUrl(url) {
		if (!url || /^blob:/.test(url)) {
			return false;
		}
		if (/^data:image\//.test(url)) {
			return true;
		}
		try {
			return new URL(url, window.location.href).origin === window.location.origin;
		} catch (e) {
			return false;
		}
	}

	function format(fmt) {
		var args = Array.prototype.slice.call(arguments, 1);
		if (wp.i18n && wp.i18n.sprintf) {
			return wp.i18n.sprintf.apply(null, [fmt].concat(args));
		}
		var i = 0;
		return String(fmt).replace(/%(\d+\$)?[sd]/g, function () { return String(args[i++]); });
	}

	window.vlmWp = {
		data: data,
		t: function (key) { return T[key] || key; },
		format: format,
		getClient: getClient,
		fetchToken: fetchToken,
		errorText: errorText,
		isWeakAlt: isWeakAlt,
		mayReplace: mayReplace,
		baseName: baseName,
		htmlToText: htmlToText,
		usableImageUrl: usableImageUrl,
		/*
		 * One line of alt text, without backslashes: WordPress strips them from
		 * the Media Library's alt (REST meta is unslashed) but keeps them in post
		 * HTML, so the two copies would differ. "\n"-style escapes become spaces.
		 */
		cleanAlt: function (text) {
			return String( text || '' )
				.replace( /\\[ntr]/g, ' ' )
				.replace( /\\/g, '' )
				.replace( /\s+/g, ' ' )
				.trim();
		},
		/*
		 * "auto" lets the service read the article's language; with too little
		 * text to read (a bare image, the Media Library) the site's language is
		 * used, so a Chinese site does not get English alt text.
		 */
		language: function (text) {
			var lang = data.language || 'auto';
			if ( lang !== 'auto' ) {
				return lang;
			}
			var letters = String( text || '' ).replace( /\s+/g, '' ).length;
			return letters >= 12 ? 'auto' : ( data.siteLanguage || 'auto' );
		}
	};
}());
