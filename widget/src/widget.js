/* The visitor widget: a launcher and a chat panel in a shadow root, on top of ChatLink
 * (../chatlink.js, compiled into the same closure by infra/bundle.py). See docs/widget.md.
 *
 * Storage, only once the visitor has interacted (opened the chat, sent or left a message,
 * accepted an invitation): localStorage "ctc.token" (visitor token), "ctc.mute", "ctc.last"
 * (the conversation that ended last: shown read-only after a reload until a new chat);
 * sessionStorage "ctc.open" (the panel stays open across page loads) and ChatLink's outbox.
 * A visitor who never clicks gets no storage and no WebSocket, unless the site's config says
 * `presence: true`: then, once the page has been idle ~1 s, a socket with a visitor id kept in
 * sessionStorage "ctc.visit" only (this tab's visit), promoted to "ctc.token" on interaction.
 *
 * Rule: text from people (messages, names, FAQ titles, invitations, server messages) goes
 * into the page with textContent / setAttribute only, never as HTML.
 */
const { Link, Transcript, Typing, TypingIndicator, el, storage, beep: tone, wakeAudio,
        MAX_TEXT_CHARS, randomId, room, formatTime } = CTC_BUNDLE.ChatLink;

const TOKEN_KEY = 'ctc.token';
const MUTE_KEY = 'ctc.mute';
const OPEN_KEY = 'ctc.open';
const VISIT_KEY = 'ctc.visit';
const LAST_KEY = 'ctc.last'; // the conversation that ended last: still shown after a reload
const SITE_RE = /^[A-Za-z0-9_-]{1,40}$/;

// ---------------------------------------------------------------- configuration

const script = document.currentScript || document.querySelector('script[data-site][src*="widget.js"]');
const embed = window.ChatWidget && typeof window.ChatWidget === 'object' ? window.ChatWidget : {};
const attrs = (script && script.dataset) || {};
const origin = new URL(script && script.src ? script.src : location.href, location.href);
const SITE = [embed.site, attrs.site, 'default'].find((s) => SITE_RE.test(s || ''));
const WS_URL = /^wss?:\/\//.test(attrs.ws || '') ? attrs.ws
  : (origin.protocol === 'https:' ? 'wss://' : 'ws://') + origin.host + '/ws';
const API = (/^https?:\/\//.test(attrs.api || '') ? attrs.api : origin.origin + '/api').replace(/\/$/, '');
const LOCALE = validLocale(embed.locale) || validLocale(navigator.language) || 'en';
const LANG = STRINGS[LOCALE.slice(0, 2).toLowerCase()] ? LOCALE.slice(0, 2).toLowerCase() : 'en';
const T = STRINGS[LANG];
const LABEL = String(embed.launcherLabel || T.launcher);

function validLocale(value) {
  try {
    return typeof value === 'string' && value ? Intl.getCanonicalLocales(value)[0] : null;
  } catch (e) {
    return null;
  }
}

function t(key, vars) {
  return String(T[key]).replace(/\{(\w+)\}/g, (m, name) => (vars && name in vars ? String(vars[name]) : m));
}

let site = {}; // GET /api/sites/<site>/widget, once fetched
/** A setting: the page's embed config wins over the site's config. */
function setting(name) {
  return embed[name] !== undefined && embed[name] !== null ? embed[name] : site[name];
}

// ---------------------------------------------------------------- state

const local = storage('local');
const session = storage('session');
let token = storedToken(local.get(TOKEN_KEY));
let interacted = Boolean(token);
token = token || storedToken(session.get(VISIT_KEY)); // a presence visitor, earlier in this tab
let link = null;
let typing = null;
let welcomeToken = null;
let conv = null; // open conversation summary (+ position while queued)
let transcript = null;
let lastRead = 0; // the visitor's read marker
let agentRead = 0; // the agent's read marker
let status = null; // {online, next_open}
let ended = '';
let slowNote = ''; // "slow down": a message was refused as too fast and goes again shortly
let pendingStart = null; // lines typed after the first (which rides in `start`) until `conversation`
let closing = false;
let left = ''; // confirmation after leaving a message
let opened = false;
let muted = local.get(MUTE_KEY) === '1';
let identity = { name: '', email: '' };
let historyDone = false; // the first sync after a page load is history: no sound, no events
let previewOff = 0; // preview dismissed up to this seq
let lastAgent = null; // the latest agent message (for the preview)
let sentUrl = '';
let configLoad = null;
let connTimer = null;
let focusPending = false; // opened before the panel had anything to focus but its close button
let readOnly = false; // showing an earlier conversation (`past_messages`): no rating, no transcript
let confirming = false; // "End this chat?" is asked
let noAgents = ''; // nobody on shift: what the site says (offer to continue by email)
let byEmail = ''; // the address the chat continues at
let pastAsked = false; // the `past` list was asked for since the page loaded (or the last chat)
const handlers = { message: [], open: [], close: [] };

function storedToken(value) {
  if (!value) return null;
  try {
    const claims = JSON.parse(atob(value.split('.')[0].replace(/-/g, '+').replace(/_/g, '/')));
    return claims && claims.w === SITE ? value : null;
  } catch (e) {
    return null;
  }
}

function saveToken(value) {
  if (!value) return;
  token = value;
  if (interacted) local.set(TOKEN_KEY, value);
  else session.set(VISIT_KEY, value);
}

function interact() {
  interacted = true;
  saveToken(welcomeToken);
}

function emit(name, detail) {
  for (const fn of handlers[name]) {
    try { fn(detail); } catch (e) { /* the host's handler: not our failure */ }
  }
}

// ---------------------------------------------------------------- DOM

const host = el('div', { 'data-chat-widget': '' });
const shadow = host.attachShadow({ mode: 'open' });
if (shadow.adoptedStyleSheets && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS); // not an inline <style>: works under a strict style-src CSP
  shadow.adoptedStyleSheets = [sheet];
} else {
  shadow.append(el('style', {}, CSS));
}

/** h('tag.class.class', attrs, ...children): children are nodes or strings (added as text). */
function h(spec, attrs, ...kids) {
  const [tag, ...cls] = spec.split('.');
  const node = el(tag, Object.assign(tag === 'button' ? { type: 'button' } : {}, { class: cls.join(' ') || null }, attrs));
  node.append(...kids);
  return node;
}

function icon(d) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const path = document.createElementNS(ns, 'path');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

const hidden = { hidden: true };
const inviteWho = h('span.who');
const inviteText = h('p.t');
const inviteYes = h('button.btn', {}, T.accept);
const inviteNo = h('button.btn.ghost', {}, T.dismiss);
const invite = h('div.card.invite', { role: 'region', 'aria-live': 'polite', hidden: true },
  inviteWho, inviteText, h('div.btns', {}, inviteYes, inviteNo));

const previewWho = h('span.who');
const previewText = h('span.t');
const previewOpen = h('button.pv', {}, previewWho, previewText);
const previewX = h('button.x', { 'aria-label': T.dismissPreview }, '×');
const preview = h('div.card.preview', hidden, previewOpen, previewX);

const badge = h('span.badge', { 'aria-hidden': 'true', hidden: true });
const launcher = h('button.launcher', { 'aria-expanded': 'false', 'aria-controls': 'ctc-panel', 'aria-haspopup': 'dialog' },
  icon('M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z'),
  h('span', {}, LABEL), badge);

const title = h('h2');
const muteButton = h('button.mute', { 'aria-label': T.mute, 'aria-pressed': 'false' }, icon('M3 9v6h4l5 5V4L7 9z'));
const closeButton = h('button.x.close', { 'aria-label': T.close }, '×');
const connLine = h('div.conn', { role: 'status', hidden: true });
const statusLine = h('div.status', { role: 'status' });
// "End chat" sits under the header, away from × (close the panel), and asks first.
const endButton = h('button.btn.ghost', {}, T.end);
const endYes = h('button.btn', {}, T.end);
const endNo = h('button.btn.ghost', {}, T.keep);
const bar = h('div.bar', {}, statusLine, endButton);
const confirmBox = h('div.bar', { role: 'group', 'aria-label': T.endAsk, hidden: true }, h('p.who', {}, T.endAsk),
  endYes, endNo);
const greet = h('p.greet');
const log = h('ol.log'); // in a role=log box: an <ol> may not take that role itself

const awayText = h('p.away-text');
const leaveName = h('input', { name: 'name', autocomplete: 'name', maxlength: 100 });
const leaveEmail = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
const leaveText = h('textarea', { name: 'text', rows: 4, required: true });
const honeypot = h('input.hp', { name: 'website', tabindex: '-1', 'aria-hidden': 'true', autocomplete: 'off' });
const leaveError = h('p.err', { role: 'alert' });
const leaveHint = hint(leaveText, leaveError, () => Object.assign({ action: 'leave_message', ref: 'lm' }, leaveDoc()));
const leaveButton = h('button.btn', { type: 'submit' }, T.leaveSend);
const leaveForm = h('form.leave', { novalidate: true }, h('p', {}, T.leave), h('label', {}, T.name + T.opt, leaveName),
  h('label', {}, T.email, leaveEmail), h('label', {}, T.message, leaveText), leaveHint, honeypot, leaveError, leaveButton);
const thanks = h('p.thanks', { role: 'status', tabindex: '-1', hidden: true });
const away = h('div.away', hidden, awayText, leaveForm, thanks);
const restartButton = h('button.btn.restart', hidden, T.restart);
// After the end: rate the chat (once: the first rating stands), get the transcript by email.
const rateNote = h('textarea', { rows: 2, maxlength: 500, placeholder: T.comment, 'aria-label': T.comment });
const rateButtons = ['up', 'down'].map((score) => h('button.btn.ghost', { 'data-score': score }, T[score]));
const rateBox = h('div.rate', {}, h('p', {}, T.rate), rateNote, h('div.btns', {}, ...rateButtons));
const txEmail = h('input', { type: 'email', autocomplete: 'email', maxlength: 254, 'aria-label': T.email,
  placeholder: T.email });
const txButton = h('button.btn.ghost', {}, T.transcript);
const endNote = h('p.note', { role: 'status' });
const after = h('div.after', hidden, rateBox, h('div.row', {}, txEmail, txButton), endNote);
// Nobody on shift: the site's words and "Continue by email"; then where the answer goes.
const offerText = h('p.note', { tabindex: '-1' });
const offerEmail = h('input', { type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
const offerForm = h('form', { novalidate: true }, h('label', {}, T.email, offerEmail),
  h('button.btn', { type: 'submit' }, T.byEmail));
const offer = h('div.away', { 'aria-live': 'polite', hidden: true }, offerText, offerForm);
// Earlier conversations (`past`), newest first; one opens read-only.
const pastList = h('ul.faq');
const pastBox = h('div.away', hidden, h('h3.who', {}, T.past), pastList);
const body = h('div.body', {}, greet, h('div', { role: 'log', 'aria-label': T.messages }, log), offer, away, after,
  pastBox, restartButton);
const typingLine = h('div.typing', { 'aria-live': 'polite' });
const indicator = new TypingIndicator(typingLine);

const preName = h('input', { name: 'name', autocomplete: 'name', maxlength: 100 });
const preEmail = h('input', { name: 'email', type: 'email', autocomplete: 'email', maxlength: 254 });
// Each field off, optional or required (`prechat_fields`): render() sets its label and rule.
const prechat = h('div.prechat', hidden, h('label', {}, '', preName), h('label', {}, '', preEmail));
const faqList = h('ul.faq');
const faqBox = h('div.faqs', { 'aria-live': 'polite', hidden: true }, h('span.who', {}, T.faq), faqList);
const input = h('textarea.input', { rows: 2, placeholder: T.placeholder, 'aria-label': T.placeholder });
const composeError = h('p.err', { role: 'alert' });
const composeHint = hint(input, composeError);
const compose = h('form.compose', hidden, prechat, faqBox, composeError,
  h('div.row', {}, input, h('button.btn.send', { type: 'submit' }, T.send)), composeHint);
const panel = h('div.panel', { id: 'ctc-panel', role: 'dialog', 'aria-modal': 'true', hidden: true },
  h('div.head', {}, title, muteButton, closeButton), connLine, bar, confirmBox, body, typingLine, compose);
const root = h('div.root', {}, invite, preview, panel, launcher);
shadow.append(root);

// ---------------------------------------------------------------- look

/** WCAG relative luminance of "#rrggbb". */
function luminance(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

function applyLook() {
  let color = String(setting('color') || '');
  if (/^#[0-9a-f]{3}$/i.test(color)) color = '#' + color.slice(1).replace(/./g, '$&$&');
  if (/^#[0-9a-f]{6}$/i.test(color)) {
    // Text on the brand colour: white or black, whichever contrasts more (black above
    // luminance 0.179); the better of the two is always at least 4.58:1.
    root.style.setProperty('--c', color);
    root.style.setProperty('--ci', luminance(color) > 0.179 ? '#000' : '#fff');
  }
  root.classList.toggle('left', setting('position') === 'left');
  const name = site.name !== SITE ? String(setting('name') || '') : ''; // unnamed sites are named by id
  const label = name ? t('title', { name }) : LABEL;
  title.textContent = label;
  panel.setAttribute('aria-label', label);
  greet.textContent = String(setting('greeting') || T.greeting);
}

/** The plural (or, with type 'ordinal', ordinal) category of n in the widget's language. */
function plural(n, type) {
  try { return new Intl.PluralRules(LANG, { type }).select(n); } catch (e) { return n === 1 ? 'one' : 'other'; } // old browser
}

/** "12 characters left", "Message too long (3 characters over)": plural and digits by language. */
function chars(key, n) {
  return t(key, { n: n.toLocaleString(LOCALE), c: T.chars[plural(n) === 'one' ? 0 : 1] });
}

/** The length hint under a text box: "N characters left" near the limit (a polite status,
 * updated once typing pauses), and past it "Message too long (N characters over)" in the
 * box's error line (an alert), which check() also fills on submit. The limit is the server's
 * (characters) and API Gateway's (the frame's bytes), measured by ChatLink's room(). */
function hint(box, err, frame) {
  const node = h('p.count', { role: 'status' });
  let timer;
  let long = '';
  node.check = () => {
    clearTimeout(timer);
    const n = room(box.value, frame && frame());
    node.textContent = n >= 0 && n < MAX_TEXT_CHARS / 10 ? chars('left', n) : '';
    if (!err.textContent || err.textContent === long) err.textContent = long = n < 0 ? chars('tooLong', -n) : '';
    return n;
  };
  box.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(node.check, 400);
  });
  return node;
}

function ordinal(n) {
  return n + (T.ord[plural(n, 'ordinal')] || T.ord.other);
}

/** "Monday 09:00" in the visitor's own zone and locale (with the date when over 6 days away). */
function formatWhen(ms) {
  const far = ms - Date.now() > 6 * 864e5;
  const options = { weekday: 'long', hour: '2-digit', minute: '2-digit' };
  if (far) Object.assign(options, { day: 'numeric', month: 'long' });
  return new Intl.DateTimeFormat(LOCALE, options).format(new Date(ms));
}

function beep() {
  if (!muted) tone(880);
}

// ---------------------------------------------------------------- rendering

const isLive = (c) => Boolean(c) && c.status !== 'closed';

function view() {
  if (isLive(conv)) return 'chat';
  if (ended) return 'ended';
  if (pendingStart) return 'chat';
  if (!status) return 'connecting';
  return status.online ? 'start' : 'away';
}

function render() {
  const v = view();
  root.setAttribute('data-view', v);
  root.classList.toggle('open', opened);
  compose.hidden = greet.hidden = v !== 'start' && v !== 'chat';
  prechat.hidden = !(v === 'start' && setting('prechat') === true);
  const fields = Object.assign({ name: 'optional', email: 'required' }, setting('prechat_fields'));
  for (const node of [preName, preEmail]) {
    const mode = fields[node.name];
    node.required = !prechat.hidden && mode === 'required';
    node.parentNode.hidden = mode === 'off';
    node.previousSibling.textContent = T[node.name] + (node.required ? '' : T.opt);
  }
  away.hidden = v !== 'away';
  restartButton.hidden = v !== 'ended';
  after.hidden = v !== 'ended' || readOnly;
  confirmBox.hidden = !(confirming && isLive(conv));
  endButton.hidden = !isLive(conv) || confirming;
  const queued = isLive(conv) && conv.status === 'queued';
  offer.hidden = !isLive(conv) || !(byEmail || (queued && noAgents));
  offerForm.hidden = Boolean(byEmail);
  offerText.textContent = byEmail ? t('byEmailDone', { email: byEmail }) : noAgents;
  pastBox.hidden = (v !== 'start' && v !== 'away') || !pastList.firstChild; // after hours too: the emailed thread
  muteButton.setAttribute('aria-pressed', muted);
  if (v === 'away') {
    // The site's own words when it has some (console Settings: `offline_message`).
    awayText.textContent = setting('offline_message')
      || (status.next_open ? t('away', { when: formatWhen(status.next_open) }) : T.awayEmail);
    leaveForm.hidden = Boolean(left);
    thanks.hidden = !left;
    thanks.textContent = left;
  }
  let line = '';
  if (v === 'connecting') line = T.connecting;
  else if (v === 'ended') line = ended;
  else if (queued) {
    // Nobody on shift: no place in a line that does not move (the offer says what to do).
    line = noAgents || byEmail ? '' : conv.position ? t('queued', { pos: ordinal(conv.position) }) : T.waiting;
  } else if (isLive(conv)) line = t('chatting', { name: conv.agent || T.agent });
  else if (pendingStart) line = T.waiting;
  statusLine.textContent = [slowNote, conv && conv.notice, line].filter(Boolean).join(' ');
  bar.hidden = !statusLine.textContent && endButton.hidden;
  updateFaq();
  updateLauncher();
  if (focusPending && v !== 'connecting') {
    focusPending = false;
    if (!shadow.activeElement || shadow.activeElement === closeButton) focusStart();
  }
}

/** Where keyboard focus goes when the panel opens: the first thing to fill in. */
function focusStart() {
  const target = !compose.hidden ? (!prechat.hidden && [preName, preEmail].find((n) => !n.parentNode.hidden)) || input
    : !away.hidden && !leaveForm.hidden ? leaveName : !restartButton.hidden ? restartButton : closeButton;
  target.focus();
}

function unreadCount() {
  return transcript && !readOnly ? transcript.countFrom('agent', lastRead) : 0;
}

function updateLauncher() {
  const n = opened ? 0 : unreadCount();
  badge.hidden = !n;
  badge.textContent = n;
  launcher.setAttribute('aria-label', n ? LABEL + ' — ' + (n === 1 ? T.unread1 : t('unreadN', { n })) : LABEL);
  launcher.setAttribute('aria-expanded', opened);
  // The latest agent message, while closed and unread.
  const latest = n && lastAgent && lastAgent.seq > Math.max(lastRead, previewOff) ? lastAgent : null;
  preview.hidden = !latest;
  if (latest) {
    const name = (latest.from && latest.from.name) || T.agent;
    previewWho.textContent = name;
    previewText.textContent = latest.text;
    previewOpen.setAttribute('aria-label', t('from', { name }) + ': ' + latest.text.slice(0, 200));
  }
}

function updateSeen() {
  let last = null;
  for (const node of log.querySelectorAll('li[data-role="visitor"][data-seq]')) {
    node.removeAttribute('data-seen');
    last = node;
  }
  if (last && agentRead >= Number(last.getAttribute('data-seq'))) last.setAttribute('data-seen', T.seen);
}

function scrollDown() {
  body.scrollTop = body.scrollHeight;
}

function renderMessage(m) {
  const role = (m.from && m.from.role) || 'visitor'; // visitor, agent, or system (transfer notices, ...)
  const agent = role === 'agent';
  if (agent && (!lastAgent || m.seq > lastAgent.seq)) lastAgent = m;
  const ts = Number(m.ts);
  return h(agent ? 'li.msg' : role === 'visitor' ? 'li.msg.me' : 'li.msg.sys', { 'data-role': role },
    ...(agent ? [h('span.who', {}, m.from.name || T.agent)] : []), h('p.t', {}, m.text),
    h('time', { datetime: ts > 0 ? new Date(ts).toISOString() : null }, formatTime(ts, LOCALE)));
}

function pendingNode(text) {
  return h('li.msg.me', { 'data-role': 'visitor' }, h('p.t', {}, text), h('time', {}, T.sending));
}

// ---------------------------------------------------------------- FAQ

const STOP = new Set('the and for you your how can what with are have does les des une est pour que qui vous avec'.split(' '));
const words = (text) => String(text).toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);

function safeUrl(url) {
  try {
    const parsed = new URL(String(url), location.href);
    return /^https?:$/.test(parsed.protocol) ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

function faqMatches(text) {
  const asked = words(text).filter((w) => w.length > 2 && !STOP.has(w));
  const items = Array.isArray(setting('faq')) ? setting('faq') : [];
  const scored = [];
  for (const item of items) {
    if (!item || typeof item.title !== 'string' || !safeUrl(item.url)) continue;
    const known = words(item.title + ' ' + (Array.isArray(item.keywords) ? item.keywords.join(' ') : ''));
    const score = asked.filter((w) => known.some((k) => k === w
      || (w.length > 3 && k.startsWith(w)) || (k.length > 3 && w.startsWith(k)))).length;
    if (score) scored.push([score, item]);
  }
  return scored.sort((a, b) => b[0] - a[0]).slice(0, 3).map((s) => s[1]);
}

let faqShown = '';
function updateFaq() {
  const matches = view() === 'start' ? faqMatches(input.value) : [];
  const key = JSON.stringify(matches.map((m) => m.url));
  if (key === faqShown) return;
  faqShown = key;
  faqList.replaceChildren(...matches.map((m) => {
    const li = el('li');
    li.append(el('a', { href: safeUrl(m.url), target: '_blank', rel: 'noopener noreferrer' }, m.title));
    return li;
  }));
  faqBox.hidden = !matches.length;
}

// ---------------------------------------------------------------- conversation

function ensureLink() {
  if (!link) {
    link = new Link({
      storagePrefix: 'ctc.visitor',
      url: WS_URL,
      api: API,
      params: () => (token ? { token } : { site: SITE }),
      onWelcome,
      onFrame,
      onAck,
      onFailed,
      onSlowDown(entry) {
        slowNote = entry ? T.slowDown : '';
        render();
      },
      onState,
      onRefused() {
        if (!token) return 'backoff';
        // Expired, or from another deployment: come back as a new visitor.
        token = null;
        local.set(TOKEN_KEY, null);
        session.set(VISIT_KEY, null);
        return 'retry';
      },
    });
    typing = new Typing(link);
  }
  link.start();
}

function newTranscript(id) {
  log.replaceChildren();
  lastAgent = null;
  transcript = new Transcript(id, log, renderMessage);
  for (const entry of link.queued(id)) transcript.addPending(entry, pendingNode(entry.text));
}

/** Take in a conversation summary; `resumed`: from a welcome (its messages are history). */
function setConversation(summary, resumed) {
  if (!summary || typeof summary.id !== 'string') return;
  const same = conv && conv.id === summary.id;
  if (isLive(summary)) link.adopt(summary.id); // the first line, if its start is still queued
  if (!same) {
    ended = noAgents = byEmail = '';
    readOnly = confirming = false;
    historyDone = !resumed;
    newTranscript(summary.id);
  }
  if (summary.by_email) byEmail = String(summary.email || byEmail);
  const reads = summary.reads || {};
  lastRead = Math.max(same ? lastRead : 0, Number(reads.visitor) || 0);
  agentRead = Math.max(same ? agentRead : 0, Number(reads.agent) || 0);
  const position = summary.position || (same && summary.status === 'queued' ? conv.position : null);
  const notice = same && summary.status === 'queued' ? conv.notice : '';
  conv = Object.assign({}, summary, { position, notice });
  if (conv.status === 'closed') {
    conversationEnded(null);
    return;
  }
  local.set(LAST_KEY, null); // a chat is open: the one before is in the list of earlier ones
  if (summary.no_agents) nobody(noAgents || T.noAgents);
  if (pendingStart) {
    for (const text of pendingStart) {
      const entry = link.post(conv.id, text);
      if (entry) transcript.addPending(entry, pendingNode(text));
    }
    pendingStart = null;
  }
  updateSeen();
  render();
}

/** The chat is over: say why (the summary's `reason`, else who closed it), keep it readable. */
function conversationEnded(by, summary) {
  if (!conv) return;
  for (const entry of link.drop(conv.id)) failed(entry, T.ended);
  if (typing) typing.stop();
  indicator.hide();
  const refocus = confirming;
  closing = confirming = false;
  conv = Object.assign({}, conv, summary, { status: 'closed' });
  const key = 'r_' + (conv.reason || { agent: 'resolved', visitor: 'ended' }[by]);
  ended = T[key] || T.ended;
  if (!readOnly) {
    local.set(LAST_KEY, conv.id);
    pastAsked = false; // the list changed: ask again when it is next shown
  }
  rateBox.hidden = Boolean(conv.rating);
  endNote.textContent = rateNote.value = '';
  txEmail.value = conv.email || identity.email || preEmail.value;
  render();
  if (refocus) focusStart();
}

/** Nobody is on shift for this waiting chat: tell the visitor, offer to continue by email. */
function nobody(message, email) {
  noAgents = message;
  if (!offerEmail.value) offerEmail.value = email || conv.email || identity.email || preEmail.value;
  render();
}

/** An earlier conversation of this visitor, read-only, with its ending line. */
function showPast(id) {
  conv = { id, status: 'closed' };
  ended = T.ended;
  readOnly = true;
  historyDone = false;
  newTranscript(id);
  transcript.action = 'past_messages';
  transcript.sync(link, true);
  render();
}

/** Back to a fresh start (a new chat, or away from an earlier conversation). */
function reset() {
  ended = '';
  conv = transcript = null;
  readOnly = false;
  local.set(LAST_KEY, null);
  log.replaceChildren();
  loadPast();
  render();
}

/** Once the panel is open with no chat: the visitor's earlier conversations, and the one
 * that ended last (after a reload it is shown as it ended). */
function loadPast() {
  if (!opened || !link || !link.ready || isLive(conv) || pendingStart) return;
  if (!pastAsked) {
    pastList.replaceChildren();
    pastAsked = link.send({ action: 'past' });
  }
  const last = local.get(LAST_KEY);
  if (last && !conv) showPast(last);
}

function pastItem(summary) {
  const ts = Number(summary.created_at);
  const button = h('button.pv', {}, (summary.channel ? '\u2709 ' : '') // by email (chalicelib/inbox.py)
    + (ts > 0 ? new Date(ts).toLocaleDateString(LOCALE) + ': ' : '') + String(summary.preview || T.ended));
  button.addEventListener('click', () => {
    showPast(summary.id);
    focusStart();
  });
  return h('li', {}, button);
}

function failed(entry, why) {
  const node = transcript && transcript.removePending(entry);
  if (!node) return;
  node.classList.add('failed');
  node.lastChild.textContent = t('notSent', { why });
  log.append(node);
}

function markRead() {
  if (!transcript || !isLive(conv) || !opened || document.visibilityState !== 'visible') return;
  const top = transcript.maxSeq;
  if (top > lastRead && transcript.countFrom('agent', lastRead) > 0
      && link.send({ action: 'read', conversation: conv.id, seq: top, ref: 'read' })) {
    lastRead = top;
  }
  updateLauncher();
}

function sendPage(referrer) {
  const url = location.href;
  if (!link || !link.ready || url === sentUrl || !/^https?:/.test(url) || url.length > 2048) return;
  const frame = { action: 'page', url, title: document.title.slice(0, 300), ref: 'page' };
  try { frame.tz = Intl.DateTimeFormat().resolvedOptions().timeZone.slice(0, 64) || undefined; } catch (e) { /* no zone */ }
  const from = String(referrer || '').slice(0, 2048);
  if (from) frame.referrer = from;
  if (link.send(frame)) sentUrl = url;
}

function setStatus(value) {
  if (!value || typeof value !== 'object') return;
  const wasAway = status && !status.online;
  status = { online: Boolean(value.online), next_open: Number(value.next_open) || null };
  if (!status.online && !wasAway && input.value.trim() && !leaveText.value) leaveText.value = input.value;
  render();
}

// ---------------------------------------------------------------- protocol

function onWelcome(welcome) {
  welcomeToken = welcome.token;
  saveToken(welcome.token);
  if (welcome.status) setStatus(welcome.status);
  const open = isLive(welcome.conversation) ? welcome.conversation : null;
  if (open) {
    setConversation(open, true);
    transcript.sync(link, true);
    if (closing) link.send({ action: 'close', conversation: open.id });
  } else if (isLive(conv)) {
    conversationEnded(null); // it closed while we were away
  }
  sendPage(sentUrl || document.referrer);
  render();
  loadPast();
}

function onMessage(frame, live) {
  const agent = frame.from && frame.from.role === 'agent';
  if (agent) indicator.hide();
  if (live) {
    emit('message', { ...frame });
    if (agent && (!opened || document.visibilityState === 'hidden')) beep();
  }
}

function onFrame(frame) {
  const mine = (id) => conv && id === conv.id;
  switch (frame.type) {
    case 'conversation':
      setConversation(frame.summary);
      break;
    case 'queued':
      if (mine(frame.conversation) && conv.status === 'queued') {
        conv.position = Number(frame.position) || null;
        render();
      }
      break;
    case 'assigned':
      if (frame.summary && (!conv || mine(frame.conversation) || !isLive(conv))) {
        noAgents = '';
        setConversation(frame.summary);
      }
      break;
    case 'no_agents':
      if (mine(frame.conversation) && isLive(conv)) nobody(String(frame.message || T.noAgents), frame.email);
      break;
    case 'by_email':
      if (mine(frame.conversation)) {
        byEmail = String(frame.email || '');
        const focused = offer.contains(shadow.activeElement);
        render();
        if (focused) offerText.focus(); // the form is gone: keep focus on what replaced it
      }
      break;
    case 'past':
      for (const item of Array.isArray(frame.items) ? frame.items : []) {
        if (item && typeof item.id === 'string') pastList.append(pastItem(item));
      }
      if (frame.next) link.send({ action: 'past', cursor: String(frame.next) });
      render();
      break;
    case 'requeued':
      if (mine(frame.conversation)) {
        noAgents = '';
        Object.assign(conv, { status: 'queued', agent: null, position: null,
                              notice: typeof frame.message === 'string' ? frame.message : '' });
        indicator.hide();
        render();
      }
      break;
    case 'message':
      if (transcript && frame.conversation === transcript.conversation && transcript.add(frame)) {
        transcript.watchGap(link);
        onMessage(frame, true);
        afterMessages();
      }
      break;
    case 'messages':
      if (transcript && frame.conversation === transcript.conversation) {
        const fresh = (Array.isArray(frame.items) ? frame.items : []).filter((m) => !transcript.bySeq.has(m.seq));
        transcript.onMessages(frame, link);
        if (historyDone) for (const m of fresh) onMessage(m, true);
        if (!transcript.syncing) historyDone = true;
        if (frame.summary) setConversation(frame.summary);
        afterMessages();
      }
      break;
    case 'typing':
      if (mine(frame.conversation) && frame.role === 'agent') {
        if (frame.on) indicator.show(t('typing', { name: conv.agent || T.agent }));
        else indicator.hide();
      }
      break;
    case 'read':
      if (mine(frame.conversation) && frame.role === 'agent') {
        agentRead = Math.max(agentRead, Number(frame.seq) || 0);
        updateSeen();
      }
      break;
    case 'closed':
      if (mine(frame.conversation)) conversationEnded(frame.by, frame.summary);
      break;
    case 'status':
      setStatus(frame);
      break;
    case 'invitation':
      showInvitation(frame);
      break;
    case 'invitation_closed':
      answered.add(frame.id);
      if (frame.id === invitation) { invitation = null; invite.hidden = true; }
      break;
    case 'rules_due':
      // A time rule on this page is met in in_ms: ask then. One timer, and nothing absurd
      // (not a number, negative, over a day). Its errors are as quiet as a page event's.
      if (frame.in_ms > 0 && frame.in_ms <= 864e5) {
        clearTimeout(rulesTimer);
        rulesTimer = setTimeout(() => link.send({ action: 'rules', ref: 'page' }), frame.in_ms);
      }
      break;
    case 'rated':
      if (mine(frame.conversation)) {
        rateBox.hidden = true;
        endNote.textContent = T.rated;
      }
      break;
    case 'transcript_queued':
      // An address not confirmed yet gets a link first (no chat text): say where to look.
      if (mine(frame.conversation)) endNote.textContent = t(frame.confirm ? 'txConfirm' : 'txSent', { email: frame.email });
      break;
    case 'message_left':
      if (frame.ref === 'lm') leftMessage();
      break;
    case 'error':
      onError(frame);
      break;
    default:
      break;
  }
}

function onError(frame) {
  const message = typeof frame.message === 'string' ? frame.message : T.failed;
  if (frame.ref === 'lm') {
    leaveError.textContent = message;
    leaveButton.disabled = false;
  } else if (/^(rate|tx)$/.test(frame.ref)) {
    endNote.textContent = message;
  } else if (frame.ref === 'past_messages') {
    reset(); // gone (past retention) or not theirs: forget it
  } else if (!/^(page|read|inv)$/.test(frame.ref || '')) {
    composeError.textContent = message;
  }
}

function afterMessages() {
  updateSeen();
  scrollDown();
  markRead();
  updateLauncher();
}

function onAck(entry, ack) {
  if (!transcript || transcript.conversation !== entry.conversation) return;
  transcript.removePending(entry);
  const message = { type: 'message', conversation: entry.conversation, seq: ack.seq, id: entry.id,
                    from: { role: 'visitor', name: null }, text: entry.text, ts: ack.ts };
  if (transcript.add(message)) onMessage(message, true);
  transcript.watchGap(link);
  afterMessages();
}

function onFailed(entry, error) {
  if (entry.start) { // the start itself was refused: no chat; the visitor keeps what they wrote
    input.value = [entry.text, ...pendingStart || []].join('\n');
    pendingStart = null;
    log.replaceChildren();
    composeError.textContent = error.message || T.failed;
    render();
  } else if (error.code === 'closed') conversationEnded(null);
  else failed(entry, error.message || error.code);
}

function onState(state) {
  clearTimeout(connTimer);
  if (state === 'offline') {
    // Calm: say nothing for a blip, "Reconnecting…" if it lasts.
    connTimer = setTimeout(() => {
      connLine.hidden = false;
      connLine.textContent = T.reconnecting; // set when shown, so screen readers hear it
    }, 800);
    leaveButton.disabled = false; // a message in flight on that socket: let the visitor retry
  } else if (state === 'online') { // (the widget never stops its link)
    connLine.hidden = true;
    connLine.textContent = '';
  }
}

// ---------------------------------------------------------------- leave a message

function leftMessage() {
  leaveButton.disabled = false;
  left = t('thanks', { email: leaveEmail.value.trim() });
  leaveText.value = '';
  render();
  if (shadow.activeElement === leaveButton) thanks.focus(); // the form is gone: keep focus inside
}

function leaveDoc() {
  const doc = { email: leaveEmail.value.trim(), text: leaveText.value, page: location.href.slice(0, 2048),
                website: honeypot.value };
  if (leaveName.value.trim()) doc.name = leaveName.value.trim();
  return doc;
}

async function leaveMessage() {
  leaveError.textContent = '';
  if (!leaveEmail.checkValidity() || !leaveText.value.trim()) {
    leaveError.textContent = leaveEmail.validationMessage || leaveText.validationMessage || T.failed;
    (leaveEmail.checkValidity() ? leaveText : leaveEmail).focus();
    return;
  }
  if (leaveHint.check() < 0) { // too long: say so, keep the text, send nothing (socket or REST)
    leaveText.focus();
    return;
  }
  interact();
  const doc = leaveDoc();
  leaveButton.disabled = true;
  if (link && link.send(Object.assign({ action: 'leave_message', ref: 'lm' }, doc))) return;
  // No socket (yet, or WebSockets blocked): the same over REST.
  try {
    const response = await fetch(API + '/offline', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(Object.assign({ site: SITE }, doc, token ? { token } : {})),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) leftMessage();
    else onError({ ref: 'lm', message: answer.message });
  } catch (e) {
    onError({ ref: 'lm', message: T.failed });
  }
}

// ---------------------------------------------------------------- invitations

let invitation = null;
let rulesTimer = null;
const answered = new Set(); // invitation ids this visitor answered: a late copy is not shown again
function showInvitation(frame) {
  if (typeof frame.id !== 'string' || isLive(conv) || answered.has(frame.id)) return;
  invitation = frame.id;
  const name = (frame.from && frame.from.name) || T.agent;
  inviteWho.textContent = name;
  invite.setAttribute('aria-label', t('from', { name }));
  inviteText.textContent = String(frame.text || '');
  invite.hidden = opened;
}

function answerInvitation(accept) {
  if (!invitation) return;
  answered.add(invitation);
  if (link) link.send({ action: 'invitation', id: invitation, accept, ref: 'inv' });
  invitation = null;
  invite.hidden = true;
  if (accept) openPanel(true);
  else launcher.focus();
}

// ---------------------------------------------------------------- open / close

function loadConfig() {
  if (!configLoad) {
    configLoad = fetch(API + '/sites/' + SITE + '/widget', { credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : {}))
      .then((doc) => {
        site = doc && typeof doc === 'object' ? doc : {};
        if (site.status && !status) setStatus(site.status);
        applyLook();
        render();
      })
      .catch(() => { /* embed config and defaults */ });
  }
  return configLoad;
}

function openPanel(focus) {
  if (opened) return;
  opened = true;
  interact();
  session.set(OPEN_KEY, '1');
  loadConfig();
  ensureLink();
  invite.hidden = true;
  panel.hidden = false;
  render();
  loadPast();
  markRead();
  scrollDown();
  if (focus) {
    focusStart();
    focusPending = view() === 'connecting';
  }
  emit('open');
}

function closePanel(focus) {
  if (!opened) return;
  opened = false;
  session.set(OPEN_KEY, null);
  panel.hidden = true;
  focusPending = false;
  invite.hidden = !invitation || isLive(conv);
  render();
  if (focus) launcher.focus();
  emit('close');
}

function focusables() {
  return [...panel.querySelectorAll('button, a[href], input, textarea')]
    .filter((n) => !n.disabled && n.tabIndex >= 0 && n.getClientRects().length);
}

// ---------------------------------------------------------------- events

launcher.addEventListener('click', () => {
  if (opened) {
    closePanel(true);
    return;
  }
  if (!muted) wakeAudio();  // a user gesture: browsers allow sound from here on
  openPanel(true);
});
for (const type of ['pointerenter', 'focus']) launcher.addEventListener(type, loadConfig, { once: true });
closeButton.addEventListener('click', () => closePanel(true));
previewOpen.addEventListener('click', () => openPanel(true));
previewX.addEventListener('click', () => {
  previewOff = transcript ? transcript.maxSeq : 0;
  updateLauncher();
  launcher.focus();
});
inviteYes.addEventListener('click', () => answerInvitation(true));
inviteNo.addEventListener('click', () => answerInvitation(false));

muteButton.addEventListener('click', () => {
  muted = !muted;
  interact();
  local.set(MUTE_KEY, muted ? '1' : null);
  render();
});

endButton.addEventListener('click', () => {
  confirming = true;
  render();
  endNo.focus(); // the safe choice first
});
endNo.addEventListener('click', () => {
  confirming = false;
  render();
  endButton.focus();
});
// The box stays (asked) until `closed` arrives; then focus goes to what the panel shows.
endYes.addEventListener('click', () => {
  if (isLive(conv) && !link.send({ action: 'close', conversation: conv.id })) closing = true;
});
offerForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const email = offerEmail.value.trim();
  composeError.textContent = '';
  if (!email || !offerEmail.checkValidity()) {
    composeError.textContent = offerEmail.validationMessage || T.badEmail;
    offerEmail.focus();
  } else if (isLive(conv)) {
    link.send({ action: 'continue_by_email', conversation: conv.id, email, ref: 'cbe' });
  }
});

for (const button of rateButtons) {
  button.addEventListener('click', () => conv && link.send({ action: 'rate', conversation: conv.id, ref: 'rate',
    score: button.getAttribute('data-score'), ...(rateNote.value.trim() ? { comment: rateNote.value.trim() } : {}) }));
}
txButton.addEventListener('click', () => {
  if (!conv) return;
  if (!txEmail.checkValidity() || !txEmail.value) {
    endNote.textContent = T.badEmail;
    return;
  }
  // A new id per click: a resend of this request mails once; another click mails again.
  link.send({ action: 'transcript', conversation: conv.id, id: randomId(12), email: txEmail.value.trim(), ref: 'tx' });
});

restartButton.addEventListener('click', () => {
  reset();
  input.focus();
});

panel.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') {
    event.preventDefault();
    closePanel(true);
    return;
  }
  if (event.key !== 'Tab') return;
  const items = focusables();
  if (!items.length) return;
  const active = shadow.activeElement;
  const first = items[0];
  const last = items[items.length - 1];
  if (event.shiftKey && (active === first || !items.includes(active))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !items.includes(active))) {
    event.preventDefault();
    first.focus();
  }
});

compose.addEventListener('submit', (event) => {
  event.preventDefault();
  composeError.textContent = '';
  const text = input.value;
  if (!text.trim()) return;
  if (composeHint.check() < 0) return; // too long: said so; the text stays, nothing is sent
  interact();
  if (isLive(conv) && transcript) {
    const entry = link.post(conv.id, text);
    transcript.addPending(entry, pendingNode(text));
  } else if (pendingStart) {
    pendingStart.push(text);
    log.append(pendingNode(text));
  } else {
    const bad = !prechat.hidden && [preName, preEmail].find((n) => !n.checkValidity());
    if (bad) {
      composeError.textContent = bad.validationMessage;
      bad.focus();
      return;
    }
    // The first line rides in `start` as a queued message (id, ack, resent after a reconnect
    // or a reload): the agents' waiting list shows the question, stored once.
    const first = {};
    for (const [key, node] of [['name', preName], ['email', preEmail]]) {
      const value = (node.value || identity[key]).trim();
      if (value) first[key] = value;
    }
    pendingStart = [];
    log.replaceChildren(pendingNode(text));
    ensureLink();
    link.post('', text, first);
  }
  input.value = '';
  composeHint.check();
  if (typing) typing.stop();
  render();
  scrollDown();
  input.focus();
});

// A tab evicted by the visitor's newer tabs reconnects once the person uses the widget.
for (const type of ['pointerdown', 'focusin']) shadow.addEventListener(type, () => link && link.resume());

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    compose.requestSubmit();
  }
});

input.addEventListener('input', () => {
  if (isLive(conv) && input.value.trim()) typing.input(conv.id);
  else if (typing) typing.stop();
  updateFaq();
});

leaveForm.addEventListener('submit', (event) => {
  event.preventDefault();
  leaveMessage();
});

document.addEventListener('visibilitychange', markRead);

// Single-page apps: tell the agent when the visitor moves, without touching the host's
// own navigation (the original functions run first, unchanged, and their result is kept).
let lastUrl = location.href;
function navigated() {
  setTimeout(() => {
    if (location.href === lastUrl) return;
    const from = lastUrl;
    lastUrl = location.href;
    sendPage(from);
  }, 50);
}
for (const name of ['pushState', 'replaceState']) {
  const original = history[name];
  if (typeof original !== 'function') continue;
  history[name] = function () {
    const result = original.apply(this, arguments);
    navigated();
    return result;
  };
}
window.addEventListener('popstate', navigated);

// ---------------------------------------------------------------- API

const api = {
  version: '1',
  open() { openPanel(true); },
  close() { closePanel(false); },
  identify(who) {
    if (!who || typeof who !== 'object') return;
    identity = { name: String(who.name || '').slice(0, 100), email: String(who.email || '').slice(0, 254) };
    for (const [node, value] of [[preName, identity.name], [preEmail, identity.email],
      [leaveName, identity.name], [leaveEmail, identity.email]]) {
      if (!node.value) node.value = value;
    }
  },
  on(name, fn) {
    if (handlers[name] && typeof fn === 'function') handlers[name].push(fn);
    return api;
  },
};
window.ChatWidget = api;

function mount() {
  document.body.append(host);
  applyLook();
  render();
  // A returning visitor (a stored token): reconnect to show unread agent messages, and
  // reopen the panel if it was open on the previous page.
  if (token) {
    ensureLink();
    if (session.get(OPEN_KEY)) openPanel(false);
  }
  // Presence: once the page has settled, sites that want to see visitors browsing connect.
  const idle = () => setTimeout(() => loadConfig().then(() => { if (setting('presence') === true) ensureLink(); }), 1000);
  if (document.readyState === 'complete') idle();
  else window.addEventListener('load', idle, { once: true });
  if (typeof embed.onReady === 'function') {
    try { embed.onReady(api); } catch (e) { /* the host's callback */ }
  }
}

if (document.body) mount();
else document.addEventListener('DOMContentLoaded', mount);
