/* What several views share: the notice line, length checks, toasts, times, presence, labels, links. */

function say(text) {
  notice.textContent = text || '';
}

const OFFLINE = "You're offline; try again when the connection is back.";

/** "1,234 characters" / "1 character". */
function characters(n) {
  return n.toLocaleString('en') + (n === 1 ? ' character' : ' characters');
}

/** A text box's length check, as in the widget: near the limit, "N characters left" in
 * `count` (a polite status, updated once typing pauses); past it, "<what> too long (N
 * characters over)" in `err` (an alert), unless `err` shows something else. Returns
 * check(submit): measure now; below zero, send nothing and keep the text (on submit the
 * message replaces whatever `err` showed). The limits are the
 * server's (characters) and API Gateway's (the frame's bytes): ChatLink's room(). */
function lengthCheck(box, count, err, what, frame, field) {
  let timer = null;
  let long = '';
  const check = (submit) => {
    clearTimeout(timer);
    const n = room(box.value, frame && frame(), field);
    count.textContent = n >= 0 && n < MAX_TEXT_CHARS / 10 ? characters(n) + ' left' : '';
    if ((submit && n < 0) || !err.textContent || err.textContent === long) {
      err.textContent = long = n < 0 ? what + ' too long (' + characters(-n) + ' over)' : '';
    }
    return n;
  };
  box.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  return check;
}

function toast(text, bad) {
  const node = el('div', { class: bad ? 'toast bad' : 'toast', role: bad ? 'alert' : 'status',
                           'data-testid': 'toast' }, text);
  toasts.append(node);
  setTimeout(() => node.remove(), 8000);
}

// ------------------------------------------------------------------ time

/** 42 s -> "0:42", 3 min 5 s -> "3:05", 1 h 2 min -> "1:02:00". */
function duration(ms) {
  const total = Math.max(0, Math.floor(Number(ms) / 1000)) || 0;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? h + ':' + String(m).padStart(2, '0') + ':' + s : m + ':' + s;
}

function dateTime(ts) {
  const n = Number(ts);
  if (!Number.isFinite(n) || n <= 0) return '';
  return new Date(n).toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

/** Elements with data-since (ms since the epoch) show how long ago that was, every second. */
function tick() {
  const now = Date.now();
  for (const node of document.querySelectorAll('[data-since]')) {
    node.textContent = duration(now - Number(node.getAttribute('data-since')));
  }
  for (const node of document.querySelectorAll('[data-away-since]')) {
    const p = { state: 'away', since: Number(node.getAttribute('data-away-since')) };
    node.textContent = presenceText(p);
    node.classList.toggle('away', isAway(p));
  }
  const c = selected ? convs.get(selected) : null;
  if (c && c.context) $('ctx-time').textContent = localTime(c.context.timezone);
}

/** The visitor's presence (summary.presence, the presence frame): "Visitor online" or
 *  "Visitor left 3 min ago" (ticking: tick() rewrites nodes made by presenceNode). */
// A visitor moving to another page closes one tab's connection and opens the next: the
// server says "away" then "online" within a second or two. Not "left" until this long.
const AWAY_AFTER_MS = 10000;

function isAway(p) {
  return Boolean(p && p.state === 'away') && Date.now() - Number(p.since) >= AWAY_AFTER_MS;
}

function presenceText(p) {
  if (!isAway(p)) return 'Visitor online';
  const secs = Math.max(0, Math.floor((Date.now() - Number(p.since)) / 1000)) || 0;
  return 'Visitor left ' + (secs < 60 ? 'just now' : Math.floor(secs / 60) + ' min ago');
}

function presenceNode(p) {
  const away = Boolean(p && p.state === 'away');
  return el('span', { class: isAway(p) ? 'presence away' : 'presence', 'data-testid': 'presence',
                      'data-away-since': away ? Number(p.since) : null }, presenceText(p));
}

function label(c) {
  const s = c.summary;
  return s.visitor_name || s.email || 'Visitor ' + String(s.visitor || '').slice(0, 6);
}

function pageText(page) {
  if (!page) return '';
  if (typeof page === 'string') return page;
  return String(page.title || page.url || '');
}

/** A line the product wrote itself (holding message, transfer notice): never a chat's preview. */
function isSystem(message) {
  return Boolean(message && message.from && message.from.role === 'system');
}

function webLink(url, text) {
  const safe = typeof url === 'string' && /^https?:\/\//i.test(url) ? url : null;
  if (!safe) return el('span', {}, text || url || '');
  return el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer nofollow', title: safe }, text || safe);
}
