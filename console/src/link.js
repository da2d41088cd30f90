/* The connection: the welcome that rebuilds the state, the frame-handler registry (each view
 * registers the frame types it shows with on(), and refusals of what it sent with onRefusal()),
 * and the REST calls of the views that use them (transfer list, settings, reports). */

// Frame type -> the handlers of the views that show it, in the order they registered. Each
// view registers the frames it handles here (on): no view needs to know the others'.
const frameHandlers = new Map();
// A refusal's ref says what it answers ("transfer:<conversation>"): its kind -> the handler
// of the view that sent it. The handler returns true when it has told the agent itself;
// otherwise the message goes under the reply box (say).
const refusalHandlers = new Map();

/** Run fn(frame, c) for every `type` frame; c is the frame's conversation when it is ours. */
function on(type, fn) {
  if (!frameHandlers.has(type)) frameHandlers.set(type, []);
  frameHandlers.get(type).push(fn);
}

/** fn(message, id, frame) for `error` frames whose ref is "<kind>:<id>". */
function onRefusal(kind, fn) {
  refusalHandlers.set(kind, fn);
}

function onFrame(frame) {
  const c = typeof frame.conversation === 'string' ? convs.get(frame.conversation) : null;
  for (const fn of frameHandlers.get(frame.type) || []) fn(frame, c);
  if (leaving.open || handingBack) leavingChanged(); // a frame may have ended the last open chat
}

/** Send a frame if the connection is up; false when it is not (the caller says so). */
const send = (frame) => Boolean(link && link.send(frame));

/** A page of a paged list: the first page (no `after`) replaces, later ones append
 *  (one entry per key); while `more`, ask for the next page with `cursor`. */
function paged(list, frame, field, key, ask) {
  const items = Array.isArray(frame[field]) ? frame[field] : [];
  let out = items;
  if (frame.after !== null && frame.after !== undefined) {
    const seen = new Set(key ? list.map(key) : []);
    out = list.concat(key ? items.filter((i) => !seen.has(key(i))) : items);
  }
  if (frame.more && typeof frame.cursor === 'string' && frame.cursor) ask(frame.cursor);
  return out;
}

function onWelcome(welcome) {
  if (typeof welcome.token === 'string') {
    token = welcome.token; // a fresh expiry
    session.set(TOKEN_KEY, token);
  }
  me = welcome.agent || me;
  site = welcome.site || site;
  onShift = Boolean(me && me.on_shift);
  away = Boolean(me && me.away);
  shiftBusy = false;
  acceptWanted = null;
  if (Array.isArray(welcome.snippets)) snippets = welcome.snippets;
  queue = Array.isArray(welcome.queue) ? welcome.queue : [];
  const current = new Set();
  for (const summary of welcome.conversations || []) {
    const known = convs.get(summary && summary.id);
    const wasOpen = isOpen(known);
    const c = upsert(summary);
    if (!c) continue;
    current.add(c.id);
    if (!welcomed) c.seen = true; // after a reload: not new, just still ours
    if (!wasOpen) c.endedBy = null;
    if (welcomed && !wasOpen && isOpen(c)) announceNew(c); // handed to us while we were away
  }
  for (const c of convs.values()) {
    if (!current.has(c.id) && isOpen(c)) { // closed or handed on while we were away
      c.summary.status = 'gone';
      ended(c, null);
    }
    offers.delete(c.id);
    if (isOpen(c)) {
      c.transcript.sync(link, true);
      loadDetails(c);
    }
  }
  if (!selected || !convs.has(selected)) {
    const first = order().find(isOpen);
    selected = first ? first.id : null;
    if (first) first.seen = true;
  }
  welcomed = true;
  // Lists the welcome had no room for (each frame is at most 32 KB): fetch the rest.
  const next = welcome.next || {};
  if (typeof next.queue === 'string') link.send({ action: 'queue', cursor: next.queue });
  if (typeof next.snippets === 'string') link.send({ action: 'snippets', cursor: next.snippets });
  refreshInbox(); // the "Messages" inbox (inbox.js)
  link.send({ action: 'status' }); // what visitors see now (admin.js: the "We're away" banner)
  renderHeader();
  renderQueue();
  renderOffers();
  renderConversations();
  renderSelected();
  if (view !== 'chats' && viewHooks[view] && viewHooks[view].show) viewHooks[view].show();
  if (!allowed(view)) showView('chats');
}

function onError(frame) {
  const ref = typeof frame.ref === 'string' ? frame.ref : '';
  const message = typeof frame.message === 'string' ? frame.message : 'Something went wrong.';
  const [kind, id] = ref.split(':');
  const handler = refusalHandlers.get(kind);
  if (handler && handler(message, id, frame)) return;
  say(message);
}

on('error', onError);

function onState(state, retryMs) {
  if (state === 'online') connState.textContent = '';
  else if (state === 'offline') {
    connState.textContent = 'Connection lost. Reconnecting'
      + (retryMs ? ' in ' + Math.max(1, Math.round(retryMs / 1000)) + ' s…' : '…');
  }
  renderHeader();
  renderSelected();
}

// ------------------------------------------------------------------ REST (transfers, settings, reports)

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    const response = await fetch(apiUrl(path, DEPLOYED.api), { method, headers, cache: 'no-store',
                                                 body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await response.json().catch(() => null);
    const message = (data && data.message) || 'The server answered ' + response.status + '.';
    return { ok: response.ok, status: response.status, body: data, message };
  } catch (e) {
    return { ok: false, status: 0, body: null, message: "Can't reach the server. Check your connection." };
  }
}

/** A file from the REST API (a CSV report) saved through the browser's download. */
async function download(path, name) {
  try {
    const response = await fetch(apiUrl(path, DEPLOYED.api), { headers: { Authorization: 'Bearer ' + token },
                                                                cache: 'no-store' });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      return { ok: false, message: (data && data.message) || 'The server answered ' + response.status + '.' };
    }
    const disposition = response.headers.get('Content-Disposition') || '';
    const match = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(await response.blob());
    const link = el('a', { href: url, download: match ? match[1] : name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return { ok: true };
  } catch (e) {
    return { ok: false, message: "Can't reach the server. Check your connection." };
  }
}
