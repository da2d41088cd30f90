/* The demo shop's own behaviour (no inline scripts: the pages' CSP forbids them).
 *
 * Runs before the widget (a plain script ahead of the async widget tag), so it can hand the
 * widget its optional embed config through window.ChatWidget:
 *   ?site=<id>  chat with another site (kept for the tab, for trying several sites);
 *   the billing page pretends a customer is signed in and calls ChatWidget.identify().
 * The "Quick view" links are single-page-app navigation (history.pushState): the widget
 * tells the agent about them like about page loads.
 */
(function () {
  'use strict';

  var config = window.ChatWidget || {};
  var site = new URLSearchParams(location.search).get('site');
  try {
    if (site) sessionStorage.setItem('demo.site', site);
    else site = sessionStorage.getItem('demo.site');
  } catch (e) { /* storage disabled: ?site= works for this page only */ }
  if (site) config.site = site;
  if (document.documentElement.getAttribute('data-page') === 'billing') {
    config.onReady = function (chat) {
      chat.identify({ name: 'Sam Rivera', email: 'sam.rivera@example.com' });
    };
  }
  window.ChatWidget = config;

  var products = {
    ridgeline: ['Ridgeline 38 L pack', 'A light aluminium frame carries 12 kg without fuss; the rain cover ' +
      'lives in its own pocket. Hip-belt pockets fit a phone.', '€149'],
    stormfront: ['Stormfront shell', 'Three-layer membrane, pit zips, a hood that turns with your head. ' +
      '390 g in size M.', '€229'],
    ember: ['Ember camp stove', 'Boils a litre in three minutes; folds to the size of a fist. Works with ' +
      'standard screw-on canisters.', '€59'],
  };
  var baseTitle = document.title;

  function showProduct() {
    var box = document.getElementById('quick-view');
    if (!box) return;
    var product = products[new URLSearchParams(location.search).get('product')];
    box.hidden = !product;
    document.title = product ? product[0] + ' · Northwind Outfitters' : baseTitle;
    if (!product) return;
    box.querySelector('h2').textContent = product[0];
    box.querySelector('p').textContent = product[1];
    box.querySelector('.price').textContent = product[2];
  }

  document.addEventListener('click', function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var link = target && target.closest('a[data-product]');
    if (link) {
      event.preventDefault();
      var url = new URL(location.href);
      url.searchParams.set('product', link.getAttribute('data-product'));
      history.pushState({ product: link.getAttribute('data-product') }, '', url);
      showProduct();
      document.getElementById('quick-view').focus();
      return;
    }
    if (target && target.closest('[data-open-chat]') && window.ChatWidget && window.ChatWidget.open) {
      window.ChatWidget.open();
    }
  });
  window.addEventListener('popstate', showProduct);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', showProduct);
  else showProduct();
})();
