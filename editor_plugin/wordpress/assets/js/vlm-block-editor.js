/*
 * vlm-block-editor.js: block editor integration, plain JS on WordPress globals (no JSX, no build).
 *  - "Smart summary" document panel: summary or SEO description, editable preview, then insert as
 *    the excerpt, as a paragraph at the top, or into Yoast / Rank Math's description meta.
 *  - Image inspector (core/image, and so every image of a gallery; core/cover and core/media-text
 *    when they show an image): "Generate alt text" with an editable proposal and Apply / Dismiss.
 *  - With auto_alt on, an image that gets a url/id it did not have gets a proposal (never applied
 *    by itself), subject to the overwrite policy.
 */
(function (wp) {
	'use strict';

	var el = wp.element.createElement;
	var Fragment = wp.element.Fragment;
	var useState = wp.element.useState;
	var useSelect = wp.data.useSelect;
	var C = wp.components;
	var InspectorControls = wp.blockEditor.InspectorControls;
	var V = window.vlmWp;
	var t = V.t;
	var cfg = V.data;

	var STORE = 'vlm/alt';
	// No max_length is sent: the service picks a default per task and language, and its limits differ
	// between English and Chinese (a fixed number can be out of range for one of them).

	/* ---- proposals per image block, in a tiny store so every view of the block sees them ---- */

	var store = wp.data.createReduxStore(STORE, {
		reducer: function (state, action) {
			state = state || {};
			var next;
			if (action.type === 'VLM_SET') {
				next = Object.assign({}, state);
				next[action.clientId] = Object.assign({}, state[action.clientId] || {}, action.patch);
				return next;
			}
			if (action.type === 'VLM_CLEAR') {
				next = Object.assign({}, state);
				delete next[action.clientId];
				return next;
			}
			return state;
		},
		actions: {
			set: function (clientId, patch) { return { type: 'VLM_SET', clientId: clientId, patch: patch }; },
			clear: function (clientId) { return { type: 'VLM_CLEAR', clientId: clientId }; }
		},
		selectors: {
			get: function (state, clientId) { return state[clientId]; }
		}
	});
	wp.data.register(store);

	var controllers = {};

	/* Blocks that show one image, and where each keeps its url, alt and attachment id. A gallery's
	 * images are core/image blocks inside it. Cover and media-text may show a video instead. */
	var IMAGE_BLOCKS = {
		'core/image': { url: 'url', alt: 'alt', id: 'id' },
		'core/cover': { url: 'url', alt: 'alt', id: 'id', type: 'backgroundType' },
		'core/media-text': { url: 'mediaUrl', alt: 'mediaAlt', id: 'mediaId', type: 'mediaType' }
	};

	/** { url, alt, id, altKey } of the image a block shows, or null if it shows none. */
	function blockImage(name, attrs) {
		var m = IMAGE_BLOCKS[name];
		attrs = attrs || {};
		if (!m || (m.type && attrs[m.type] && attrs[m.type] !== 'image')) {
			return null;
		}
		return { url: attrs[m.url] || '', alt: attrs[m.alt] || '', id: attrs[m.id] || 0, altKey: m.alt };
	}

	function imageOfBlock(clientId) {
		var be = wp.data.select('core/block-editor');
		return blockImage(be.getBlockName(clientId), be.getBlockAttributes(clientId));
	}

	function notice(kind, text) {
		var n = wp.data.dispatch('core/notices');
		if (n) {
			n.createNotice(kind, text, { type: 'snackbar', isDismissible: true });
		}
	}

	function postTitle() {
		return wp.data.select('core/editor').getEditedPostAttribute('title') || '';
	}

	/** Caption, text inside the block and the blocks right before and after the image: what the alt must not repeat. */
	function imageContext(clientId) {
		var be = wp.data.select('core/block-editor');
		var attrs = be.getBlockAttributes(clientId) || {};
		var root = be.getBlockRootClientId(clientId) || '';
		var order = be.getBlockOrder(root);
		var i = order.indexOf(clientId);
		var parts = [];
		if (attrs.caption) {
			parts.push(V.htmlToText(attrs.caption));
		}
		// Text laid over a cover or beside a media-text image is its closest context.
		var near = be.getBlockOrder(clientId).slice(0, 4).concat([order[i - 1], order[i + 1]]);
		near.forEach(function (id) {
			if (!id) {
				return;
			}
			var a = be.getBlockAttributes(id) || {};
			if (typeof a.content === 'string') {
				parts.push(V.htmlToText(a.content));
			}
		});
		return parts.filter(Boolean).join('\n').slice(0, 600);
	}

	function generateAlt(clientId, auto) {
		var act = wp.data.dispatch(STORE);
		var attrs = imageOfBlock(clientId) || {};
		if (!attrs.url || /^blob:/.test(attrs.url)) {
			act.set(clientId, { status: 'error', error: t('altNeedsImage'), auto: auto });
			return;
		}
		if (controllers[clientId]) {
			controllers[clientId].abort();
		}
		var ctrl = new AbortController();
		controllers[clientId] = ctrl;
		act.set(clientId, { status: 'loading', auto: auto, error: '', forUrl: attrs.url });
		V.getClient()
			.then(function (client) {
				return client.altText({
					image: attrs.url,
					language: V.language(postTitle() + ' ' + imageContext(clientId)),
					title: postTitle(),
					context: imageContext(clientId),
					signal: ctrl.signal
				});
			})
			.then(function (res) {
				if (ctrl.signal.aborted) {
					return;
				}
				act.set(clientId, { status: 'ready', text: V.cleanAlt(res && res.alt_text), auto: auto, cached: !!(res && res.cached) });
				var selected = wp.data.select('core/block-editor').getSelectedBlockClientId();
				if (auto && selected !== clientId) {
					notice('info', t('altNoticeReady'));
				}
			})
			.catch(function (err) {
				if (ctrl.signal.aborted) {
					act.clear(clientId);
					return;
				}
				act.set(clientId, { status: 'error', error: V.errorText(err), auto: auto });
			})
			.finally(function () {
				if (controllers[clientId] === ctrl) {
					delete controllers[clientId];
				}
			});
	}

	function cancelAlt(clientId) {
		if (controllers[clientId]) {
			controllers[clientId].abort();
		}
		wp.data.dispatch(STORE).clear(clientId);
	}

	/** Store the alt in the attachment too, so future inserts of this image start with it. */
	function saveMediaAlt(id, alt) {
		return wp.apiFetch({ path: '/wp/v2/media/' + id, method: 'POST', data: { alt_text: alt } })
			.catch(function (err) { notice('error', V.errorText(err)); });
	}

	/* ---- image block inspector ---- */

	function AltPanel(props) {
		var clientId = props.clientId;
		var attrs = blockImage(props.name, props.attributes);
		var state = useSelect(function (select) { return select(STORE).get(clientId); }, [clientId]);
		if (state && state.forUrl && state.forUrl !== attrs.url) {
			state = null; // a proposal for an image that has since been replaced
		}
		var media = useSelect(function (select) {
			return attrs.id ? select('core').getMedia(attrs.id, { context: 'view' }) : null;
		}, [attrs.id]);
		var alsoState = useState(null);
		var also = alsoState[0];
		var setAlso = alsoState[1];
		// Default: update the Media Library only where the policy would let vlm replace its alt.
		var alsoDefault = !!(media && V.mayReplace(media.alt_text, media.source_url));
		var alsoChecked = also === null ? alsoDefault : also;
		var act = wp.data.dispatch(STORE);
		var body = [];

		if (!cfg.configured) {
			body.push(el(C.Notice, { key: 'nc', status: 'warning', isDismissible: false }, t('notConfigured')));
		} else if (state && state.status === 'loading') {
			body.push(el('div', { key: 'ld', className: 'vlm-busy' }, el(C.Spinner, null), el('span', null, t('generatingAlt'))));
			body.push(el(C.Button, { key: 'cx', variant: 'secondary', className: 'vlm-cancel-alt', onClick: function () { cancelAlt(clientId); } }, t('cancel')));
		} else if (state && state.status === 'ready') {
			if (state.auto) {
				body.push(el('p', { key: 'au', className: 'vlm-auto-note' }, t('altAutoProposal')));
			}
			body.push(el('p', { key: 'cur', className: 'vlm-current-alt' }, t('altCurrent') + ' ', el('em', null, attrs.alt ? attrs.alt : t('altNone'))));
			body.push(el(C.TextareaControl, {
				key: 'tx',
				className: 'vlm-alt-proposal',
				label: t('altProposal'),
				value: state.text || '',
				rows: 3,
				onChange: function (v) { act.set(clientId, { text: v }); }
			}));
			if (attrs.id) {
				body.push(el(C.CheckboxControl, {
					key: 'ml',
					className: 'vlm-also-media',
					label: t('alsoMedia'),
					checked: alsoChecked,
					onChange: function (v) { setAlso(v); }
				}));
			}
			body.push(el('div', { key: 'bt', className: 'vlm-actions' },
				el(C.Button, {
					variant: 'primary',
					className: 'vlm-apply-alt',
					disabled: !(state.text || '').trim(),
					onClick: function () {
						var alt = (state.text || '').trim();
						var patch = {};
						patch[attrs.altKey] = alt;
						props.setAttributes(patch);
						if (attrs.id && alsoChecked) {
							saveMediaAlt(attrs.id, alt);
						}
						act.clear(clientId);
						notice('info', t('altApplied'));
					}
				}, t('apply')),
				el(C.Button, { variant: 'tertiary', className: 'vlm-dismiss-alt', onClick: function () { act.clear(clientId); } }, t('dismiss'))
			));
		} else {
			if (state && state.status === 'error') {
				body.push(el(C.Notice, { key: 'er', status: 'error', isDismissible: false, className: 'vlm-error' }, state.error));
			}
			body.push(el(C.Button, {
				key: 'gn',
				variant: 'secondary',
				className: 'vlm-generate-alt',
				disabled: !attrs.url,
				onClick: function () { generateAlt(clientId, false); }
			}, state && state.status === 'error' ? t('retry') : t('generateAlt')));
		}
		return el(InspectorControls, null,
			el(C.PanelBody, { title: t('altPanelTitle'), initialOpen: true, className: 'vlm-alt-panel' }, body));
	}

	var withAltPanel = wp.compose.createHigherOrderComponent(function (BlockEdit) {
		return function (props) {
			if (!props.isSelected || !blockImage(props.name, props.attributes)) {
				return el(BlockEdit, props);
			}
			return el(Fragment, null, el(BlockEdit, props), el(AltPanel, props));
		};
	}, 'withVlmAltPanel');
	wp.hooks.addFilter('editor.BlockEdit', 'vlm/image-alt', withAltPanel);

	/* ---- proposals on insert: watch image blocks gain a real (non-blob) url ---- */

	(function watchInserts() {
		if (!cfg.autoAlt || !cfg.configured) {
			return;
		}
		var seen = null; // clientId -> "id|url" last seen; null until the post has loaded
		var lastBlocks = null;
		function key(attrs) {
			return attrs && attrs.url && !/^blob:/.test(attrs.url) ? (attrs.id || '') + '|' + attrs.url : '';
		}
		function walk(blocks, out) {
			(blocks || []).forEach(function (b) {
				var img = blockImage(b.name, b.attributes);
				if (img) {
					out[b.clientId] = key(img);
				}
				walk(b.innerBlocks, out);
			});
			return out;
		}
		wp.data.subscribe(function () {
			var ed = wp.data.select('core/editor');
			if (ed.__unstableIsEditorReady && !ed.__unstableIsEditorReady()) {
				return;
			}
			if (!seen) {
				// The baseline is the post as loaded (core/editor); the block-editor store receives
				// those same blocks a moment later and they are not inserts. "Ready" comes a tick
				// before the parsed blocks, so wait for them when the saved post has content.
				var loaded = ed.getEditorBlocks();
				if (!loaded.length && String(ed.getCurrentPostAttribute('content') || '').trim()) {
					return;
				}
				seen = walk(loaded, {});
			}
			var be = wp.data.select('core/block-editor');
			var blocks = be.getBlocks();
			if (blocks === lastBlocks) {
				return;
			}
			lastBlocks = blocks;
			var fresh = [];
			// seen only grows: a block removed and brought back by undo is not a new insert.
			be.getClientIdsWithDescendants().forEach(function (id) {
				var attrs = blockImage(be.getBlockName(id), be.getBlockAttributes(id));
				if (!attrs) {
					return;
				}
				var k = key(attrs);
				if (k && seen[id] !== k) {
					fresh.push({ id: id, attrs: attrs });
				}
				seen[id] = k;
			});
			fresh.forEach(function (f) {
				var cur = wp.data.select(STORE).get(f.id);
				if (cur && cur.forUrl === f.attrs.url) {
					return;
				}
				if (cur) {
					// The image was replaced: a proposal for the previous one would be wrong.
					cancelAlt(f.id);
				}
				if (V.mayReplace(f.attrs.alt, f.attrs.url)) {
					generateAlt(f.id, true);
				}
			});
		});
	}());

	/* ---- Smart summary document panel ---- */

	function articleForSummary() {
		var ed = wp.data.select('core/editor');
		var be = wp.data.select('core/block-editor');
		var text = V.htmlToText(ed.getEditedPostContent());
		var images = [];
		be.getClientIdsWithDescendants().forEach(function (id) {
			var img = images.length < 3 && imageOfBlock(id);
			if (img) {
				var url = img.url;
				if (V.usableImageUrl(url)) {
					images.push(url);
				}
			}
		});
		return { title: postTitle(), text: text, images: images };
	}

	function escapeHtml(s) {
		return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
	}

	function SummaryPanel() {
		var s = useState({ status: 'idle' });
		var state = s[0];
		var setState = s[1];
		var ctrlState = useState(null);

		function run(kind) {
			var art = articleForSummary();
			if (!art.text && !art.title) {
				setState({ status: 'error', error: t('emptyArticle'), kind: kind });
				return;
			}
			var ctrl = new AbortController();
			ctrlState[1](ctrl);
			setState({ status: 'loading', kind: kind });
			V.getClient()
				.then(function (client) {
					return client.summary({
						title: art.title,
						text: art.text,
						images: art.images,
						kind: kind,
						language: V.language(art.title + ' ' + art.text),
						signal: ctrl.signal
					});
				})
				.then(function (res) {
					setState({ status: 'ready', kind: kind, text: (res && res.summary || '').trim() });
				})
				.catch(function (err) {
					setState(ctrl.signal.aborted ? { status: 'idle' } : { status: 'error', kind: kind, error: V.errorText(err) });
				});
		}

		function done(message) {
			setState({ status: 'idle', message: message });
		}

		var editPost = wp.data.dispatch('core/editor').editPost;
		var body = [];
		if (!cfg.configured) {
			body.push(el(C.Notice, { key: 'nc', status: 'warning', isDismissible: false }, t('notConfigured')));
			return body;
		}
		body.push(el('p', { key: 'hp', className: 'vlm-help' }, t('summaryPanelHelp')));
		if (state.status === 'loading') {
			body.push(el('div', { key: 'ld', className: 'vlm-busy' }, el(C.Spinner, null), el('span', null, t('generatingSummary'))));
			body.push(el(C.Button, { key: 'cx', variant: 'secondary', className: 'vlm-cancel-summary', onClick: function () { if (ctrlState[0]) { ctrlState[0].abort(); } } }, t('cancel')));
			return body;
		}
		if (state.status === 'ready') {
			var seo = state.kind === 'seo_description';
			var text = (state.text || '').trim();
			body.push(el(C.TextareaControl, {
				key: 'tx',
				className: 'vlm-summary-preview',
				label: seo ? t('seoPreview') : t('summaryPreview'),
				value: state.text || '',
				rows: seo ? 4 : 7,
				onChange: function (v) { setState(Object.assign({}, state, { text: v })); }
			}));
			var buttons = [];
			buttons.push(el(C.Button, {
				key: 'ex', variant: 'primary', className: 'vlm-insert-excerpt', disabled: !text,
				onClick: function () { editPost({ excerpt: text }); done(t('insertedExcerpt')); }
			}, t('insertExcerpt')));
			if (!seo) {
				buttons.push(el(C.Button, {
					key: 'tp', variant: 'secondary', className: 'vlm-insert-top', disabled: !text,
					onClick: function () {
						var block = wp.blocks.createBlock('core/paragraph', { content: escapeHtml(text), className: 'vlm-summary' });
						wp.data.dispatch('core/block-editor').insertBlocks(block, 0, '', false);
						done(t('insertedTop'));
					}
				}, t('insertTop')));
			}
			if (seo && cfg.seo && cfg.seo.yoast) {
				buttons.push(el(C.Button, {
					key: 'yo', variant: 'secondary', className: 'vlm-save-yoast', disabled: !text,
					onClick: function () {
						editPost({ meta: { _yoast_wpseo_metadesc: text } });
						// Yoast's own sidebar keeps its copy in its store; update it so its save does not undo ours.
						try {
							var y = wp.data.dispatch('yoast-seo/editor');
							if (y && y.updateData) {
								y.updateData({ description: text });
							}
						} catch (e) { /* Yoast without that store */ }
						done(t('insertedMeta'));
					}
				}, t('saveYoast')));
			}
			if (seo && cfg.seo && cfg.seo.rankmath) {
				buttons.push(el(C.Button, {
					key: 'rm', variant: 'secondary', className: 'vlm-save-rankmath', disabled: !text,
					onClick: function () {
						editPost({ meta: { rank_math_description: text } });
						try {
							var r = wp.data.dispatch('rank-math');
							if (r && r.updateDescription) {
								r.updateDescription(text);
							}
						} catch (e) { /* Rank Math without that store */ }
						done(t('insertedMeta'));
					}
				}, t('saveRankMath')));
			}
			buttons.push(el(C.Button, { key: 'dm', variant: 'tertiary', className: 'vlm-dismiss-summary', onClick: function () { done(''); } }, t('dismiss')));
			body.push(el('div', { key: 'bt', className: 'vlm-actions' }, buttons));
			return body;
		}
		if (state.status === 'error') {
			body.push(el(C.Notice, { key: 'er', status: 'error', isDismissible: false, className: 'vlm-error' }, state.error));
		}
		if (state.message) {
			body.push(el(C.Notice, { key: 'ok', status: 'success', isDismissible: false, className: 'vlm-done' }, state.message));
		}
		body.push(el('div', { key: 'gb', className: 'vlm-actions' },
			el(C.Button, { variant: 'secondary', className: 'vlm-generate-summary', onClick: function () { run('summary'); } }, t('generateSummary')),
			el(C.Button, { variant: 'secondary', className: 'vlm-generate-seo', onClick: function () { run('seo_description'); } }, t('generateSeo'))
		));
		return body;
	}

	var DocPanel = (wp.editor && wp.editor.PluginDocumentSettingPanel) || (wp.editPost && wp.editPost.PluginDocumentSettingPanel);
	if (DocPanel && wp.plugins) {
		wp.plugins.registerPlugin('vlm-summary', {
			icon: 'text',
			render: function () {
				return el(DocPanel, { name: 'vlm-summary', title: t('summaryPanelTitle'), className: 'vlm-summary-panel' }, el(SummaryPanel, null));
			}
		});
	}
}(window.wp));
