/*
 * kefu-sw.js: the widget's service worker, so that a visitor who reopens
 * the chat offline (a phone in airplane mode) gets the chat rather than the
 * browser's error page. The widget registers it for its own pages only
 * (scope `/c/` for the full page, `/widget` in the loader's iframe).
 *
 * - The shell (the widget's hashed glue, wasm and style sheet) is cached
 *   when the worker installs. `cargo xtask build-web` writes their names
 *   and a version made of their hashes in place of the two lines marked
 *   below, so every build that changes the widget is a new worker, and the
 *   new one drops the old one's cache when it takes over.
 * - Pages are fetched from the network first, and the answer is kept: the
 *   relay writes into each page who it is for, so a page is only ever
 *   served from the cache when the network cannot answer.
 * - Nothing else is touched: the WebSocket and the API go to the network
 *   as always. History and unsent messages are the widget's, in storage.
 */
'use strict';

var VERSION = 'dev'; // kefu:version
var SHELL = []; // kefu:shell
var CACHE = 'kefu-widget-' + VERSION;
// Pages vary by Referer and files by Accept-Encoding; a copy kept for one
// serves them all.
var ANY = { ignoreVary: true };

self.addEventListener('install', function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return cache.addAll(SHELL);
    }).then(function () {
      return self.skipWaiting();
    })
  );
});

self.addEventListener('activate', function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf('kefu-widget-') === 0 && name !== CACHE;
      }).map(function (name) {
        return caches.delete(name);
      }));
    }).then(function () {
      return self.clients.claim();
    }).then(function () {
      // The page that registered this worker loaded before it existed:
      // keep a copy of it now, or it would not open offline until the
      // visitor came back online once more.
      return self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    }).then(function (windows) {
      return caches.open(CACHE).then(function (cache) {
        return Promise.all(windows.filter(function (client) {
          return inScope(client.url);
        }).map(function (client) {
          return cache.match(client.url, ANY).then(function (kept) {
            return kept || fetch(client.url, { credentials: 'same-origin' }).then(function (response) {
              return response.ok ? cache.put(client.url, response) : null;
            });
          });
        }));
      });
    }).catch(function () {
      // Offline while activating: the pages are kept on their next load.
    })
  );
});

function inScope(url) {
  return new URL(url).pathname.indexOf(new URL(self.registration.scope).pathname) === 0;
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') {
    return;
  }
  if (request.mode === 'navigate') {
    event.respondWith(
      fetch(request).then(function (response) {
        if (response.ok) {
          var copy = response.clone();
          caches.open(CACHE).then(function (cache) {
            return cache.put(request.url, copy);
          });
        }
        return response;
      }, function (error) {
        return caches.open(CACHE).then(function (cache) {
          return cache.match(request.url, ANY);
        }).then(function (kept) {
          if (kept) {
            return kept;
          }
          throw error;
        });
      })
    );
    return;
  }
  if (new URL(request.url).pathname.indexOf('/assets/') === 0) {
    // Hashed names never change content: the cache answers first.
    event.respondWith(
      caches.open(CACHE).then(function (cache) {
        return cache.match(request, ANY).then(function (kept) {
          return kept || fetch(request).then(function (response) {
            if (response.ok) {
              cache.put(request, response.clone());
            }
            return response;
          });
        });
      })
    );
  }
});
