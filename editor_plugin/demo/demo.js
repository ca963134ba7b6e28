/*
 * demo.js: behaviour of the demo editor (index.html) on top of window.VlmClient: images with
 * thumbnails and per-image alt-text proposals (Apply/Dismiss), summary and SEO description
 * proposals (Insert/Dismiss), a streamed "Try the API" chat with Stop, English/Chinese UI, and
 * the API key from the field or from #key=... (kept in sessionStorage, fragment cleared).
 * Not here: persistence of the article (a demo) and any network code (vlm-client.js has it),
 * except two bare GETs for the status badges (/readyz, /v1/models).
 */
(function () {
	'use strict';

	var KEY_STORAGE = 'vlm-demo-api-key';
	var LANG_STORAGE = 'vlm-demo-lang';
	var ALT_MAX_LENGTH = 125;
	var SUMMARY_MAX_LENGTH = 400;
	var SEO_MAX_LENGTH = 160;
	// The article text sent as context for alt text: enough to set the topic, small to send.
	var CONTEXT_CHARS = 1500;
	var MAX_IMAGES = 8; // the service's per-request limit for summaries

	var T = {
		en: {
			appTitle: 'vlm demo editor',
			apiKey: 'API key',
			apiKeyPlaceholder: 'paste your API key',
			show: 'Show',
			hide: 'Hide',
			editorHeading: 'Article',
			titleLabel: 'Title',
			titlePlaceholder: 'A title for your article',
			textLabel: 'Text',
			textPlaceholder: 'Write or paste the article here.',
			imagesLabel: 'Images',
			dropHint: 'Drop images here, or',
			chooseFiles: 'choose files…',
			resultLanguage: 'Result language',
			langAuto: 'Same as the article',
			metaHeading: 'Summary and SEO',
			summaryButton: 'Summary',
			seoButton: 'SEO description',
			insert: 'Insert',
			replace: 'Replace',
			dismiss: 'Dismiss',
			apply: 'Apply',
			remove: 'Remove',
			summaryLabel: 'Summary (excerpt)',
			seoLabel: 'SEO description',
			playHeading: 'Try the API',
			playIntro: 'Ask a question about an image. The answer streams from /v1/chat/completions.',
			chooseImage: 'Choose an image…',
			questionLabel: 'Question',
			defaultQuestion: 'What is in this picture?',
			ask: 'Ask',
			stop: 'Stop',
			footer: 'Proposals are never applied without your click. Images are shrunk in your browser to the service\'s limits before upload.',
			altBadge: 'alt',
			altButton: 'Generate alt text',
			altAgain: 'Generate again',
			generating: 'Generating…',
			preparing: 'Preparing image…',
			preparingImages: 'Preparing {n} image(s)…',
			waiting: 'Waiting for the service…',
			proposedAlt: 'Proposed alt text',
			proposedSummary: 'Proposed summary',
			proposedSeo: 'Proposed SEO description',
			cachedNote: '(from cache)',
			charCount: '{n} characters',
			seoCount: '{n} / ~160 characters',
			imageInfo: '{w} × {h}, {size}',
			imageShrunk: '{w} × {h}, {size}: will be sent shrunk to {sw} × {sh}, {ssize}',
			imageNotImage: '{name} is not an image, skipped.',
			tooManyImages: 'At most {n} images per article; the rest were skipped.',
			nothingToSummarize: 'Write some text (or add an image) first.',
			serviceReady: 'Service ready',
			serviceNotReady: 'Service not ready',
			serviceUnreachable: 'Service unreachable',
			keyNone: 'No key',
			keyOk: 'Key accepted',
			keyBad: 'Key rejected',
			keyNeeded: 'Enter an API key first (or open the link printed by make run).',
			pickImageFirst: 'Choose an image first.',
			streaming: 'Answering…',
			streamDone: '{n} pieces in {s} s ({reason})',
			stopped: 'Stopped. The partial answer is kept.',
			finish_stop: 'complete',
			finish_length: 'token limit reached'
		},
		zh: {
			appTitle: 'vlm 演示编辑器',
			apiKey: 'API 密钥',
			apiKeyPlaceholder: '粘贴您的 API 密钥',
			show: '显示',
			hide: '隐藏',
			editorHeading: '文章',
			titleLabel: '标题',
			titlePlaceholder: '文章标题',
			textLabel: '正文',
			textPlaceholder: '在此撰写或粘贴文章。',
			imagesLabel: '图片',
			dropHint: '将图片拖到这里，或',
			chooseFiles: '选择文件…',
			resultLanguage: '结果语言',
			langAuto: '与文章相同',
			metaHeading: '摘要与 SEO',
			summaryButton: '生成摘要',
			seoButton: 'SEO 描述',
			insert: '插入',
			replace: '替换',
			dismiss: '忽略',
			apply: '应用',
			remove: '移除',
			summaryLabel: '摘要',
			seoLabel: 'SEO 描述',
			playHeading: '试用 API',
			playIntro: '针对图片提问。回答以流式方式来自 /v1/chat/completions。',
			chooseImage: '选择图片…',
			questionLabel: '问题',
			defaultQuestion: '这张图片里有什么？',
			ask: '提问',
			stop: '停止',
			footer: '所有建议都需要您点击后才会应用。图片会先在浏览器中压缩到服务的限制以内再上传。',
			altBadge: 'alt',
			altButton: '生成替代文本',
			altAgain: '重新生成',
			generating: '正在生成…',
			preparing: '正在处理图片…',
			preparingImages: '正在处理 {n} 张图片…',
			waiting: '正在等待服务…',
			proposedAlt: '建议的替代文本',
			proposedSummary: '建议的摘要',
			proposedSeo: '建议的 SEO 描述',
			cachedNote: '（来自缓存）',
			charCount: '{n} 个字符',
			seoCount: '{n} / 约 160 个字符',
			imageInfo: '{w} × {h}，{size}',
			imageShrunk: '{w} × {h}，{size}：上传前将压缩为 {sw} × {sh}，{ssize}',
			imageNotImage: '{name} 不是图片，已跳过。',
			tooManyImages: '每篇文章最多 {n} 张图片，其余已跳过。',
			nothingToSummarize: '请先输入正文（或添加图片）。',
			serviceReady: '服务就绪',
			serviceNotReady: '服务未就绪',
			serviceUnreachable: '无法连接服务',
			keyNone: '未填写密钥',
			keyOk: '密钥有效',
			keyBad: '密钥无效',
			keyNeeded: '请先输入 API 密钥（或打开 make run 打印的链接）。',
			pickImageFirst: '请先选择图片。',
			streaming: '正在回答…',
			streamDone: '{n} 段，用时 {s} 秒（{reason}）',
			stopped: '已停止，保留已生成的部分。',
			finish_stop: '已完成',
			finish_length: '达到长度上限'
		}
	};

	var $ = function (id) { return document.getElementById(id); };
	var lang = initialLang();
	var images = []; // {id, file, url, prepared (Promise), info, card}
	var nextId = 1;
	var client = null;

	function initialLang() {
		var stored = null;
		try { stored = localStorage.getItem(LANG_STORAGE); } catch (e) { /* storage off */ }
		if (stored === 'en' || stored === 'zh') {
			return stored;
		}
		return /^zh/i.test(navigator.language || '') ? 'zh' : 'en';
	}

	function t(key, vars) {
		var s = (T[lang] && T[lang][key]) || T.en[key] || key;
		return s.replace(/\{(\w+)\}/g, function (_, k) { return vars && vars[k] !== undefined ? vars[k] : ''; });
	}

	function humanSize(bytes) {
		if (bytes >= 1048576) { return (bytes / 1048576).toFixed(1) + ' MB'; }
		if (bytes >= 1024) { return Math.round(bytes / 1024) + ' KB'; }
		return bytes + ' B';
	}

	function show(el, text) {
		el.textContent = text || '';
		el.hidden = !text;
	}

	function errorText(err) {
		return window.VlmClient.errorMessage(err, lang);
	}

	/* ---------- language ---------- */

	function applyLang() {
		document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
		document.title = t('appTitle');
		document.querySelectorAll('[data-i18n]').forEach(function (el) {
			el.textContent = t(el.getAttribute('data-i18n'));
		});
		document.querySelectorAll('[data-i18n-placeholder]').forEach(function (el) {
			el.placeholder = t(el.getAttribute('data-i18n-placeholder'));
		});
		// The template's clones were translated when created; refresh them too.
		images.forEach(function (im) { translateCard(im); });
		$('lang-toggle').textContent = lang === 'zh' ? 'English' : '中文';
		var q = $('play-question');
		if (!q.value || q.value === T.en.defaultQuestion || q.value === T.zh.defaultQuestion) {
			q.value = t('defaultQuestion');
		}
		$('key-show').textContent = $('api-key').type === 'password' ? t('show') : t('hide');
		updateInsertLabel();
		updateSeoCount();
		refreshStatus();
	}

	function translateCard(im) {
		im.card.querySelectorAll('[data-i18n]').forEach(function (el) {
			el.textContent = t(el.getAttribute('data-i18n'));
		});
		if (im.applied) {
			im.card.querySelector('.btn-alt').textContent = t('altAgain');
		}
		renderImageInfo(im);
	}

	/* ---------- API key ---------- */

	// #key=... is read once, kept for this tab only, and removed from the address bar so it is
	// neither bookmarked nor shared by accident (fragments are never sent to the server).
	function initKey() {
		var m = /(?:^#|&)key=([^&]*)/.exec(location.hash || '');
		if (m) {
			var key = decodeURIComponent(m[1]);
			try { sessionStorage.setItem(KEY_STORAGE, key); } catch (e) { /* storage off */ }
			history.replaceState(null, '', location.pathname + location.search);
			$('api-key').value = key;
		} else {
			try { $('api-key').value = sessionStorage.getItem(KEY_STORAGE) || ''; } catch (e) { /* storage off */ }
		}
		function keyChanged() {
			try { sessionStorage.setItem(KEY_STORAGE, currentKey()); } catch (e) { /* storage off */ }
			checkKey();
		}
		$('api-key').addEventListener('change', keyChanged);
		$('key-form').addEventListener('submit', function (e) {
			e.preventDefault(); // Enter in the key field checks it; nothing is posted
			keyChanged();
		});
		$('key-show').addEventListener('click', function () {
			var input = $('api-key');
			input.type = input.type === 'password' ? 'text' : 'password';
			$('key-show').textContent = input.type === 'password' ? t('show') : t('hide');
		});
	}

	function currentKey() {
		return $('api-key').value.trim();
	}

	function requireKey(errorEl) {
		if (currentKey()) {
			return true;
		}
		show(errorEl, t('keyNeeded'));
		$('api-key').focus();
		return false;
	}

	/* ---------- status badges ---------- */

	var statusState = 'unknown';
	var keyState = 'none';

	function refreshStatus() {
		var el = $('service-status');
		el.dataset.state = statusState;
		el.textContent = { ready: t('serviceReady'), notready: t('serviceNotReady'),
			down: t('serviceUnreachable'), unknown: '' }[statusState];
		var ks = $('key-state');
		ks.dataset.state = keyState;
		ks.textContent = { none: t('keyNone'), ok: t('keyOk'), bad: t('keyBad'), unknown: '' }[keyState];
	}

	function checkService() {
		fetch('/readyz', { cache: 'no-store' }).then(function (r) {
			statusState = r.ok ? 'ready' : 'notready';
		}, function () {
			statusState = 'down';
		}).then(refreshStatus);
	}

	function checkKey() {
		var key = currentKey();
		if (!key) {
			keyState = 'none';
			refreshStatus();
			return;
		}
		fetch('/v1/models', { headers: { Authorization: 'Bearer ' + key }, cache: 'no-store' }).then(function (r) {
			keyState = r.ok ? 'ok' : (r.status === 401 || r.status === 403 ? 'bad' : 'unknown');
		}, function () {
			keyState = 'unknown';
		}).then(refreshStatus);
	}

	/* ---------- images ---------- */

	function addFiles(fileList) {
		var errorEl = $('meta-error');
		show(errorEl, '');
		Array.prototype.forEach.call(fileList, function (file) {
			if (!/^image\//.test(file.type || '') && !/\.(jpe?g|png|gif|webp|bmp|avif)$/i.test(file.name)) {
				show(errorEl, t('imageNotImage', { name: file.name }));
				return;
			}
			if (images.length >= MAX_IMAGES) {
				show(errorEl, t('tooManyImages', { n: MAX_IMAGES }));
				return;
			}
			addImage(file);
		});
	}

	function addImage(file) {
		var card = $('image-card').content.firstElementChild.cloneNode(true);
		var im = { id: nextId++, file: file, url: URL.createObjectURL(file), card: card,
			prepared: null, info: null, applied: '', busy: null };
		card.dataset.id = String(im.id);
		var thumb = card.querySelector('.thumb');
		thumb.src = im.url;
		card.querySelector('.image-name').textContent = file.name;
		$('images').appendChild(card);
		images.push(im);
		translateCard(im);

		// Prepared once, ahead of time: the card says if the image will be shrunk, and every
		// request reuses the same bytes.
		im.prepared = client.prepareImage(file).then(function (p) {
			im.info = p;
			card.dataset.prepared = p.shrunk ? 'shrunk' : 'original';
			renderImageInfo(im);
			return p;
		});
		im.prepared.catch(function (err) {
			card.dataset.prepared = 'failed';
			show(card.querySelector('.image-error'), errorText(err));
		});
		// createImageBitmap is what prepareImage used; the original size is read from the <img>.
		thumb.addEventListener('load', function () {
			im.natural = { w: thumb.naturalWidth, h: thumb.naturalHeight };
			renderImageInfo(im);
		}, { once: true });

		card.querySelector('.btn-alt').addEventListener('click', function () { generateAlt(im); });
		card.querySelector('.btn-apply').addEventListener('click', function () { applyAlt(im); });
		card.querySelector('.btn-dismiss').addEventListener('click', function () {
			card.querySelector('.alt-proposal').hidden = true;
			card.dataset.state = im.applied ? 'applied' : 'new';
		});
		card.querySelector('.btn-remove').addEventListener('click', function () {
			if (im.busy) { im.busy.abort(); }
			URL.revokeObjectURL(im.url);
			images.splice(images.indexOf(im), 1);
			card.remove();
		});
	}

	function renderImageInfo(im) {
		var el = im.card.querySelector('.image-info');
		var n = im.natural;
		var p = im.info;
		if (!n) { el.textContent = ''; return; }
		if (p && p.shrunk) {
			el.textContent = t('imageShrunk', { w: n.w, h: n.h, size: humanSize(im.file.size),
				sw: p.width, sh: p.height, ssize: humanSize(p.bytes) });
		} else {
			el.textContent = t('imageInfo', { w: n.w, h: n.h, size: humanSize(im.file.size) });
		}
	}

	function articleContext() {
		return $('text').value.trim().slice(0, CONTEXT_CHARS);
	}

	function generateAlt(im) {
		var card = im.card;
		var errorEl = card.querySelector('.image-error');
		var progress = card.querySelector('.image-progress');
		var button = card.querySelector('.btn-alt');
		show(errorEl, '');
		if (!requireKey(errorEl)) { return; }
		if (im.busy) { return; }
		im.busy = new AbortController();
		button.disabled = true;
		card.dataset.state = 'working';
		show(progress, t('preparing'));
		im.prepared.then(function (p) {
			show(progress, t('generating'));
			return client.altText({
				image: p.dataUrl,
				language: $('result-language').value,
				title: $('title').value.trim(),
				context: articleContext(),
				maxLength: ALT_MAX_LENGTH,
				signal: im.busy.signal
			});
		}).then(function (res) {
			card.querySelector('.alt-proposal-text').textContent = res.alt_text;
			card.querySelector('.alt-proposal').hidden = false;
			card.dataset.state = 'proposed';
			card.scrollIntoView({ block: 'nearest' });
			card.dataset.cached = String(!!res.cached);
		}, function (err) {
			card.dataset.state = 'error';
			if (err && err.name === 'AbortError') { return; }
			show(errorEl, errorText(err));
		}).then(function () {
			im.busy = null;
			button.disabled = false;
			show(progress, '');
		});
	}

	function applyAlt(im) {
		var card = im.card;
		var text = card.querySelector('.alt-proposal-text').textContent;
		im.applied = text;
		card.querySelector('.thumb').alt = text;
		card.querySelector('.thumb').title = text;
		card.querySelector('.applied-alt').textContent = text;
		card.querySelector('.applied').hidden = false;
		card.querySelector('.alt-proposal').hidden = true;
		card.querySelector('.btn-alt').textContent = t('altAgain');
		card.dataset.state = 'applied';
	}

	function initImages() {
		var zone = $('drop-zone');
		$('image-input').addEventListener('change', function (e) {
			addFiles(e.target.files);
			e.target.value = ''; // the same file can be chosen again
		});
		['dragenter', 'dragover'].forEach(function (type) {
			zone.addEventListener(type, function (e) {
				e.preventDefault();
				zone.classList.add('over');
			});
		});
		['dragleave', 'drop'].forEach(function (type) {
			zone.addEventListener(type, function (e) {
				e.preventDefault();
				zone.classList.remove('over');
			});
		});
		zone.addEventListener('drop', function (e) {
			if (e.dataTransfer && e.dataTransfer.files) { addFiles(e.dataTransfer.files); }
		});
		zone.addEventListener('keydown', function (e) {
			if (e.key === 'Enter' || e.key === ' ') {
				e.preventDefault();
				$('image-input').click();
			}
		});
		// A page-wide drop outside the zone would navigate away and lose the article.
		window.addEventListener('dragover', function (e) { e.preventDefault(); });
		window.addEventListener('drop', function (e) { e.preventDefault(); });
	}

	/* ---------- summary and SEO description ---------- */

	var metaBusy = null;

	function targetOf(kind) {
		return kind === 'seo_description' ? $('seo') : $('summary');
	}

	function updateInsertLabel() {
		var kind = $('proposal').dataset.kind;
		var filled = kind && targetOf(kind).value.trim();
		// Never silently overwrite what the author wrote: say "Replace" when it would.
		$('proposal-insert').textContent = filled ? t('replace') : t('insert');
		if (kind) {
			$('proposal-title').textContent = kind === 'seo_description' ? t('proposedSeo') : t('proposedSummary');
		}
	}

	function updateSeoCount() {
		var n = $('seo').value.length;
		$('seo-count').textContent = n ? t('seoCount', { n: n }) : '';
	}

	function runMeta(kind) {
		var errorEl = $('meta-error');
		var progress = $('meta-progress');
		show(errorEl, '');
		if (!requireKey(errorEl)) { return; }
		var text = $('text').value.trim();
		if (!text && !images.length) {
			show(errorEl, t('nothingToSummarize'));
			return;
		}
		if (metaBusy) { metaBusy.abort(); }
		var ctrl = new AbortController();
		metaBusy = ctrl;
		$('btn-summary').disabled = true;
		$('btn-seo').disabled = true;
		show(progress, images.length ? t('preparingImages', { n: images.length }) : t('generating'));
		// An image that failed to prepare is left out rather than failing the whole summary.
		Promise.all(images.map(function (im) {
			return im.prepared.then(function (p) { return p.dataUrl; }, function () { return null; });
		})).then(function (urls) {
			show(progress, t('generating'));
			return client.summary({
				title: $('title').value.trim(),
				text: text,
				images: urls.filter(Boolean),
				kind: kind,
				language: $('result-language').value,
				maxLength: kind === 'seo_description' ? SEO_MAX_LENGTH : SUMMARY_MAX_LENGTH,
				signal: ctrl.signal
			});
		}).then(function (res) {
			var box = $('proposal');
			box.dataset.kind = kind;
			$('proposal-text').textContent = res.summary;
			$('proposal-info').textContent = t('charCount', { n: res.summary.length })
				+ (res.cached ? ' ' + t('cachedNote') : '');
			box.hidden = false;
			updateInsertLabel();
			box.scrollIntoView({ block: 'nearest' });
		}, function (err) {
			if (err && err.name === 'AbortError') { return; }
			show(errorEl, errorText(err));
		}).then(function () {
			if (metaBusy === ctrl) {
				metaBusy = null;
				$('btn-summary').disabled = false;
				$('btn-seo').disabled = false;
				show(progress, '');
			}
		});
	}

	function initMeta() {
		$('btn-summary').addEventListener('click', function () { runMeta('summary'); });
		$('btn-seo').addEventListener('click', function () { runMeta('seo_description'); });
		$('proposal-insert').addEventListener('click', function () {
			var box = $('proposal');
			var target = targetOf(box.dataset.kind);
			target.value = $('proposal-text').textContent;
			target.dispatchEvent(new Event('input'));
			box.hidden = true;
			target.focus();
		});
		$('proposal-dismiss').addEventListener('click', function () { $('proposal').hidden = true; });
		$('seo').addEventListener('input', updateSeoCount);
		$('summary').addEventListener('input', updateInsertLabel);
		$('seo').addEventListener('input', updateInsertLabel);
	}

	/* ---------- Try the API ---------- */

	var play = { file: null, prepared: null, ctrl: null };

	function initPlayground() {
		$('play-input').addEventListener('change', function (e) {
			var file = e.target.files && e.target.files[0];
			e.target.value = '';
			if (!file) { return; }
			var thumb = $('play-thumb');
			if (thumb.src) { URL.revokeObjectURL(thumb.src); }
			thumb.src = URL.createObjectURL(file);
			thumb.hidden = false;
			play.file = file;
			show($('play-error'), '');
			$('play-image-info').textContent = file.name;
			play.prepared = client.prepareImage(file);
			play.prepared.then(function (p) {
				$('play-image-info').textContent = file.name + ' · ' + p.width + ' × ' + p.height
					+ ', ' + humanSize(p.bytes);
			}, function (err) {
				show($('play-error'), errorText(err));
			});
		});
		$('play-ask').addEventListener('click', ask);
		$('play-stop').addEventListener('click', function () {
			if (play.ctrl) { play.ctrl.abort(); }
		});
		$('play-question').addEventListener('keydown', function (e) {
			if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { ask(); }
		});
	}

	function ask() {
		var errorEl = $('play-error');
		var answer = $('play-answer');
		show(errorEl, '');
		if (!requireKey(errorEl)) { return; }
		if (!play.prepared) {
			show(errorEl, t('pickImageFirst'));
			return;
		}
		if (play.ctrl) { return; }
		var ctrl = new AbortController();
		play.ctrl = ctrl;
		$('play-ask').disabled = true;
		$('play-stop').disabled = false;
		answer.textContent = '';
		answer.dataset.state = 'waiting';
		answer.dataset.pieces = '0';
		$('play-stats').textContent = t('waiting');
		var started = performance.now();
		var pieces = 0;
		play.prepared.then(function (p) {
			return client.chat({
				messages: [{ role: 'user', content: [
					{ type: 'image_url', image_url: { url: p.dataUrl } },
					{ type: 'text', text: $('play-question').value.trim() || t('defaultQuestion') }
				] }],
				stream: true,
				maxTokens: 256,
				signal: ctrl.signal,
				onDelta: function (piece, full) {
					pieces += 1;
					answer.dataset.state = 'streaming';
					answer.dataset.pieces = String(pieces);
					// Follow the text while the reader has not scrolled up to read.
					var atEnd = answer.scrollTop + answer.clientHeight >= answer.scrollHeight - 8;
					answer.textContent = full;
					if (atEnd) { answer.scrollTop = answer.scrollHeight; }
					$('play-stats').textContent = t('streaming');
				}
			});
		}).then(function (res) {
			answer.textContent = res.text;
			answer.dataset.state = 'done';
			$('play-stats').textContent = t('streamDone', { n: pieces,
				s: ((performance.now() - started) / 1000).toFixed(1),
				reason: T.en['finish_' + res.finishReason] ? t('finish_' + res.finishReason) : (res.finishReason || '?') });
		}, function (err) {
			if (err && err.name === 'AbortError') {
				answer.dataset.state = 'stopped';
				$('play-stats').textContent = t('stopped');
				return;
			}
			answer.dataset.state = 'error';
			$('play-stats').textContent = '';
			show(errorEl, errorText(err));
		}).then(function () {
			play.ctrl = null;
			$('play-ask').disabled = false;
			$('play-stop').disabled = true;
		});
	}

	/* ---------- start ---------- */

	function start() {
		client = window.VlmClient.create({
			endpoint: location.origin,
			token: function () { return currentKey(); },
			lang: lang
		});
		initKey();
		initImages();
		initMeta();
		initPlayground();
		$('lang-toggle').addEventListener('click', function () {
			lang = lang === 'zh' ? 'en' : 'zh';
			try { localStorage.setItem(LANG_STORAGE, lang); } catch (e) { /* storage off */ }
			applyLang();
		});
		applyLang();
		checkService();
		checkKey();
		document.body.dataset.ready = 'true';
	}

	start();
}());
