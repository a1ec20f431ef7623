/*
 * kefu.js: the loader a site owner pastes into every page.
 *
 *   <script src="https://HOST/kefu.js" data-site="SITE_KEY" async></script>
 *
 * Optional: data-color="#RRGGBB", data-position="right|left",
 * data-lang="en|zh-CN|zh-TW".
 *
 * What it does, and what it leaves for later:
 * - Draws the launcher button in a closed shadow root, so the page's CSS
 *   cannot reach in and ours cannot leak out. The host element's own
 *   styles are inline and !important, so page rules cannot hide or move it.
 * - Loads nothing else until the visitor shows intent: hovering or
 *   focusing the launcher creates the widget's iframe (hidden), a click or
 *   Kefu.open() shows it. The one exception is a visitor who chatted in the
 *   last 24 hours: then the iframe loads when the page is idle, so replies
 *   that arrive while they browse reach the unread badge.
 * - Relays the JS API (window.Kefu) and page views to the widget with
 *   postMessage; every message carries kefu: 1.
 *
 * Budget: 3 KB gzipped after the build minifies it (cargo xtask build-web
 * prints the size). Plain ES5 plus shadow DOM, nothing to transpile.
 */
(function (w, d) {
  'use strict';

  var queued = w.Kefu;
  // Pasted twice, or re-inserted by a single-page app: the first one stays.
  if (queued && queued.loaded) {
    return;
  }
  var script = d.currentScript || d.querySelector('script[data-site][src*="kefu.js"]');
  var data = (script && script.dataset) || {};
  if (!data.site) {
    console.warn('kefu.js: add data-site="SITE_KEY" to its script tag');
    return;
  }
  var host = new URL(script.src, location.href).origin;
  var color = /^#[0-9a-f]{6}$/i.test(data.color || '') ? data.color : '#2563eb';
  var side = data.position === 'left' ? 'left' : 'right';
  var STAMP = 'kefu:' + data.site;
  var DAY = 864e5;

  // Labels in the widget's languages: English, traditional and simplified
  // Chinese. Escaped, because the host page's charset decodes this file.
  var tag = (data.lang || navigator.language || 'en').toLowerCase();
  var TEXTS = {
    en: ['Open chat', 'Close chat', 'Chat', ' unread'],
    tw: ['\u958b\u555f\u804a\u5929', '\u95dc\u9589\u804a\u5929', '\u7dda\u4e0a\u5ba2\u670d', ' \u5247\u672a\u8b80'],
    cn: ['\u6253\u5f00\u804a\u5929', '\u5173\u95ed\u804a\u5929', '\u5728\u7ebf\u5ba2\u670d', ' \u6761\u672a\u8bfb']
  };
  var text = tag.indexOf('zh') !== 0 ? TEXTS.en : /hant|tw|hk|mo/.test(tag) && !/hans/.test(tag) ? TEXTS.tw : TEXTS.cn;

  // White or near-black on the brand colour, whichever reads better
  // (WCAG: white needs a contrast of 4.5 or more), as the widget does.
  function linear(i) {
    var c = parseInt(color.substr(i, 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  }
  var luminance = 0.2126 * linear(1) + 0.7152 * linear(3) + 0.0722 * linear(5);
  var ink = 1.05 / (luminance + 0.05) >= 4.5 ? '#fff' : '#111827';

  var CSS =
    ':host::before,:host::after{display:none!important}' +
    '*{box-sizing:border-box}' +
    'button{all:initial;position:absolute;inset:0;display:flex;align-items:center;justify-content:center;' +
    'border-radius:50%;background:' + color + ';color:' + ink + ';cursor:pointer;' +
    'box-shadow:0 4px 14px rgba(0,0,0,.25);transition:transform .15s}' +
    'button:hover{transform:scale(1.06)}' +
    'button:focus-visible{outline:3px solid ' + color + ';outline-offset:3px}' +
    'svg{width:28px;height:28px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}' +
    '.x,.on .c{display:none}.on .x{display:block}' +
    'span{position:absolute;top:-4px;' + side + ':-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;' +
    'background:#dc2626;color:#fff;font:700 12px/20px system-ui,sans-serif;text-align:center}' +
    'span[hidden]{display:none}' +
    '.panel{position:fixed;bottom:92px;' + side + ':20px;width:380px;height:600px;' +
    'max-width:calc(100vw - 40px);max-height:calc(100vh - 112px);border-radius:16px;overflow:hidden;' +
    'background:#fff;box-shadow:0 12px 48px rgba(0,0,0,.25);visibility:hidden;opacity:0;' +
    'transform:translateY(16px);transition:opacity .2s,transform .2s,visibility 0s .2s}' +
    '.on .panel{visibility:visible;opacity:1;transform:none;transition:opacity .2s,transform .2s}' +
    'iframe{display:block;width:100%;height:100%;border:0;color-scheme:normal}' +
    '@media (max-width:479px){.panel{inset:0;width:100%;height:100%;max-width:none;max-height:none;border-radius:0}' +
    '.on.ready button{display:none}}' +
    '@media (prefers-reduced-motion:reduce){button,.panel{transition:none}}';

  // The host element: styles inline and !important, set through CSSOM so
  // a page whose CSP forbids inline styles still lets them through.
  var root = d.createElement('kefu-chat');
  root.style.cssText =
    'all:initial!important;display:block!important;position:fixed!important;z-index:2147483647!important;' +
    'bottom:20px!important;' + side + ':20px!important;width:56px!important;height:56px!important';
  var shadow = root.attachShadow({ mode: 'closed' });
  if (shadow.adoptedStyleSheets && w.CSSStyleSheet) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    make('style', shadow).textContent = CSS;
  }
  var box = make('div', shadow);
  var panel = make('div', box);
  panel.className = 'panel';
  var button = make('button', box);
  button.type = 'button';
  // A speech bubble, and a cross for when the panel is open.
  icon('c', 'M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-5A8 8 0 1 1 21 12z');
  icon('x', 'M6 6l12 12M18 6L6 18');
  var badge = make('span', button);
  badge.hidden = true;
  badge.setAttribute('aria-hidden', 'true');
  d.documentElement.appendChild(root);

  function make(name, parent) {
    return parent.appendChild(d.createElement(name));
  }

  function icon(name, path) {
    var ns = 'http://www.w3.org/2000/svg';
    var svg = button.appendChild(d.createElementNS(ns, 'svg'));
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', name);
    svg.setAttribute('aria-hidden', 'true');
    svg.appendChild(d.createElementNS(ns, 'path')).setAttribute('d', path);
  }

  // State. user and attributes are kept, not queued, so a widget that
  // reloads and says "ready" again gets them again.
  var frame = null;
  var ready = false;
  var isOpen = false;
  var unread = 0;
  var user = null;
  var attributes = null;
  var page = null;
  var listeners = {};

  function label() {
    button.setAttribute('aria-expanded', String(isOpen));
    button.setAttribute('aria-label', text[isOpen ? 1 : 0] + (unread ? ' (' + unread + text[3] + ')' : ''));
  }
  label();

  function emit(event, value) {
    (listeners[event] || []).slice().forEach(function (fn) {
      try {
        fn(value);
      } catch (error) {
        // The page's bug, reported as the page's, without stopping ours.
        setTimeout(function () {
          throw error;
        });
      }
    });
  }

  function send(message) {
    if (ready) {
      message.kefu = 1;
      frame.contentWindow.postMessage(message, host);
    }
  }

  // Only what postMessage can clone, and no functions or DOM nodes.
  function plain(value) {
    return JSON.parse(JSON.stringify(value || {}));
  }

  // The iframe, created once on the first sign of intent.
  function load(open) {
    if (frame) {
      return;
    }
    var query = { site: data.site, embed: 1, origin: location.origin };
    if (data.lang) {
      query.lang = data.lang;
    }
    if (data.color) {
      query.color = color;
    }
    if (open) {
      query.open = 1;
    }
    frame = d.createElement('iframe');
    frame.title = text[2];
    // The relay checks `origin` against the page that framed it, which it
    // learns from the Referer: ask for it even where this page sends none.
    frame.referrerPolicy = 'origin';
    frame.src = host + '/widget?' + new URLSearchParams(query);
    panel.appendChild(frame);
  }

  function open(focus) {
    load(true);
    if (!isOpen) {
      isOpen = true;
      box.classList.add('on');
      remember(Date.now());
      label();
      send({ type: 'open' });
      emit('open');
    }
    if (focus === true) {
      frame.focus();
    }
  }

  function close() {
    if (isOpen) {
      isOpen = false;
      box.classList.remove('on');
      label();
      send({ type: 'close' });
      emit('close');
      // Focus was in the panel: give it back to the launcher.
      if (d.activeElement === root) {
        button.focus();
      }
    }
  }

  button.addEventListener('pointerenter', function () {
    load(false);
  });
  button.addEventListener('focus', function () {
    load(false);
  });
  button.addEventListener('click', function () {
    if (isOpen) {
      close();
    } else {
      open(true);
    }
  });
  shadow.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') {
      close();
    }
  });

  w.addEventListener('message', function (event) {
    var message = event.data;
    if (!frame || event.source !== frame.contentWindow || event.origin !== host || !message || message.kefu !== 1) {
      return;
    }
    if (message.type === 'ready') {
      ready = true;
      box.classList.add('ready');
      if (user) {
        send({ type: 'setUser', user: user });
      }
      if (attributes) {
        send({ type: 'setAttributes', attributes: attributes });
      }
      send(page);
      send({ type: isOpen ? 'open' : 'close' });
    } else if (message.type === 'close') {
      close();
    } else if (message.type === 'unread') {
      unread = Math.max(0, message.count | 0);
      badge.textContent = unread > 99 ? '99+' : unread;
      badge.hidden = !unread;
      label();
      emit('unread', unread);
    } else if (message.type === 'message') {
      remember(message.message && +message.message.at);
      emit('message', message.message);
    }
  });

  // When the visitor last opened the chat or got a message, on this site
  // in this browser. Storage may be blocked: then there is no early load
  // on the next page, nothing worse.
  function remember(time) {
    try {
      if (time > (+localStorage.getItem(STAMP) || 0)) {
        localStorage.setItem(STAMP, time);
      }
    } catch (error) {
      // Blocked: see above.
    }
  }

  // A visitor who chatted in the last day: load when the page is idle.
  try {
    if (Date.now() - localStorage.getItem(STAMP) < DAY) {
      if (w.requestIdleCallback) {
        requestIdleCallback(function () {
          load(false);
        }, { timeout: 5000 });
      } else {
        setTimeout(load, 3000);
      }
    }
  } catch (error) {
    // Blocked: wait for intent as usual.
  }

  // Page views: now, and on every single-page-app navigation. The title
  // often changes just after the URL, hence the short wait.
  var pending;
  function track() {
    var next = { type: 'page', url: location.href, title: d.title, referrer: d.referrer };
    if (!page || page.url !== next.url || page.title !== next.title) {
      page = next;
      send(page);
    }
  }
  function navigated() {
    clearTimeout(pending);
    pending = setTimeout(track, 100);
  }
  ['pushState', 'replaceState'].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      navigated();
      return result;
    };
  });
  w.addEventListener('popstate', navigated);
  track();

  var api = {
    loaded: true,
    open: function () {
      open();
    },
    close: close,
    toggle: function () {
      if (isOpen) {
        close();
      } else {
        open();
      }
    },
    setUser: function (value) {
      user = plain(value);
      send({ type: 'setUser', user: user });
    },
    setAttributes: function (value) {
      var added = plain(value);
      attributes = attributes || {};
      Object.keys(added).forEach(function (key) {
        attributes[key] = added[key];
      });
      send({ type: 'setAttributes', attributes: added });
    },
    on: function (event, fn) {
      (listeners[event] = listeners[event] || []).push(fn);
      return function () {
        listeners[event] = listeners[event].filter(function (other) {
          return other !== fn;
        });
      };
    }
  };
  w.Kefu = api;
  // Calls made before this file loaded, through the README's stub.
  ((queued && queued.q) || []).forEach(function (call) {
    if (api[call[0]]) {
      api[call[0]].apply(api, call[1]);
    }
  });
})(window, document);
