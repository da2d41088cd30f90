/* The visitor beside the chat: who, where from, which pages, their local time. */

const BROWSERS = [[/Edg(?:e|A|iOS)?\/(\d+)/, 'Edge'], [/OPR\/(\d+)/, 'Opera'], [/SamsungBrowser\/(\d+)/, 'Samsung Internet'],
                  [/(?:Firefox|FxiOS)\/(\d+)/, 'Firefox'], [/CriOS\/(\d+)/, 'Chrome'],
                  [/HeadlessChrome\/(\d+)/, 'Chrome (headless)'], [/Chrome\/(\d+)/, 'Chrome'],
                  [/Version\/(\d+)[\d.]*.*Safari/, 'Safari']];
const SYSTEMS = [[/Windows NT/, 'Windows'], [/iPhone|iPad|iPod/, 'iOS'], [/Android/, 'Android'],
                 [/CrOS/, 'ChromeOS'], [/Mac OS X|Macintosh/, 'macOS'], [/Linux/, 'Linux']];

/** "Chrome 120 on Windows, desktop" from a User-Agent header. */
function describeBrowser(ua) {
  if (!ua) return '';
  let browser = 'Unknown browser';
  for (const [re, name] of BROWSERS) {
    const m = re.exec(ua);
    if (m) { browser = name + ' ' + m[1]; break; }
  }
  const system = (SYSTEMS.find(([re]) => re.test(ua)) || [null, 'an unknown system'])[1];
  const device = /iPad|Tablet/.test(ua) || (/Android/.test(ua) && !/Mobile/.test(ua)) ? 'tablet'
    : /Mobi|iPhone/.test(ua) ? 'phone' : 'desktop';
  return browser + ' on ' + system + ', ' + device;
}

function localTime(zone) {
  if (!zone) return 'unknown';
  try {
    return new Intl.DateTimeFormat([], { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit' })
      .format(new Date()) + ' (' + zone + ')';
  } catch (e) {
    return 'unknown';
  }
}

/** Where the visit came from: the first referrer from another site (moving between the
 * site's own pages is not "coming from"). */
function cameFrom(ctx) {
  const pages = Array.isArray(ctx.pages) ? ctx.pages : [];
  const outside = (p) => {
    try {
      return Boolean(p.referrer) && new URL(p.referrer).origin !== new URL(p.url).origin;
    } catch (e) {
      return false;
    }
  };
  const first = pages.find(outside);
  if (first) return first.referrer;
  return pages.length ? null : ctx.referrer || null;
}

function renderContext() {
  const c = selected ? convs.get(selected) : null;
  $('context-empty').hidden = Boolean(c);
  $('context-body').hidden = !c;
  if (!c) return;
  const ctx = c.context || {};
  const s = c.summary;
  $('ctx-name').textContent = ctx.name || s.visitor_name || '—';
  $('ctx-email').textContent = ctx.email || s.email || '—';
  // what an admin names in an export or erasure request (docs/privacy.md)
  $('ctx-visitor').textContent = ctx.visitor || s.visitor || '—';
  $('ctx-time').textContent = localTime(ctx.timezone);
  const browser = $('ctx-browser');
  browser.textContent = describeBrowser(ctx.user_agent) || '—';
  browser.title = ctx.user_agent || '';
  const from = cameFrom(ctx);
  $('ctx-referrer').replaceChildren(from ? webLink(from) : document.createTextNode('direct or unknown'));
  const page = ctx.page;
  $('ctx-page').replaceChildren(page ? webLink(page.url, page.title || page.url) : document.createTextNode('—'));
  const pages = Array.isArray(ctx.pages) ? ctx.pages : [];
  $('ctx-pages-count').textContent = pages.length ? String(pages.length) : '';
  $('ctx-pages').replaceChildren(...pages.slice(-30).reverse().map((p) => {
    const li = el('li');
    li.append(el('time', {}, formatTime(p.ts)), webLink(p.url, p.title || p.url));
    return li;
  }));
  const past = Array.isArray(ctx.past) ? ctx.past : [];
  $('ctx-past').replaceChildren(...(past.length ? past.map((p) => {
    const li = el('li', { 'data-conversation': p.id });
    li.append(el('time', {}, dateTime(p.created_at)),
              el('span', {}, (p.preview || 'No message') + (p.agent ? ' · with ' + p.agent : '')));
    return li;
  }) : [el('li', { class: 'muted' }, c.context ? 'First chat.' : '…')]));
  renderNotes(c);
}

function loadDetails(c) {
  if (!link || !isOpen(c)) return;
  link.send({ action: 'context', conversation: c.id, ref: 'context:' + c.id });
  link.send({ action: 'notes', conversation: c.id, ref: 'notes:' + c.id });
}

on('context', (frame, c) => {
  if (!c) return;
  const pages = paged(c.context && frame.after ? c.context.pages || [] : [], frame, 'pages', null,
                      (cursor) => link.send({ action: 'context', conversation: c.id, cursor }));
  c.context = frame.after ? Object.assign({}, c.context, { pages }) : Object.assign({}, frame, { pages });
  if (c.id === selected) renderSelected();
});

on('page', (frame, c) => {
  if (!c) return;
  const page = { url: frame.url, title: frame.title, referrer: frame.referrer, ts: frame.ts };
  c.context = c.context || { pages: [] };
  c.context.page = page;
  c.context.pages = (Array.isArray(c.context.pages) ? c.context.pages : []).concat([page]);
  if (!c.context.referrer && frame.referrer) c.context.referrer = frame.referrer;
  if (c.id === selected) renderContext();
});

onRefusal('context', () => true); // details are a bonus; the chat works without
