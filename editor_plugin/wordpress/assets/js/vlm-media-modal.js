/*
 * vlm-media-modal.js: "Generate alt text" beside the Alternative Text field of the media modal's
 * Attachment Details (block and classic editors, Media Library grid) and of the attachment edit
 * screen. The proposal is shown for review; Apply puts it in the field, and WordPress saves it as
 * usual: the modal saves a field on change, the edit screen on Update. Plain DOM, no build step.
 * Needs vlm-common.js on the page.
 */
(function ($) {
	'use strict';

	var V = window.vlmWp;
	if (!V) {
		return;
	}
	var t = V.t;

	// Per attachment, so a proposal survives the modal re-rendering its details (which it does
	// on every model change) and switching between images: { status, text, error, ctrl }.
	var states = {};

	function button(label, cls, onClick, primary) {
		var b = document.createElement('button');
		b.type = 'button';
		b.className = 'button ' + (primary ? 'button-primary ' : '') + cls;
		b.textContent = label;
		b.addEventListener('click', onClick);
		return b;
	}

	function postTitle() {
		try {
			var ed = window.wp && wp.data && wp.data.select('core/editor');
			if (ed) {
				return ed.getEditedPostAttribute('title') || '';
			}
		} catch (e) { /* not in the block editor */ }
		var el = document.getElementById('title');
		return el && el.value ? el.value : '';
	}

	/*
	 * One attachment's controls inside `box`: a fresh render from its state each time.
	 * image: { key, url, context }; field: the alt textarea/input; apply(text) writes it.
	 */
	function renderControls(box, image, field, apply) {
		var st = states[image.key] || { status: 'idle' };
		var rerender = function () { refresh(image.key); };
		box.vlm = { image: image, field: field, apply: apply };
		box.setAttribute('data-vlm-key', image.key);
		box.textContent = '';
		if (!V.data.configured) {
			box.appendChild(Object.assign(document.createElement('p'), { className: 'vlm-error', textContent: t('notConfigured') }));
			return;
		}
		if (st.status === 'loading') {
			box.appendChild(Object.assign(document.createElement('span'), { className: 'vlm-modal-busy', textContent: t('generatingAlt') }));
			box.appendChild(button(t('cancel'), 'vlm-modal-cancel', function () {
				st.ctrl.abort();
			}));
			return;
		}
		if (st.status === 'ready') {
			var label = Object.assign(document.createElement('label'), { textContent: t('altProposal') });
			var area = Object.assign(document.createElement('textarea'), { className: 'vlm-modal-proposal', rows: 3, value: st.text });
			area.addEventListener('input', function () { st.text = area.value; });
			label.appendChild(area);
			box.appendChild(label);
			var actions = Object.assign(document.createElement('div'), { className: 'vlm-actions' });
			var applyButton = button(t('apply'), 'vlm-modal-apply', function () {
				var text = V.cleanAlt(st.text);
				if (!text) {
					return;
				}
				delete states[image.key];
				apply(text);
				rerender();
			}, true);
			actions.appendChild(applyButton);
			actions.appendChild(button(t('dismiss'), 'vlm-modal-dismiss', function () {
				delete states[image.key];
				rerender();
			}));
			box.appendChild(actions);
			return;
		}
		if (st.status === 'error') {
			box.appendChild(Object.assign(document.createElement('p'), { className: 'vlm-error', textContent: st.error }));
		}
		var go = button(st.status === 'error' ? t('retry') : t('generateAlt'), 'vlm-modal-generate', function () {
			generate(image, rerender);
		});
		go.disabled = !V.usableImageUrl(image.url);
		box.appendChild(go);
	}

	/** Re-renders every box on the page for this attachment (the modal may have replaced ours). */
	function refresh(key) {
		document.querySelectorAll('.vlm-modal-alt').forEach(function (box) {
			if (box.vlm && box.vlm.image.key === key) {
				renderControls(box, box.vlm.image, box.vlm.field, box.vlm.apply);
			}
		});
	}

	function generate(image, rerender) {
		var ctrl = new AbortController();
		var st = { status: 'loading', ctrl: ctrl };
		states[image.key] = st;
		rerender();
		V.getClient()
			.then(function (client) {
				return client.altText({
					image: image.url,
					language: V.language(postTitle() + ' ' + image.context),
					title: postTitle(),
					context: image.context,
					signal: ctrl.signal
				});
			})
			.then(function (res) {
				var text = V.cleanAlt(res && res.alt_text);
				if (!text) {
					throw { code: 'empty', message: t('genericError') };
				}
				states[image.key] = { status: 'ready', text: text };
			})
			.catch(function (err) {
				if (ctrl.signal.aborted) {
					delete states[image.key];
				} else {
					states[image.key] = { status: 'error', error: V.errorText(err) };
				}
			})
			.finally(rerender);
	}

	function controlsBox(after) {
		var box = document.createElement('div');
		box.className = 'vlm-modal-alt';
		after.parentNode.insertBefore(box, after.nextSibling);
		return box;
	}

	/* ---- media modal: Attachment Details (and its two-column form in the Media Library grid) ---- */

	function textOf(model) {
		return [model.get('caption'), model.get('description')]
			.map(function (s) { return V.htmlToText(s || ''); })
			.filter(Boolean).join('\n').slice(0, 600);
	}

	function pickUrl(model) {
		var sizes = model.get('sizes') || {};
		// A mid-size rendition is plenty for alt text and much quicker to send than the original.
		var pick = sizes.large || sizes.medium_large || sizes.full;
		return (pick && pick.url) || model.get('url');
	}

	function decorateDetails(view) {
		var model = view.model;
		if (!model || model.get('type') !== 'image' || !view.el) {
			return;
		}
		var setting = view.el.querySelector('.setting[data-setting="alt"]');
		var field = setting && setting.querySelector('textarea, input');
		if (!field) {
			return;
		}
		var old = view.el.querySelector('.vlm-modal-alt');
		if (old) {
			old.remove();
		}
		// After the field's help text when there is one, so the help stays next to its field.
		var after = setting.nextElementSibling && setting.nextElementSibling.classList.contains('description')
			? setting.nextElementSibling : setting;
		var image = { key: 'm' + model.get('id'), url: pickUrl(model), context: textOf(model) };
		renderControls(controlsBox(after), image, field, function (text) {
			field.value = text;
			// The details view saves a setting on its change event.
			$(field).trigger('change');
		});
	}

	if (window.wp && wp.media && wp.media.view && wp.media.view.Attachment && wp.media.view.Attachment.Details) {
		var Details = wp.media.view.Attachment.Details;
		var render = Details.prototype.render;
		Details.prototype.render = function () {
			var out = render.apply(this, arguments);
			decorateDetails(this);
			return out;
		};
	}

	/* ---- the attachment edit screen (post.php?post=N&action=edit for an image) ---- */

	$(function () {
		var field = document.getElementById('attachment_alt');
		var url = document.getElementById('attachment_url');
		var id = document.getElementById('post_ID');
		if (!field || !url || !id || !/\.(jpe?g|png|gif|webp)(\?|$)/i.test(url.value)) {
			return;
		}
		var context = ['attachment_caption', 'attachment_content']
			.map(function (name) { var el = document.getElementById(name); return el ? el.value : ''; })
			.filter(Boolean).join('\n').slice(0, 600);
		var holder = field.closest('p') || field;
		var image = { key: 'p' + id.value, url: url.value, context: context };
		renderControls(controlsBox(holder), image, field, function (text) {
			field.value = text;
			$(field).trigger('change');
		});
	});
}(window.jQuery));
