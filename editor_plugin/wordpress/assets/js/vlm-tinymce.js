/*
 * vlm-tinymce.js: TinyMCE 4 plugin for the classic editor (and the Classic block).
 * "vlm_alt" proposes alt text for the selected image; "vlm_summary" summarises the post. Both open
 * a dialog to review and edit before anything changes. Needs vlm-common.js on the page.
 */
(function () {
	'use strict';
	if (!window.tinymce) {
		return;
	}

	window.tinymce.PluginManager.add('vlm', function (editor) {
		function V() { return window.vlmWp; }
		function t(k) { return V() ? V().t(k) : k; }

		function busy(on) {
			editor.setProgressState(!!on);
		}

		function fail(err) {
			busy(false);
			editor.windowManager.alert(V() ? V().errorText(err) : String(err));
		}

		function postTitle() {
			var el = document.getElementById('title');
			return el ? el.value : '';
		}

		function altForSelection() {
			if (!V()) {
				return;
			}
			var img = editor.selection.getNode();
			if (!img || img.nodeName !== 'IMG') {
				editor.windowManager.alert(t('classicSelectImg'));
				return;
			}
			var src = img.getAttribute('src');
			var context = '';
			var block = editor.dom.getParent(img, 'p,div,figure,dl');
			if (block) {
				context = (block.textContent || '').trim().slice(0, 600);
			}
			busy(true);
			V().getClient()
				.then(function (client) {
					return client.altText({ image: src, language: V().language(postTitle() + ' ' + context), title: postTitle(), context: context });
				})
				.then(function (res) {
					busy(false);
					var current = img.getAttribute('alt') || '';
					editor.windowManager.open({
						title: t('classicAltTitle'),
						classes: 'vlm-alt-dialog',
						body: [
							{ type: 'label', text: t('altCurrent') + ' ' + (current || t('altNone')) },
							{ type: 'textbox', name: 'alt', multiline: true, minWidth: 420, minHeight: 80, value: V().cleanAlt(res.alt_text) }
						],
						buttons: [
							{ text: t('apply'), subtype: 'primary', onclick: 'submit' },
							{ text: t('dismiss'), onclick: 'close' }
						],
						onsubmit: function (e) {
							var alt = String(e.data.alt || '').trim();
							editor.undoManager.transact(function () {
								editor.dom.setAttrib(img, 'alt', alt);
							});
							editor.nodeChanged();
							editor.fire('change');
						}
					});
				})
				.catch(fail);
		}

		function summary() {
			if (!V()) {
				return;
			}
			var text = V().htmlToText(editor.getContent());
			if (!text) {
				editor.windowManager.alert(t('emptyArticle'));
				return;
			}
			var images = [];
			editor.dom.select('img').forEach(function (img) {
				var src = img.getAttribute('src');
				if (images.length < 3 && V().usableImageUrl(src)) {
					images.push(src);
				}
			});
			busy(true);
			V().getClient()
				.then(function (client) {
					return client.summary({ title: postTitle(), text: text, images: images, kind: 'summary', language: V().language(postTitle() + ' ' + text) });
				})
				.then(function (res) {
					busy(false);
					var excerpt = document.getElementById('excerpt');
					var win = editor.windowManager.open({
						title: t('classicSumTitle'),
						classes: 'vlm-summary-dialog',
						body: [{ type: 'textbox', name: 'summary', multiline: true, minWidth: 480, minHeight: 140, value: (res.summary || '').trim() }],
						buttons: [
							{
								text: t('insertExcerpt'),
								subtype: 'primary',
								disabled: !excerpt,
								onclick: function () {
									excerpt.value = String(win.toJSON().summary || '').trim();
									win.close();
								}
							},
							{
								text: t('insertTop'),
								onclick: function () {
									var s = String(win.toJSON().summary || '').trim();
									var p = editor.dom.create('p', { 'class': 'vlm-summary' }, editor.dom.encode(s));
									editor.undoManager.transact(function () {
										editor.getBody().insertBefore(p, editor.getBody().firstChild);
									});
									editor.fire('change');
									win.close();
								}
							},
							{ text: t('dismiss'), onclick: 'close' }
						]
					});
				})
				.catch(fail);
		}

		editor.addButton('vlm_alt', { icon: 'image', text: 'Alt', tooltip: t('classicAltButton'), onclick: altForSelection });
		editor.addButton('vlm_summary', { icon: false, text: t('classicSumButton'), tooltip: t('classicSumButton'), onclick: summary });
	});
}());
