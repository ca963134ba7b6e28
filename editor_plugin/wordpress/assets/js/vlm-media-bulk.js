/*
 * vlm-media-bulk.js: the "Generate alt text" bulk action on upload.php (list mode).
 * Runs in the browser, one image at a time, with a progress bar and a Cancel button. Skips alt text
 * the overwrite policy protects, saves through POST /wp/v2/media/<id>, and ends with
 * "N updated, M skipped, K failed" plus each failure in plain words. Stops early when the service
 * is down. It does not rewrite alt inside existing posts (the vlm-bulk CLI does that).
 */
(function () {
	'use strict';

	var V = window.vlmWp;
	var t = V.t;
	var ACTION = 'vlm_generate_alt';

	function selectedAction(form, submitter) {
		var top = form.querySelector('#bulk-action-selector-top');
		var bottom = form.querySelector('#bulk-action-selector-bottom');
		if (submitter && submitter.id === 'doaction2') {
			return bottom && bottom.value;
		}
		if (submitter && submitter.id === 'doaction') {
			return top && top.value;
		}
		return (top && top.value === ACTION) || (bottom && bottom.value === ACTION) ? ACTION : '';
	}

	function makePanel() {
		var old = document.querySelector('.vlm-bulk');
		if (old) {
			old.remove();
		}
		var box = document.createElement('div');
		box.className = 'notice notice-info vlm-bulk';
		box.setAttribute('role', 'status');
		box.innerHTML = '<p><strong class="vlm-bulk-title"></strong></p>' +
			'<p><progress class="vlm-bulk-progress" value="0" max="1"></progress> <span class="vlm-bulk-count"></span> ' +
			'<button type="button" class="button vlm-bulk-cancel"></button></p>' +
			'<p class="vlm-bulk-summary" aria-live="polite"></p><ul class="vlm-bulk-errors"></ul>';
		box.querySelector('.vlm-bulk-title').textContent = t('bulkTitle');
		box.querySelector('.vlm-bulk-cancel').textContent = t('cancel');
		var anchor = document.querySelector('.wp-header-end') || document.querySelector('#posts-filter');
		anchor.parentNode.insertBefore(box, anchor.nextSibling);
		return box;
	}

	function pickUrl(item) {
		var sizes = (item.media_details && item.media_details.sizes) || {};
		// A mid-size rendition is plenty for alt text and much quicker to send than the original.
		var pick = sizes.large || sizes.medium_large || sizes.full;
		return (pick && pick.source_url) || item.source_url;
	}

	/** Failures that say nothing about the next image: the service itself is unreachable or refusing. */
	function serviceLevel(err) {
		var st = err && typeof err.status === 'number' ? err.status : -1;
		// Status 0 also covers one unreadable image; only a network failure speaks for the service.
		return (st === 0 && err.code === 'network') || st === 401 || st === 403 || st === 502 || st === 503 || st === 504 ||
			(err && (err.code === 'vlm_not_configured' || err.code === 'vlm_forbidden'));
	}

	function run(ids) {
		var box = makePanel();
		var bar = box.querySelector('.vlm-bulk-progress');
		var count = box.querySelector('.vlm-bulk-count');
		var summary = box.querySelector('.vlm-bulk-summary');
		var errors = box.querySelector('.vlm-bulk-errors');
		var cancelBtn = box.querySelector('.vlm-bulk-cancel');
		var ctrl = new AbortController();
		var res = { updated: 0, skipped: 0, failed: 0 };
		var done = 0;
		var streak = 0;
		var stopped = false;

		bar.max = ids.length;
		function tick() {
			bar.value = done;
			count.textContent = V.format(t('bulkProgress'), done, ids.length);
		}
		function addError(title, text) {
			var li = document.createElement('li');
			li.textContent = V.format(t('bulkFailedItem'), title, text);
			errors.appendChild(li);
		}
		cancelBtn.addEventListener('click', function () {
			ctrl.abort();
			cancelBtn.disabled = true;
		});
		tick();

		function one(id) {
			var title = '#' + id;
			return wp.apiFetch({ path: '/wp/v2/media/' + id + '?context=edit', signal: ctrl.signal })
				.then(function (item) {
					title = (item.title && (item.title.raw || item.title.rendered)) || title;
					if (item.media_type !== 'image') {
						res.skipped++;
						return null;
					}
					if (!V.mayReplace(item.alt_text, item.source_url)) {
						res.skipped++;
						return null;
					}
					return V.getClient()
						.then(function (client) {
							return client.altText({ image: pickUrl(item), language: V.language(), title: item.title && item.title.raw, signal: ctrl.signal });
						})
						.then(function (out) {
							var alt = V.cleanAlt(out && out.alt_text);
							if (!alt) {
								throw { code: 'empty', message: t('genericError') };
							}
							return wp.apiFetch({ path: '/wp/v2/media/' + id, method: 'POST', data: { alt_text: alt }, signal: ctrl.signal });
						})
						.then(function () {
							res.updated++;
						});
				})
				.then(function () { streak = 0; })
				.catch(function (err) {
					if (ctrl.signal.aborted) {
						return;
					}
					res.failed++;
					addError(title, V.errorText(err));
					streak = serviceLevel(err) ? streak + 1 : 0;
					if (streak >= 3 || (err && err.code === 'vlm_not_configured')) {
						stopped = true;
					}
				})
				.then(function () {
					if (!ctrl.signal.aborted) {
						done++;
						tick();
					}
				});
		}

		var chain = Promise.resolve();
		ids.forEach(function (id) {
			chain = chain.then(function () {
				if (ctrl.signal.aborted || stopped) {
					return null;
				}
				return one(id);
			});
		});
		return chain.then(function () {
			cancelBtn.remove();
			var line = V.format(t('bulkDone'), res.updated, res.skipped, res.failed);
			if (stopped) {
				line += ' ' + t('bulkStopped');
			} else if (ctrl.signal.aborted) {
				line += ' ' + t('bulkCancelled');
			}
			summary.textContent = line;
			box.classList.remove('notice-info');
			box.classList.add(res.failed || stopped ? 'notice-warning' : 'notice-success', 'vlm-bulk-finished');
			var reload = document.createElement('a');
			reload.href = window.location.href;
			reload.className = 'vlm-bulk-reload';
			reload.textContent = t('bulkReload');
			summary.appendChild(document.createTextNode(' '));
			summary.appendChild(reload);
		});
	}

	document.addEventListener('submit', function (e) {
		var form = e.target;
		if (!form || form.id !== 'posts-filter') {
			return;
		}
		if (selectedAction(form, e.submitter) !== ACTION) {
			return;
		}
		e.preventDefault();
		var ids = Array.prototype.map.call(form.querySelectorAll('input[name="media[]"]:checked'), function (cb) {
			return parseInt(cb.value, 10);
		}).filter(function (n) { return n > 0; });
		if (!ids.length) {
			window.alert(t('bulkNoneSelected'));
			return;
		}
		if (!V.data.configured) {
			window.alert(t('notConfigured'));
			return;
		}
		run(ids);
	}, true);
}());
