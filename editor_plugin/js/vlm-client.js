/*
 * vlm-client.js: the browser client for the vlm service (alt text, summaries, SEO descriptions,
 * OpenAI-style chat with SSE streaming). A classic script with no dependencies and no build step:
 * it defines window.VlmClient (and module.exports when loaded as CommonJS). Images are decoded
 * and shrunk in the browser to the service's limits before upload, and sent as JSON data URLs,
 * so private and localhost sites work. Errors become VlmClient.VlmError with plain-language
 * messages in English or Chinese. Retries only 429/503, honouring Retry-After.
 * Not here: any UI, token minting (the caller passes a token or a function returning one),
 * multipart uploads, remote (cross-origin) image URLs the browser itself may not read.
 */
(function (root, factory) {
	'use strict';
	var api = factory();
	if (typeof module === 'object' && module && module.exports) {
		module.exports = api;
	}
	if (root) {
		root.VlmClient = api;
	}
}(typeof window !== 'undefined' ? window : (typeof self !== 'undefined' ? self : null), function () {
	'use strict';

	var DEFAULTS = {
		endpoint: '',
		token: '',
		maxPixels: 16777216,
		maxImageBytes: 10485760,
		// Image bytes per request, all images together, before base64 (which adds a third):
		// keeps a summary with several large images inside the service's 24 MB body limit.
		maxRequestImageBytes: 16777216,
		maxRetries: 3,
		lang: 'en'
	};
	var RETRY_AFTER_CAP_S = 30;
	// The service sniffs these four; anything else is re-encoded here.
	var SENDABLE = { 'image/jpeg': 1, 'image/png': 1, 'image/gif': 1, 'image/webp': 1 };

	/* ---------- messages ---------- */

	var MESSAGES = {
		en: {
			network: 'The service is unreachable. Check your connection and the service address.',
			bad_request: 'The service refused the request: {detail}',
			unauthorized: 'Not signed in, or the API key or token is wrong or has expired.',
			forbidden: 'You are not allowed to use this service.',
			not_found: 'Not found: check the service address and model name.',
			too_large: 'Image too large for the service (at most 10 MB and 16.7 megapixels per image).',
			too_large_text: 'The request is too large for the service (too much text or too many images).',
			unsupported: 'Unsupported image format. Use JPEG, PNG, WebP or GIF.',
			rate_limited: 'Rate limited: try again in {n} s.',
			rate_limited_now: 'Rate limited: try again in a moment.',
			unavailable: 'The service is down or busy. Try again in a moment.',
			timeout: 'The service took too long to answer. Try again.',
			server: 'The service failed (HTTP {status}). Try again later.',
			bad_response: 'The service sent an answer this page does not understand.',
			cut_off: 'The answer was cut off: the connection closed early.',
			image_unreadable: 'This file could not be read as an image.',
			image_fetch: 'The image could not be loaded from its address.',
			image_shrink: 'The image could not be made small enough to upload.',
			aborted: 'Cancelled.',
			unknown: 'Something went wrong: {detail}'
		},
		zh: {
			network: '无法连接到服务。请检查网络连接和服务地址。',
			bad_request: '服务拒绝了请求：{detail}',
			unauthorized: '未登录，或 API 密钥/令牌错误或已过期。',
			forbidden: '您没有使用此服务的权限。',
			not_found: '未找到：请检查服务地址和模型名称。',
			too_large: '图片太大（每张图片最多 10 MB、1670 万像素）。',
			too_large_text: '请求太大（文字过长或图片过多）。',
			unsupported: '不支持的图片格式。请使用 JPEG、PNG、WebP 或 GIF。',
			rate_limited: '请求过于频繁，请在 {n} 秒后重试。',
			rate_limited_now: '请求过于频繁，请稍后重试。',
			unavailable: '服务已停止或正忙，请稍后重试。',
			timeout: '服务响应超时，请重试。',
			server: '服务出错（HTTP {status}），请稍后重试。',
			bad_response: '服务返回了无法识别的结果。',
			cut_off: '回答被中断：连接提前关闭。',
			image_unreadable: '无法将此文件读取为图片。',
			image_fetch: '无法从该地址加载图片。',
			image_shrink: '无法将图片压缩到可上传的大小。',
			aborted: '已取消。',
			unknown: '出现错误：{detail}'
		}
	};

	function pickLang(lang) {
		return String(lang || '').toLowerCase().indexOf('zh') === 0 ? 'zh' : 'en';
	}

	function fill(template, vars) {
		return template.replace(/\{(\w+)\}/g, function (_, k) {
			return vars[k] === undefined || vars[k] === null ? '' : String(vars[k]);
		});
	}

	// Our own codes (no HTTP answer, or an answer we cannot use) name their message directly.
	var LOCAL_CODES = { network: 1, bad_response: 1, cut_off: 1, image_unreadable: 1,
		image_fetch: 1, image_shrink: 1 };

	function messageKey(status, code, detail, retryAfter) {
		if (LOCAL_CODES[code]) {
			return code;
		}
		switch (status) {
		case 0: return 'network';
		case 400: return 'bad_request';
		case 401: return 'unauthorized';
		case 403: return 'forbidden';
		case 404: return 'not_found';
		case 413:
			// nginx's own 413 (body over client_max_body_size) has no code: say "request".
			return /^image/.test(code || '') || /image|pixel/i.test(detail || '')
				? 'too_large' : 'too_large_text';
		case 415: return 'unsupported';
		case 429: return retryAfter > 0 ? 'rate_limited' : 'rate_limited_now';
		case 503: return 'unavailable';
		case 504: return 'timeout';
		default: return status >= 500 ? 'server' : 'bad_request';
		}
	}

	function localized(status, code, detail, retryAfter, lang) {
		var key = messageKey(status, code, detail, retryAfter);
		return fill(MESSAGES[pickLang(lang)][key], {
			detail: detail || ('HTTP ' + status),
			n: retryAfter,
			status: status
		});
	}

	/* ---------- errors ---------- */

	/**
	 * status: HTTP status (0 when no HTTP answer: network failure, unreadable image...),
	 * code: the server's error code or one of ours, message: plain words in the client's
	 * language, detail: the server's own message, retryAfter: seconds or null.
	 */
	class VlmError extends Error {
		constructor(status, code, message, detail, retryAfter) {
			super(message);
			this.name = 'VlmError';
			this.status = status;
			this.code = code || '';
			this.detail = detail || '';
			this.retryAfter = retryAfter === undefined ? null : retryAfter;
		}
	}

	function makeError(status, code, detail, retryAfter, lang) {
		return new VlmError(status, code, localized(status, code, detail, retryAfter, lang),
			detail, retryAfter);
	}

	function abortError() {
		if (typeof DOMException === 'function') {
			return new DOMException('The operation was aborted.', 'AbortError');
		}
		var e = new Error('The operation was aborted.');
		e.name = 'AbortError';
		return e;
	}

	function isAbort(err) {
		return !!err && err.name === 'AbortError';
	}

	function throwIfAborted(signal) {
		if (signal && signal.aborted) {
			throw abortError();
		}
	}

	/** Plain words for any error (VlmError, AbortError, fetch's TypeError, anything else). */
	function errorMessage(err, lang) {
		var table = MESSAGES[pickLang(lang)];
		if (!err) {
			return fill(table.unknown, { detail: '?' });
		}
		if (isAbort(err)) {
			return table.aborted;
		}
		if (err instanceof VlmError || err.name === 'VlmError') {
			return localized(err.status || 0, err.code, err.detail, err.retryAfter, lang);
		}
		if (err instanceof TypeError) {
			// fetch rejects with a TypeError when there is no HTTP answer at all.
			return table.network;
		}
		return fill(table.unknown, { detail: err.message || String(err) });
	}

	/* ---------- small helpers ---------- */

	function sleep(ms, signal) {
		return new Promise(function (resolve, reject) {
			if (signal && signal.aborted) {
				reject(abortError());
				return;
			}
			var timer = setTimeout(done, ms);
			function onAbort() {
				clearTimeout(timer);
				reject(abortError());
			}
			function done() {
				if (signal) {
					signal.removeEventListener('abort', onAbort);
				}
				resolve();
			}
			if (signal) {
				signal.addEventListener('abort', onAbort, { once: true });
			}
		});
	}

	// Retry-After is seconds or an HTTP date; null when absent or unreadable.
	function parseRetryAfter(value) {
		if (!value) {
			return null;
		}
		if (/^\s*\d+\s*$/.test(value)) {
			return parseInt(value, 10);
		}
		var when = Date.parse(value);
		if (isNaN(when)) {
			return null;
		}
		return Math.max(0, Math.ceil((when - Date.now()) / 1000));
	}

	function compact(obj) {
		var out = {};
		Object.keys(obj).forEach(function (k) {
			if (obj[k] !== undefined && obj[k] !== null && obj[k] !== '') {
				out[k] = obj[k];
			}
		});
		return out;
	}

	function sniffType(bytes) {
		var b = bytes;
		if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
			return 'image/jpeg';
		}
		if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
			return 'image/png';
		}
		if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) {
			return 'image/gif';
		}
		if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46
			&& b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) {
			return 'image/webp';
		}
		return '';
	}

	function readHead(blob) {
		return blob.slice(0, 16).arrayBuffer().then(function (buf) {
			return new Uint8Array(buf);
		});
	}

	function blobToDataUrl(blob, type) {
		var typed = type && blob.type !== type ? new Blob([blob], { type: type }) : blob;
		return new Promise(function (resolve, reject) {
			var reader = new FileReader();
			reader.onload = function () { resolve(reader.result); };
			reader.onerror = function () { reject(reader.error); };
			reader.readAsDataURL(typed);
		});
	}

	/* ---------- image preparation ---------- */

	// Decoded image with its oriented size, or null when the browser cannot decode it.
	function decode(blob) {
		if (typeof createImageBitmap === 'function') {
			return createImageBitmap(blob).then(function (bmp) {
				return { source: bmp, width: bmp.width, height: bmp.height,
					close: function () { if (bmp.close) { bmp.close(); } } };
			}, function () {
				return decodeWithImg(blob);
			});
		}
		return decodeWithImg(blob);
	}

	function decodeWithImg(blob) {
		if (typeof Image !== 'function' || typeof URL === 'undefined') {
			return Promise.resolve(null);
		}
		return new Promise(function (resolve) {
			var url = URL.createObjectURL(blob);
			var img = new Image();
			img.onload = function () {
				resolve({ source: img, width: img.naturalWidth, height: img.naturalHeight,
					close: function () { URL.revokeObjectURL(url); } });
			};
			img.onerror = function () {
				URL.revokeObjectURL(url);
				resolve(null);
			};
			img.src = url;
		});
	}

	function makeCanvas(w, h) {
		if (typeof OffscreenCanvas === 'function') {
			return new OffscreenCanvas(w, h);
		}
		var c = document.createElement('canvas');
		c.width = w;
		c.height = h;
		return c;
	}

	function encodeJpeg(canvas, quality) {
		if (canvas.convertToBlob) {
			return canvas.convertToBlob({ type: 'image/jpeg', quality: quality });
		}
		return new Promise(function (resolve) {
			canvas.toBlob(resolve, 'image/jpeg', quality);
		});
	}

	// Largest size with the same aspect whose pixel count is within maxPixels.
	function fitPixels(w, h, maxPixels) {
		if (w * h <= maxPixels) {
			return { w: w, h: h };
		}
		var scale = Math.sqrt(maxPixels / (w * h));
		var nw = Math.max(1, Math.floor(w * scale));
		var nh = Math.max(1, Math.floor(h * scale));
		while (nw * nh > maxPixels) {
			if (nw >= nh) { nw -= 1; } else { nh -= 1; }
		}
		return { w: nw, h: nh };
	}

	// Draws the image at w x h on white (JPEG has no alpha) and lowers the quality, then the
	// size, until the JPEG fits in maxBytes.
	function shrink(img, size, maxBytes, signal) {
		var qualities = [0.9, 0.82, 0.72, 0.6];
		var w = size.w;
		var h = size.h;
		var rounds = 0;

		function drawAt(dw, dh) {
			var canvas = makeCanvas(dw, dh);
			var ctx = canvas.getContext('2d');
			ctx.fillStyle = '#fff';
			ctx.fillRect(0, 0, dw, dh);
			ctx.imageSmoothingEnabled = true;
			ctx.imageSmoothingQuality = 'high';
			ctx.drawImage(img.source, 0, 0, dw, dh);
			return canvas;
		}

		function attempt(canvas, qi) {
			throwIfAborted(signal);
			return encodeJpeg(canvas, qualities[qi]).then(function (out) {
				throwIfAborted(signal);
				if (out && out.size <= maxBytes) {
					return { blob: out, width: w, height: h };
				}
				if (qi + 1 < qualities.length) {
					return attempt(canvas, qi + 1);
				}
				rounds += 1;
				if (!out || rounds > 8 || w < 16 || h < 16) {
					return null;
				}
				w = Math.max(1, Math.floor(w * 0.75));
				h = Math.max(1, Math.floor(h * 0.75));
				return attempt(drawAt(w, h), 0);
			});
		}
		return attempt(drawAt(w, h), 0);
	}

	/* ---------- the client ---------- */

	function create(options) {
		var opts = {};
		Object.keys(DEFAULTS).forEach(function (k) {
			opts[k] = options && options[k] !== undefined ? options[k] : DEFAULTS[k];
		});
		var base = String(opts.endpoint || '').replace(/\/+$/, '');
		var lang = pickLang(opts.lang);

		function err(status, code, detail, retryAfter) {
			return makeError(status, code, detail, retryAfter, lang);
		}

		function currentToken() {
			return Promise.resolve(typeof opts.token === 'function' ? opts.token() : opts.token);
		}

		// Turns a non-2xx response into a VlmError, reading the OpenAI-shaped error body.
		function errorFromResponse(res) {
			var retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
			return res.text().then(function (text) {
				var detail = '';
				var code = '';
				try {
					var body = JSON.parse(text);
					if (body && body.error) {
						detail = body.error.message || '';
						code = body.error.code === undefined || body.error.code === null
							? (body.error.type || '') : String(body.error.code);
					}
				} catch (e) {
					detail = '';
				}
				return err(res.status, code, detail || res.statusText || '', retryAfter);
			}, function () {
				return err(res.status, '', res.statusText || '', retryAfter);
			});
		}

		// POSTs JSON; retries 429/503 up to maxRetries times, waiting Retry-After (capped) or a
		// short backoff; resolves with the ok Response (the caller reads the body).
		function post(path, body, signal) {
			var attemptNo = 0;
			var payload = JSON.stringify(body);
			function once() {
				throwIfAborted(signal);
				return currentToken().then(function (token) {
					throwIfAborted(signal);
					var headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
					if (token) {
						headers.Authorization = 'Bearer ' + token;
					}
					return fetch(base + path, {
						method: 'POST',
						headers: headers,
						body: payload,
						signal: signal,
						credentials: 'omit',
						cache: 'no-store'
					}).catch(function (e) {
						if (isAbort(e)) {
							throw e;
						}
						throw err(0, 'network', e && e.message);
					});
				}).then(function (res) {
					if (res.ok) {
						return res;
					}
					return errorFromResponse(res).then(function (e) {
						var retryable = res.status === 429 || res.status === 503;
						if (!retryable || attemptNo >= opts.maxRetries) {
							throw e;
						}
						attemptNo += 1;
						var waitS = e.retryAfter !== null ? Math.min(e.retryAfter, RETRY_AFTER_CAP_S)
							: Math.min(Math.pow(2, attemptNo - 1), RETRY_AFTER_CAP_S);
						return sleep(waitS * 1000, signal).then(once);
					});
				});
			}
			return once();
		}

		function postJson(path, body, signal) {
			return post(path, body, signal).then(function (res) {
				return res.json().catch(function (e) {
					if (isAbort(e)) {
						throw e;
					}
					throw err(res.status, 'bad_response', 'invalid JSON');
				});
			});
		}

		function toBlob(input, signal) {
			if (typeof Blob !== 'undefined' && input instanceof Blob) {
				return Promise.resolve(input);
			}
			if (typeof input !== 'string' || !input) {
				return Promise.reject(err(0, 'image_unreadable', 'not a Blob or URL'));
			}
			var url = input;
			if (!/^(data:|blob:)/i.test(url) && typeof location !== 'undefined') {
				url = new URL(url, location.href).href;
			}
			if (!/^(data:|blob:|https?:)/i.test(url)) {
				return Promise.reject(err(0, 'image_fetch', 'unsupported URL scheme'));
			}
			return fetch(url, { signal: signal, credentials: 'same-origin' }).then(function (res) {
				if (!res.ok) {
					throw err(0, 'image_fetch', 'HTTP ' + res.status + ' for ' + input);
				}
				return res.blob();
			}, function (e) {
				if (isAbort(e)) {
					throw e;
				}
				throw err(0, 'image_fetch', (e && e.message) || String(e));
			});
		}

		function prepareImage(input, params) {
			var signal = params && params.signal;
			var maxBytes = Math.min(opts.maxImageBytes, (params && params.maxBytes) || Infinity);
			var blob;
			var type;
			return Promise.resolve().then(function () {
				throwIfAborted(signal);
				return toBlob(input, signal);
			}).then(function (b) {
				blob = b;
				return readHead(blob);
			}).then(function (head) {
				throwIfAborted(signal);
				type = sniffType(head) || blob.type || '';
				return decode(blob);
			}).then(function (img) {
				throwIfAborted(signal);
				if (!img) {
					// Undecodable here but a type the service reads: let the service judge it.
					if (SENDABLE[type] && blob.size <= maxBytes) {
						return blobToDataUrl(blob, type).then(function (url) {
							return { dataUrl: url, width: 0, height: 0, bytes: blob.size, shrunk: false };
						});
					}
					throw err(0, 'image_unreadable', 'the browser cannot decode this image');
				}
				var fits = img.width * img.height <= opts.maxPixels && blob.size <= maxBytes;
				if (fits && SENDABLE[type]) {
					img.close();
					// Already within both limits: send the original bytes, never a lossy copy.
					return blobToDataUrl(blob, type).then(function (url) {
						return { dataUrl: url, width: img.width, height: img.height,
							bytes: blob.size, shrunk: false };
					});
				}
				var size = fitPixels(img.width, img.height, opts.maxPixels);
				return shrink(img, size, maxBytes, signal).then(function (out) {
					img.close();
					if (!out) {
						throw err(0, 'image_shrink', 'could not encode under ' + maxBytes + ' bytes');
					}
					return blobToDataUrl(out.blob, 'image/jpeg').then(function (url) {
						return { dataUrl: url, width: out.width, height: out.height,
							bytes: out.blob.size, shrunk: out.width !== img.width || out.height !== img.height
								|| blob.size > maxBytes };
					});
				}, function (e) {
					img.close();
					throw e;
				});
			});
		}

		function altText(p) {
			p = p || {};
			return prepareImage(p.image, { signal: p.signal }).then(function (img) {
				return postJson('/v1/alt-text', compact({
					image: img.dataUrl,
					language: p.language,
					title: p.title,
					context: p.context,
					max_length: p.maxLength
				}), p.signal);
			}).then(function (obj) {
				if (!obj || typeof obj.alt_text !== 'string') {
					throw err(200, 'bad_response', 'no alt_text in the answer');
				}
				return obj;
			});
		}

		function summary(p) {
			p = p || {};
			var inputs = p.images || [];
			var urls = [];
			// The images share one request: each gets an equal part of the byte budget.
			var share = Math.floor(opts.maxRequestImageBytes / Math.max(1, inputs.length));
			// One image at a time: each decoded image can take tens of MB.
			var chain = Promise.resolve();
			inputs.forEach(function (im) {
				chain = chain.then(function () {
					return prepareImage(im, { signal: p.signal, maxBytes: share });
				}).then(function (out) {
					urls.push(out.dataUrl);
				});
			});
			return chain.then(function () {
				return postJson('/v1/summary', compact({
					title: p.title,
					text: p.text,
					images: urls.length ? urls : undefined,
					kind: p.kind || 'summary',
					language: p.language,
					max_length: p.maxLength
				}), p.signal);
			}).then(function (obj) {
				if (!obj || typeof obj.summary !== 'string') {
					throw err(200, 'bad_response', 'no summary in the answer');
				}
				return obj;
			});
		}

		// Image parts given as Blobs (or non-data URLs) are prepared like altText's image.
		function prepareMessages(messages, signal) {
			var out = [];
			var chain = Promise.resolve();
			(messages || []).forEach(function (m) {
				if (!m || !Array.isArray(m.content)) {
					out.push(m);
					return;
				}
				var parts = [];
				var copy = Object.assign({}, m, { content: parts });
				out.push(copy);
				m.content.forEach(function (part) {
					var url = part && part.type === 'image_url' && part.image_url
						? (typeof part.image_url === 'string' ? part.image_url : part.image_url.url) : null;
					var needs = url && (typeof url !== 'string' || !/^data:/i.test(url));
					if (!needs) {
						parts.push(part);
						return;
					}
					var slot = parts.length;
					parts.push(null);
					chain = chain.then(function () {
						return prepareImage(url, { signal: signal });
					}).then(function (img) {
						var iu = typeof part.image_url === 'object' ? Object.assign({}, part.image_url) : {};
						iu.url = img.dataUrl;
						parts[slot] = Object.assign({}, part, { image_url: iu });
					});
				});
			});
			return chain.then(function () { return out; });
		}

		function readStream(res, onDelta, signal) {
			if (!res.body || !res.body.getReader) {
				return Promise.reject(err(res.status, 'bad_response', 'no readable stream'));
			}
			var reader = res.body.getReader();
			var decoder = new TextDecoder('utf-8');
			var buffer = '';
			var text = '';
			var finishReason = null;
			var usage = null;
			var done = false;

			function onAbort() {
				reader.cancel().catch(function () {});
			}
			if (signal) {
				signal.addEventListener('abort', onAbort, { once: true });
			}

			// One SSE event: its data lines joined; returns a VlmError to stop with, or null.
			function handleEvent(block) {
				var data = block.split(/\r?\n/).filter(function (l) {
					return l.indexOf('data:') === 0;
				}).map(function (l) {
					return l.slice(5).replace(/^ /, '');
				}).join('\n');
				if (!data) {
					return null;
				}
				if (data === '[DONE]') {
					done = true;
					return null;
				}
				var obj;
				try {
					obj = JSON.parse(data);
				} catch (e) {
					return err(res.status, 'bad_response', 'invalid JSON in the stream');
				}
				if (obj.error) {
					var status = typeof obj.error.code === 'number' ? obj.error.code : 500;
					return err(status, String(obj.error.code || obj.error.type || ''), obj.error.message || '', null);
				}
				if (obj.usage) {
					usage = obj.usage;
				}
				var choice = obj.choices && obj.choices[0];
				if (choice) {
					var piece = choice.delta && choice.delta.content;
					if (piece) {
						text += piece;
						if (onDelta) {
							onDelta(piece, text);
						}
					}
					if (choice.finish_reason) {
						finishReason = choice.finish_reason;
					}
				}
				return null;
			}

			function pump() {
				return reader.read().then(function (step) {
					if (signal && signal.aborted) {
						throw abortError();
					}
					if (step.done) {
						buffer += decoder.decode();
					} else {
						buffer += decoder.decode(step.value, { stream: true });
					}
					var parts = buffer.split(/\r?\n\r?\n/);
					buffer = step.done ? '' : parts.pop();
					for (var i = 0; i < parts.length && !done; i++) {
						var e = handleEvent(parts[i]);
						if (e) {
							reader.cancel().catch(function () {});
							throw e;
						}
					}
					if (done) {
						reader.cancel().catch(function () {});
						return { text: text, finishReason: finishReason, usage: usage };
					}
					if (step.done) {
						throw err(0, 'cut_off', 'the stream ended without [DONE]');
					}
					return pump();
				});
			}
			return pump().then(function (r) {
				if (signal) { signal.removeEventListener('abort', onAbort); }
				return r;
			}, function (e) {
				if (signal) { signal.removeEventListener('abort', onAbort); }
				if (signal && signal.aborted && !isAbort(e)) {
					throw abortError();
				}
				// A broken connection mid-body shows up as a TypeError from read().
				if (e instanceof TypeError) {
					throw err(0, 'cut_off', e.message);
				}
				throw e;
			});
		}

		function chat(p) {
			p = p || {};
			return prepareMessages(p.messages, p.signal).then(function (messages) {
				var body = compact({
					messages: messages,
					max_tokens: p.maxTokens,
					temperature: p.temperature
				});
				if (p.stream) {
					body.stream = true;
					body.stream_options = { include_usage: true };
				}
				return post('/v1/chat/completions', body, p.signal);
			}).then(function (res) {
				if (p.stream) {
					return readStream(res, p.onDelta, p.signal);
				}
				return res.json().then(function (obj) {
					var choice = obj && obj.choices && obj.choices[0];
					if (!choice || !choice.message) {
						throw err(res.status, 'bad_response', 'no choices in the answer');
					}
					var content = choice.message.content;
					return {
						text: typeof content === 'string' ? content : '',
						finishReason: choice.finish_reason || null,
						usage: obj.usage || null
					};
				});
			});
		}

		return {
			altText: altText,
			summary: summary,
			chat: chat,
			prepareImage: prepareImage
		};
	}

	return {
		create: create,
		VlmError: VlmError,
		errorMessage: errorMessage
	};
}));
