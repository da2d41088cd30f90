/* The agent console: sign in, shift and away, the waiting queue, several chats at once with
 * the visitor's context, private notes, snippets, transfers, live visitors and invitations.
 * Admin views (team, history, settings) are in admin.js, which uses window.CtcConsole.
 *
 * Uses /widget/chatlink.js for the socket (reconnect, outbox, resync). Every `welcome` (first
 * connect and each reconnect) rebuilds the state: agent, queue, chats, snippets; transcripts
 * sync after their last seq and context and notes are asked for again.
 *
 * The agent token lives in sessionStorage ("ctc.agent.token"): closing the tab signs out.
 * Everything people wrote (messages, names, pages, notes) is rendered with textContent.
 */
(function () {
  'use strict';

  // Deployed behind CloudFront, `make deploy` writes /console/config.js with the API
  // addresses; locally the page is served by the stand-in, same origin for everything.
  const DEPLOYED = window.ChatConsoleConfig || {};

  const { Link, Transcript, Typing, TypingIndicator, el, storage, apiUrl,
          formatTime, beep, wakeAudio, room, MAX_TEXT_CHARS } = window.ChatLink;

  const TOKEN_KEY = 'ctc.agent.token';
  const TITLE = 'Agent console';
  const session = storage('session');

  const $ = (id) => document.getElementById(id);
  const loginSection = $('login');
  const loginForm = $('login-form');
  const loginAgent = $('login-agent');
  const loginPassword = $('login-password');
  const loginSubmit = $('login-submit');
  const loginError = $('login-error');
  const app = $('app');
  const agentName = $('agent-name');
  const connState = $('conn-state');
  const shiftToggle = $('shift-toggle');
  const awayToggle = $('away-toggle');
  const alertsButton = $('alerts');
  const signOutButton = $('sign-out');
  const chatsCount = $('chats-count');
  const offersBox = $('offers');
  const queueList = $('queue');
  const queueCount = $('queue-count');
  const convList = $('conversations');
  const convTitle = $('conv-title');
  const convClose = $('conv-close');
  const transferOpen = $('transfer-open');
  const transferBox = $('transfer-box');
  const transferTo = $('transfer-to');
  const transferNote = $('transfer-note');
  const transferSend = $('transfer-send');
  const transferError = $('transfer-error');
  const transferState = $('transfer-state');
  const transcriptLabel = $('transcript-label');
  const transcriptBox = $('close-transcript');
  const transcriptText = $('transcript-text');
  const transcriptSend = $('conv-transcript');
  const ratingBox = $('conv-rating');
  const messages = $('messages');
  const notice = $('notice');
  const replyForm = $('reply-form');
  const replyInput = $('reply-input');
  const replySend = $('reply-send');
  const snippetMenu = $('snippet-menu');
  const toasts = $('toasts');
  const indicator = new TypingIndicator($('typing'));

  let token = session.get(TOKEN_KEY);
  let link = null;
  let typing = null;
  let me = null; // the agent, as the server describes them
  let site = null;
  let onShift = false;
  let away = false;
  let shiftBusy = false;
  let queue = [];
  let snippets = [];
  const convs = new Map(); // id -> {id, summary, transcript, lastRead, endedBy, context, notes, ...}
  const offers = new Map(); // conversation id -> transfer_offer frame
  const handlers = {}; // frame type -> [fn] (admin.js)
  let selected = null;
  let acceptWanted = null;
  let signingOut = false;
  let welcomed = false;
  let timers = [];
  let view = 'chats';
  const viewHooks = {};

  const OPEN = new Set(['queued', 'assigned', 'active']);
  const isOpen = (c) => Boolean(c) && OPEN.has(c.summary.status);

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

  const replyCheck = lengthCheck(replyInput, $('reply-length'), notice, 'Message');

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

  // ------------------------------------------------------------------ sound and alerts

  /** A short beep: higher for a new chat, lower for a message. */
  function chime(kind) {
    beep(kind === 'chat' ? 988 : 660);
  }

  function canNotify() {
    return typeof Notification === 'function';
  }

  function updateAlertsButton() {
    alertsButton.hidden = !canNotify() || Notification.permission !== 'default';
  }

  /** Ask for desktop notifications; only ever from a click (browsers require a gesture). */
  function askPermission() {
    wakeAudio();
    if (!canNotify() || Notification.permission !== 'default') return;
    try {
      const asked = Notification.requestPermission(updateAlertsButton);
      if (asked && asked.then) asked.then(updateAlertsButton, updateAlertsButton);
    } catch (e) { /* old browsers */ }
  }

  /** A desktop notification when the console is not in front (and allowed). */
  function notify(title, body, conversation) {
    if (!canNotify() || Notification.permission !== 'granted') return;
    if (document.visibilityState === 'visible' && document.hasFocus()) return;
    try {
      const n = new Notification(title, { body: String(body || '').slice(0, 160), tag: conversation || 'ctc' });
      n.onclick = () => {
        window.focus();
        if (conversation && convs.has(conversation)) {
          showView('chats');
          select(conversation);
        }
        n.close();
      };
    } catch (e) { /* notifications need a service worker on some platforms */ }
  }

  alertsButton.addEventListener('click', askPermission);
  document.addEventListener('pointerdown', wakeAudio, { once: true });

  // ------------------------------------------------------------------ sign-in

  function showLogin(message) {
    app.hidden = true;
    loginSection.hidden = false;
    loginError.textContent = message || '';
    loginAgent.focus();
  }

  loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    wakeAudio();
    loginError.textContent = '';
    loginSubmit.disabled = true;
    try {
      const response = await fetch(apiUrl('/auth/login', DEPLOYED.api), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ agent: loginAgent.value.trim(), password: loginPassword.value }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok && typeof body.token === 'string') {
        token = body.token;
        session.set(TOKEN_KEY, token);
        loginPassword.value = '';
        startConsole();
      } else if (response.status === 401 || response.status === 403) {
        loginError.textContent = 'Wrong agent id or password.';
      } else {
        loginError.textContent = typeof body.message === 'string' ? body.message
          : 'Sign-in failed (' + response.status + ').';
      }
    } catch (e) {
      loginError.textContent = "Can't reach the server. Check your connection and try again.";
    } finally {
      loginSubmit.disabled = false;
    }
  });

  function startConsole() {
    loginSection.hidden = true;
    app.hidden = false;
    connState.textContent = 'Connecting…';
    updateAlertsButton();
    link = new Link({
      url: DEPLOYED.ws,
      api: DEPLOYED.api,
      storagePrefix: 'ctc.console',
      params: () => ({ token }),
      onWelcome,
      onFrame,
      onAck,
      onFailed,
      onState,
      onRefused() {
        signOut('Your session has expired. Please sign in again.');
        return 'stop';
      },
    });
    typing = new Typing(link);
    link.start();
    timers.push(setInterval(tick, 1000));
    // Off shift the server pushes no queue updates: ask now and then, and on coming back.
    timers.push(setInterval(refreshQueue, 10000));
    showView(viewFromHash() || 'chats');
  }

  function signOut(message) {
    if (link) link.stop();
    link = null;
    for (const t of timers) clearInterval(t);
    timers = [];
    token = null;
    session.set(TOKEN_KEY, null);
    me = null;
    site = null;
    onShift = away = false;
    queue = [];
    snippets = [];
    convs.clear();
    offers.clear();
    selected = null;
    signingOut = false;
    welcomed = false;
    showView('chats');
    queueList.replaceChildren();
    convList.replaceChildren();
    offersBox.replaceChildren();
    messages.replaceChildren();
    indicator.hide();
    say('');
    document.title = TITLE;
    showLogin(message);
  }

  signOutButton.addEventListener('click', () => {
    if (askBeforeLeaving('signout')) return; // open chats: nobody must be left waiting for us
    // Going off shift first hands nothing new to us; open chats stay ours until closed.
    if (onShift && link && link.send({ action: 'shift', on: false })) {
      signingOut = true;
      setTimeout(() => { if (signingOut) signOut(''); }, 1500);
    } else {
      signOut('');
    }
  });

  // ------------------------------------------------------------------ views

  const VIEWS = ['chats', 'visitors', 'team', 'history', 'reports', 'settings'];
  const isAdmin = () => Boolean(me && me.role === 'admin');
  // Supervisors see the team, history and reports; only admins change settings.
  const isLead = () => Boolean(me && (me.role === 'admin' || me.role === 'supervisor'));
  const allowed = (name) => name === 'chats' || name === 'visitors' || (name === 'settings' ? isAdmin() : isLead());

  function viewFromHash() {
    const name = location.hash.slice(1);
    return VIEWS.includes(name) ? name : null;
  }

  function showView(name) {
    if (!VIEWS.includes(name)) name = 'chats';
    if (me && !allowed(name)) name = 'chats';
    const before = view;
    view = name;
    for (const v of VIEWS) $('view-' + v).hidden = v !== name;
    for (const button of document.querySelectorAll('#views [data-view]')) {
      button.setAttribute('aria-current', button.getAttribute('data-view') === name ? 'page' : 'false');
    }
    if (location.hash.slice(1) !== name && app && !app.hidden) history.replaceState(null, '', '#' + name);
    if (before !== name && viewHooks[before] && viewHooks[before].hide) viewHooks[before].hide();
    if (viewHooks[name] && viewHooks[name].show) viewHooks[name].show();
  }

  for (const button of document.querySelectorAll('#views [data-view]')) {
    button.addEventListener('click', () => showView(button.getAttribute('data-view')));
  }
  window.addEventListener('hashchange', () => { if (viewFromHash()) showView(viewFromHash()); });

  const help = $('help');
  $('help-open').addEventListener('click', () => {
    if (typeof help.showModal === 'function') help.showModal();
  });

  // ------------------------------------------------------------------ rendering

  function label(c) {
    const s = c.summary;
    return s.visitor_name || s.email || 'Visitor ' + String(s.visitor || '').slice(0, 6);
  }

  function statusText(c) {
    const s = c.summary.status;
    if (s === 'closed') {
      const why = { abandoned: 'closed: visitor left', moved_to_email: 'closed: moved to email' }[c.summary.reason];
      if (why) return why;
      return c.endedBy === 'visitor' ? 'ended by the visitor' : c.endedBy === 'agent' ? 'ended' : 'closed';
    }
    if (s === 'gone') return c.goneText || 'no longer assigned to you';
    if (s === 'assigned') return 'new';
    if (s === 'queued') return 'waiting';
    return 'active';
  }

  function unread(c) {
    return c.transcript.countFrom('visitor', c.lastRead);
  }

  function renderMessage(message) {
    const role = message.from && ['agent', 'system'].includes(message.from.role) ? message.from.role : 'visitor';
    if (role === 'system') {
      return el('li', { class: 'msg system', 'data-role': 'system', title: formatTime(message.ts) }, message.text);
    }
    const name = message.from && message.from.name;
    const mine = role === 'agent' && (!me || !name || name === me.name);
    const who = mine ? 'You' : role === 'agent' ? name : 'Visitor';
    return el('li', { class: mine ? 'msg mine' : 'msg', 'data-role': role,
                      'data-who': who + ' · ' + formatTime(message.ts) }, message.text);
  }

  function pendingNode(entry) {
    return el('li', { class: 'msg mine', 'data-role': 'agent', 'data-who': 'You · sending…' }, entry.text);
  }

  function renderHeader() {
    agentName.textContent = me ? me.name + ' (' + me.id + ')' : '';
    agentName.title = agentName.textContent; // the header cuts a long name short (console.css)
    shiftToggle.textContent = onShift ? 'On shift' : 'Off shift';
    shiftToggle.setAttribute('aria-pressed', onShift ? 'true' : 'false');
    shiftToggle.title = onShift ? 'You get new chats. Click to stop taking new chats.'
      : 'You get no new chats. Click to start taking chats.';
    shiftToggle.disabled = shiftBusy || !link || !link.ready;
    awayToggle.setAttribute('aria-pressed', away ? 'true' : 'false');
    awayToggle.textContent = away ? 'Away' : 'Available';
    awayToggle.title = away ? 'Away: you keep your chats but get no new ones. Click when you are back.'
      : 'Available for new chats. Click to step away (you keep your chats).';
    awayToggle.disabled = shiftBusy || !onShift || !link || !link.ready;
    for (const node of document.querySelectorAll('[data-admin]')) node.hidden = !isAdmin();
    for (const node of document.querySelectorAll('[data-lead]')) node.hidden = !isLead();
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

  function renderQueue() {
    const items = queue.filter((item) => item && typeof item.conversation === 'string');
    queueCount.textContent = items.length ? String(items.length) : '';
    queueList.replaceChildren();
    if (!items.length) {
      queueList.append(el('li', { class: 'empty' }, 'Nobody is waiting.'));
      return;
    }
    const now = Date.now();
    for (const item of items) {
      const row = el('li', { class: 'queue-item', 'data-conversation': item.conversation, 'data-testid': 'queue-item' });
      const what = el('span', { class: 'what' });
      const queuedAt = Number(item.queued_at) || now;
      what.append(el('span', {}, '#' + item.position + ' · waiting '),
                  el('span', { class: 'wait', 'data-since': queuedAt }, duration(now - queuedAt)));
      const where = pageText(item.page);
      if (where) what.append(el('span', { class: 'where', title: item.page.url || where }, where));
      if (item.presence) what.append(presenceNode(item.presence));
      what.append(el('span', { class: 'preview' }, item.preview || 'No message yet'));
      const accept = el('button', { type: 'button', 'data-testid': 'accept',
                                    'data-conversation': item.conversation }, 'Accept');
      accept.disabled = acceptWanted === item.conversation;
      accept.addEventListener('click', () => acceptChat(item.conversation));
      row.append(what, accept);
      queueList.append(row);
    }
  }

  function renderOffers() {
    offersBox.replaceChildren();
    for (const offer of offers.values()) {
      const from = (offer.from && offer.from.name) || 'A colleague';
      const s = offer.summary || {};
      const box = el('div', { class: 'offer', 'data-testid': 'transfer-offer', 'data-conversation': offer.conversation });
      box.append(el('p', {}, from + ' wants to hand you a chat'),
                 el('p', { class: 'preview' },
                    (s.visitor_name || s.email || 'Visitor ' + String(s.visitor || '').slice(0, 6))
                    + (s.preview ? ' · ' + s.preview : '')));
      if (offer.note && offer.note.text) {
        box.append(el('p', { class: 'note', 'data-testid': 'offer-note' }, offer.note.text));
      }
      const row = el('div', { class: 'row' });
      const yes = el('button', { type: 'button', class: 'accept', 'data-testid': 'offer-accept' }, 'Accept');
      const no = el('button', { type: 'button', 'data-testid': 'offer-decline' }, 'Decline');
      yes.addEventListener('click', () => answerOffer(offer.conversation, true));
      no.addEventListener('click', () => answerOffer(offer.conversation, false));
      yes.disabled = no.disabled = Boolean(offer.answering);
      row.append(yes, no);
      box.append(row);
      offersBox.append(box);
    }
  }

  /** Open chats first, in the order they came; then the finished ones. */
  function order() {
    const all = [...convs.values()];
    return all.filter(isOpen).concat(all.filter((c) => !isOpen(c)));
  }

  function renderConversations() {
    convList.replaceChildren();
    if (!convs.size) convList.append(el('li', { class: 'empty' }, 'No chats yet.'));
    let total = 0;
    order().forEach((c, index) => {
      const count = isOpen(c) ? unread(c) : 0;
      total += count || (isOpen(c) && !c.seen ? 1 : 0);
      const button = el('button', { type: 'button', class: isOpen(c) ? 'conv-item' : 'conv-item closed',
                                    'data-conversation': c.id, 'data-testid': 'conversation',
                                    'aria-current': c.id === selected ? 'true' : 'false',
                                    title: index < 9 ? 'Alt+' + (index + 1) : null });
      const what = el('span', { class: 'what' });
      what.append(el('span', { class: 'who' }, label(c)), el('span', { class: 'state' }, ' · ' + statusText(c)));
      if (isOpen(c) && c.summary.presence) what.append(presenceNode(c.summary.presence));
      what.append(el('span', { class: 'preview' }, c.last || c.summary.preview || 'No message yet'));
      const badge = el('span', { class: 'unread', 'data-testid': 'unread', 'data-count': count,
                                 'aria-label': count + ' unread' }, String(count));
      button.append(el('span', { class: 'key', 'aria-hidden': 'true' }, index < 9 ? String(index + 1) : ''), what, badge);
      button.addEventListener('click', () => select(c.id));
      const row = el('li');
      row.append(button);
      convList.append(row);
    });
    chatsCount.textContent = total ? String(total) : '';
    document.title = total ? '(' + total + ') ' + TITLE : TITLE;
  }

  function renderSelected() {
    const c = selected ? convs.get(selected) : null;
    const ready = Boolean(link && link.ready);
    if (!c) {
      messages.replaceChildren();
      convTitle.textContent = 'Select a chat';
      convClose.hidden = transferOpen.hidden = transcriptLabel.hidden = transcriptSend.hidden = true;
      ratingBox.hidden = true;
      transferBox.hidden = transferState.hidden = true;
      replyInput.disabled = replySend.disabled = true;
      indicator.hide();
      renderContext();
      return;
    }
    if (messages.firstElementChild !== c.transcript.list) messages.replaceChildren(c.transcript.list);
    convTitle.textContent = label(c) + ' · ' + statusText(c);
    if (isOpen(c) && c.summary.presence) convTitle.append(presenceNode(c.summary.presence));
    convClose.hidden = false;
    convClose.textContent = isOpen(c) ? 'End chat' : 'Remove from list';
    transferOpen.hidden = !isOpen(c) || c.summary.status === 'queued';
    transferOpen.disabled = !ready || Boolean(c.transfer);
    transcriptLabel.hidden = !isOpen(c);
    const email = c.summary.email || (c.context && c.context.email);
    transcriptBox.disabled = !email;
    if (!email) transcriptBox.checked = false;
    transcriptText.textContent = email ? 'Email the transcript to ' + email : 'Email the transcript (no email given)';
    transcriptSend.hidden = !email || isOpen(c);  // while open, the box above sends it on closing
    transcriptSend.title = email ? 'Email the whole chat to ' + email : '';
    const rating = c.summary.rating;
    ratingBox.hidden = !rating;
    ratingBox.textContent = rating ? 'Visitor rating: ' + (rating.score === 'up' ? 'good' : 'poor')
      + (rating.comment ? ' — “' + rating.comment + '”' : '') : '';
    if (!isOpen(c)) transferBox.hidden = true;
    transferState.hidden = !c.transfer;
    transferState.textContent = c.transfer ? 'Waiting for ' + c.transfer.name + ' to accept the chat…' : '';
    // Offline too: the outbox keeps the reply and sends it once the connection is back.
    replyInput.disabled = replySend.disabled = !isOpen(c);
    if (!isOpen(c)) indicator.hide();
    renderContext();
  }

  function atBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  }

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  function select(id) {
    const before = selected ? convs.get(selected) : null;
    if (selected !== id) {
      if (typing) typing.stop();
      indicator.hide();
      say('');
      hideSnippets();
      transferBox.hidden = true;
      if (before) { // keep the agent's place: the draft and where they were reading
        before.draft = replyInput.value;
        before.scroll = atBottom() ? null : messages.scrollTop;
      }
    }
    const c = convs.get(id);
    const changed = selected !== id;
    selected = id;
    if (c) c.seen = true;
    renderSelected();
    if (changed && c) {
      replyInput.value = c.draft || '';
      replyCheck();
      if (c.scroll === null || c.scroll === undefined) scrollDown();
      else messages.scrollTop = c.scroll;
      if (!c.context || !c.notesLoaded) loadDetails(c);
    }
    markRead(c);
    renderConversations();
    if (!replyInput.disabled && view === 'chats') replyInput.focus();
  }

  /** Viewing a chat reads it: tell the visitor how far (and make an assigned chat active). */
  function markRead(c) {
    if (!c || c.id !== selected || view !== 'chats' || !isOpen(c) || document.visibilityState !== 'visible'
        || !link) return;
    const top = c.transcript.maxSeq;
    const behind = top > c.lastRead && unread(c) > 0;
    if ((behind || c.summary.status === 'assigned')
        && link.send({ action: 'read', conversation: c.id, seq: top })) {
      c.lastRead = Math.max(c.lastRead, top);
      if (c.summary.status === 'assigned') c.summary.status = 'active';
      renderConversations();
      renderSelected();
    }
  }

  // ------------------------------------------------------------------ the visitor beside the chat

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

  function webLink(url, text) {
    const safe = typeof url === 'string' && /^https?:\/\//i.test(url) ? url : null;
    if (!safe) return el('span', {}, text || url || '');
    return el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer nofollow', title: safe }, text || safe);
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

  function renderNotes(c) {
    const list = $('notes');
    const notes = c.notes || [];
    list.replaceChildren(...(notes.length ? notes.map((n) => {
      const li = el('li', { 'data-testid': 'note' });
      li.append(el('span', { class: 'by' }, ((n.from && n.from.name) || 'Agent') + ' · ' + dateTime(n.ts)),
                document.createTextNode(n.text));
      return li;
    }) : [el('li', { class: 'muted empty-note' }, 'No notes yet. The visitor never sees them.')]));
    const open = isOpen(c) && c.summary.status !== 'gone';
    $('note-input').disabled = $('note-add').disabled = !open;
  }

  function loadDetails(c) {
    if (!link || !isOpen(c)) return;
    link.send({ action: 'context', conversation: c.id, ref: 'context:' + c.id });
    link.send({ action: 'notes', conversation: c.id, ref: 'notes:' + c.id });
  }

  function addNote(c, note) {
    if (!note || typeof note.text !== 'string') return;
    c.notes = c.notes || [];
    const key = (n) => n.ts + '|' + (n.from && n.from.id) + '|' + n.text;
    if (c.notes.some((n) => key(n) === key(note))) return;
    c.notes.push(note);
    c.notes.sort((a, b) => Number(a.ts) - Number(b.ts));
  }

  const noteFrame = () => ({ action: 'note', conversation: selected || '', ref: 'note:' + (selected || '') });
  const noteCheck = lengthCheck($('note-input'), $('note-length'), $('note-error'), 'Note', noteFrame);

  $('note-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const c = selected ? convs.get(selected) : null;
    const input = $('note-input');
    const text = input.value;
    if (!c || !text.trim() || noteCheck(true) < 0) return; // too long: said so, the note stays
    if (!link || !link.send(Object.assign(noteFrame(), { text }))) {
      say(OFFLINE);
      return;
    }
    input.value = '';
    noteCheck();
  });

  // ------------------------------------------------------------------ state

  function upsert(summary) {
    if (!summary || typeof summary.id !== 'string') return null;
    let c = convs.get(summary.id);
    if (!c) {
      const list = el('ol', { 'data-conversation': summary.id });
      c = { id: summary.id, summary: {}, lastRead: 0, endedBy: null, context: null, notes: [], notesLoaded: false,
            transfer: null, draft: '', scroll: null, seen: false, last: '',
            transcript: new Transcript(summary.id, list, renderMessage) };
      convs.set(summary.id, c);
      if (link) for (const entry of link.queued(summary.id)) c.transcript.addPending(entry, pendingNode(entry));
    }
    c.summary = Object.assign({}, c.summary, summary);
    c.lastRead = Math.max(c.lastRead, Number(summary.reads && summary.reads.agent) || 0);
    return c;
  }

  function ended(c, by) {
    c.endedBy = by || c.endedBy;
    c.transfer = null;
    if (link) for (const entry of link.drop(c.id)) failedNode(c, entry, 'not sent: the chat has ended');
    if (c.id === selected) {
      indicator.hide();
      if (typing) typing.stop();
    }
  }

  function failedNode(c, entry, why) {
    const node = c.transcript.removePending(entry);
    if (!node) return;
    node.classList.add('failed');
    node.setAttribute('data-who', 'You · ' + why);
    c.transcript.list.append(node);
  }

  function refreshQueue() {
    if (link && !onShift && document.visibilityState === 'visible') link.send({ action: 'queue' });
  }

  function acceptChat(id) {
    wakeAudio();
    if (!link || !link.send({ action: 'accept', conversation: id, ref: 'accept:' + id })) {
      say(OFFLINE);
      return;
    }
    acceptWanted = id;
    renderQueue();
  }

  function answerOffer(id, accept) {
    const offer = offers.get(id);
    if (!offer || !link || !link.send({ action: 'transfer_answer', conversation: id, accept, ref: 'offer:' + id })) {
      say(OFFLINE);
      return;
    }
    if (accept) {
      offer.answering = true;
      acceptWanted = id;
    } else {
      offers.delete(id);
    }
    renderOffers();
  }

  /** A chat that just became ours: sound, desktop notification, the count in the title. */
  function announceNew(c, how) {
    chime('chat');
    notify(how || 'New chat', label(c) + (c.summary.preview ? ': ' + c.summary.preview : ''), c.id);
  }

  // ------------------------------------------------------------------ protocol

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
    link.send({ action: 'status' }); // what visitors see now (admin.js: the "We're away" banner)
    renderHeader();
    renderQueue();
    renderOffers();
    renderConversations();
    renderSelected();
    if (view !== 'chats' && viewHooks[view] && viewHooks[view].show) viewHooks[view].show();
    if (!allowed(view)) showView('chats');
  }

  function onFrame(frame) {
    const c = typeof frame.conversation === 'string' ? convs.get(frame.conversation) : null;
    switch (frame.type) {
      case 'shift':
        onShift = Boolean(frame.on);
        away = Boolean(frame.away);
        shiftBusy = false;
        if (frame.agent) me = Object.assign({}, me, frame.agent);
        renderHeader();
        if (signingOut && !onShift) signOut('');
        else {
          if (!onShift) link.send({ action: 'queue' });
          link.send({ action: 'status' }); // out of hours a shift change pushes no status: ask
        }
        if (handingBack && !onShift) handBackAll(); // off shift first: nothing comes back to us
        break;
      case 'queue':
        queue = paged(queue, frame, 'items', (i) => i.conversation,
                      (cursor) => link.send({ action: 'queue', cursor }));
        if (acceptWanted && !queue.some((i) => i.conversation === acceptWanted) && !offers.has(acceptWanted)) {
          acceptWanted = null;
        }
        renderQueue();
        break;
      case 'assigned': {
        const known = convs.get(frame.summary && frame.summary.id);
        const wasOpen = isOpen(known);
        const mine = upsert(frame.summary);
        if (!mine) break;
        mine.endedBy = null;
        mine.goneText = '';
        mine.transcript.sync(link, true); // messages written while the chat waited
        const offered = offers.get(mine.id);
        offers.delete(mine.id);
        queue = queue.filter((i) => i.conversation !== mine.id);
        if (!wasOpen) {
          announceNew(mine, offered ? 'Chat transferred to you' : 'New chat');
          loadDetails(mine);
        }
        renderQueue();
        renderOffers();
        if (acceptWanted === mine.id) { // the agent asked for it (accept, transfer): go there
          acceptWanted = null;
          showView('chats');
          select(mine.id);
        } else if (!selected || !isOpen(convs.get(selected))) {
          select(mine.id); // nothing else on screen; the view stays where the agent is
        } else {
          renderConversations(); // never pull the agent away from the chat they are in
        }
        break;
      }
      case 'message':
        if (c && c.transcript.add(frame)) {
          const fromVisitor = frame.from && frame.from.role === 'visitor';
          if (!isSystem(frame)) c.last = frame.text.slice(0, 140); // a holding message is no preview
          if (fromVisitor && !c.summary.preview) c.summary.preview = frame.text.slice(0, 140);
          if (fromVisitor && c.id === selected) indicator.hide();
          c.transcript.watchGap(link);
          if (c.id === selected) {
            if (atBottom() || !fromVisitor) scrollDown();
            markRead(c);
          }
          if (fromVisitor && (c.id !== selected || view !== 'chats' || document.visibilityState !== 'visible')) {
            chime('message');
            notify(label(c), frame.text, c.id);
          }
          renderConversations();
        }
        break;
      case 'messages':
        if (c) {
          const stick = atBottom();
          c.transcript.onMessages(frame, link);
          const items = Array.isArray(frame.items) ? frame.items : [];
          const said = items.filter((m) => !isSystem(m));
          if (said.length) c.last = String(said[said.length - 1].text || '').slice(0, 140);
          if (frame.summary && c.summary.status !== 'gone') {
            c.summary = Object.assign({}, c.summary, frame.summary);
            if (!isOpen(c)) ended(c, null);
          }
          if (c.id === selected) {
            if (stick) scrollDown();
            markRead(c);
          }
          renderConversations();
          renderSelected();
        }
        break;
      case 'presence': { // the visitor left (every tab closed) or came back
        const p = { state: frame.state, since: frame.since };
        if (c) {
          c.summary.presence = p;
          renderConversations();
          if (c.id === selected) renderSelected();
        }
        const item = queue.find((i) => i.conversation === frame.conversation);
        if (item) {
          item.presence = p;
          renderQueue();
        }
        break;
      }
      case 'typing':
        if (c && c.id === selected && frame.role === 'visitor') {
          if (frame.on) indicator.show('Visitor is typing…');
          else indicator.hide();
        }
        break;
      case 'closed': {
        const summary = frame.summary;
        offers.delete(frame.conversation);
        renderOffers();
        if (c) {
          c.summary = Object.assign({}, c.summary, typeof summary === 'object' ? summary : {}, { status: 'closed' });
          ended(c, frame.by);
          renderConversations();
          renderSelected();
        }
        break;
      }
      case 'context':
        if (c) {
          const pages = paged(c.context && frame.after ? c.context.pages || [] : [], frame, 'pages', null,
                              (cursor) => link.send({ action: 'context', conversation: c.id, cursor }));
          c.context = frame.after ? Object.assign({}, c.context, { pages }) : Object.assign({}, frame, { pages });
          if (c.id === selected) renderSelected();
        }
        break;
      case 'page':
        if (c) {
          const page = { url: frame.url, title: frame.title, referrer: frame.referrer, ts: frame.ts };
          c.context = c.context || { pages: [] };
          c.context.page = page;
          c.context.pages = (Array.isArray(c.context.pages) ? c.context.pages : []).concat([page]);
          if (!c.context.referrer && frame.referrer) c.context.referrer = frame.referrer;
          if (c.id === selected) renderContext();
        }
        break;
      case 'notes':
        if (c) {
          if (!frame.after) c.notes = [];
          paged([], frame, 'items', null,
                (cursor) => link.send({ action: 'notes', conversation: c.id, cursor }));
          for (const note of Array.isArray(frame.items) ? frame.items : []) addNote(c, note);
          c.notesLoaded = true;
          if (c.id === selected) renderNotes(c);
        }
        break;
      case 'note':
        if (c) {
          addNote(c, frame);
          if (c.id === selected) renderNotes(c);
        }
        break;
      case 'transfer_offer':
        if (typeof frame.conversation === 'string') {
          offers.set(frame.conversation, frame);
          renderOffers();
          chime('chat');
          notify('Transfer from ' + ((frame.from && frame.from.name) || 'a colleague'),
                 (frame.note && frame.note.text) || (frame.summary && frame.summary.preview) || '', frame.conversation);
        }
        break;
      case 'transfer_pending':
        if (c) {
          c.transfer = { to: frame.to && frame.to.id, name: (frame.to && frame.to.name) || 'your colleague' };
          transferBox.hidden = true;
          transferNote.value = '';
          renderSelected();
        }
        break;
      case 'transferred':
        if (c) {
          c.summary.status = 'gone';
          c.goneText = 'transferred to ' + ((frame.to && frame.to.name) || 'a colleague');
          ended(c, null);
          toast('The chat with ' + label(c) + ' is now with ' + ((frame.to && frame.to.name) || 'your colleague') + '.');
          renderConversations();
          renderSelected();
        }
        break;
      case 'requeued':
        // This console handed the chat back to the line (the visitor's side has it too).
        if (c) {
          c.summary = Object.assign({}, c.summary, frame.summary || {}, { status: 'gone' });
          c.goneText = 'handed back to the line';
          ended(c, null);
          renderConversations();
          renderSelected();
        }
        break;
      case 'by_email':
        if (c) {
          c.summary = Object.assign({}, c.summary, frame.summary || {});
          if (c.id === selected) renderSelected();
          toast(label(c) + ' asked to continue by email: your replies are emailed to ' +
                String(frame.email || 'them') + '.');
        }
        break;
      case 'transfer_declined':
        if (c) {
          const who = c.transfer ? c.transfer.name : frame.by;
          c.transfer = null;
          toast(who + ' declined the chat with ' + label(c) + '; it stays with you.', true);
          renderSelected();
        }
        break;
      case 'snippets':
        snippets = paged(snippets, frame, 'items', (s) => s.shortcut,
                         (cursor) => link.send({ action: 'snippets', cursor }));
        break;
      case 'visitors':
        visitorsAt = Date.now();
        visitorItems = paged(visitorItems, frame, 'items', (v) => v.visitor,
                             (cursor) => link.send({ action: 'visitors', cursor }));
        renderVisitors();
        break;
      case 'invited':
        if (typeof frame.visitor === 'string') {
          invitations.set(frame.id, frame.visitor);
          inviting.delete(frame.visitor);
          invited.add(frame.visitor);
          toast('Invitation sent to visitor ' + frame.visitor.slice(0, 6) + '.');
          renderVisitors();
        }
        break;
      case 'invitation_answer': {
        const who = 'Visitor ' + String(frame.visitor || '').slice(0, 6);
        invited.delete(frame.visitor);
        toast(frame.accepted ? who + ' accepted your invitation: the chat is in your list.'
          : who + ' declined your invitation.', !frame.accepted);
        if (view === 'visitors') pollVisitors();
        break;
      }
      case 'rated':
        if (c) {
          c.summary = Object.assign({}, c.summary, { rating: frame.rating });
          if (c.id === selected) renderSelected();
          toast(label(c) + (frame.rating && frame.rating.score === 'up' ? ' rated the chat good' : ' rated the chat poor'));
        }
        break;
      case 'transcript_queued':
        toast('Transcript on its way to ' + String(frame.email || 'the visitor') + '.');
        break;
      case 'error':
        onError(frame);
        break;
      default:
        for (const fn of handlers[frame.type] || []) fn(frame);
        break;
    }
    if (leaving.open || handingBack) leavingChanged();
  }

  function onError(frame) {
    const ref = typeof frame.ref === 'string' ? frame.ref : '';
    const message = typeof frame.message === 'string' ? frame.message : 'Something went wrong.';
    const [kind, id] = ref.split(':');
    if (kind === 'context' || kind === 'notes') return; // details are a bonus; the chat works without
    if (kind === 'accept') {
      acceptWanted = null;
      renderQueue();
    }
    if (kind === 'shift' || kind === 'away') {
      shiftBusy = false;
      renderHeader();
    }
    if (kind === 'offer') {
      offers.delete(id);
      acceptWanted = null;
      renderOffers();
      toast(message, true);
      return;
    }
    if (kind === 'transfer') {
      transferError.textContent = message;
      transferSend.disabled = false;
      return;
    }
    if (kind === 'handback') {
      leavingError.textContent = message;
      return;
    }
    if (kind === 'invite') {
      inviting.delete(id);
      renderVisitors();
      toast(message, true);
      return;
    }
    if (kind === 'admin') {
      for (const fn of handlers.error || []) fn(frame);
      return;
    }
    say(message);
  }

  function onAck(entry, ack) {
    const c = convs.get(entry.conversation);
    if (!c) return;
    c.transcript.removePending(entry);
    c.transcript.add({ type: 'message', conversation: c.id, seq: ack.seq, id: entry.id,
                       from: { role: 'agent', name: me ? me.name : null }, text: entry.text, ts: ack.ts });
    c.last = entry.text.slice(0, 140);
    c.transcript.watchGap(link);
    if (c.id === selected) scrollDown();
    renderConversations();
  }

  function onFailed(entry, error) {
    const c = convs.get(entry.conversation);
    if (!c) return;
    failedNode(c, entry, 'not sent: ' + (error.message || error.code));
    if (error.code === 'closed') {
      c.summary.status = 'closed';
      ended(c, null);
      renderConversations();
      renderSelected();
    }
  }

  function onState(state, retryMs) {
    if (state === 'online') connState.textContent = '';
    else if (state === 'offline') {
      connState.textContent = 'Connection lost. Reconnecting'
        + (retryMs ? ' in ' + Math.max(1, Math.round(retryMs / 1000)) + ' s…' : '…');
    }
    renderHeader();
    renderSelected();
  }

  // ------------------------------------------------------------------ header events

  shiftToggle.addEventListener('click', () => {
    if (onShift && askBeforeLeaving('shift')) return; // open chats: hand back, transfer or keep
    if (!onShift) askPermission(); // a click: the moment browsers let us ask
    if (!link || !link.send({ action: 'shift', on: !onShift, ref: 'shift' })) return;
    shiftBusy = true;
    renderHeader();
  });

  awayToggle.addEventListener('click', () => {
    if (!link || !link.send({ action: 'away', on: !away, ref: 'away' })) return;
    shiftBusy = true;
    renderHeader();
  });

  // ------------------------------------------------------------------ leaving with open chats
  //
  // Going off shift or signing out while holding chats asks first: each chat can be
  // transferred (the usual flow) or handed back to the line (`handback`: it goes to the
  // front, and its visitor is told, with the offer to go on by email if nobody is left).
  // "Hand all back" goes off shift first, so the line cannot hand a chat straight back to us,
  // then hands every chat back and, once the server has taken them all, signs out (or stays
  // signed in, off shift). Closing the tab with open chats asks the browser to warn.

  const leaving = $('leaving');
  const leavingList = $('leaving-list');
  const leavingAll = $('leaving-all');
  const leavingError = $('leaving-error');
  const leavingKeep = el('button', { type: 'button', class: 'ghost', 'data-testid': 'leaving-keep' },
                         'Go off shift, keep them');
  leavingAll.after(leavingKeep);
  let leavingFor = 'signout'; // what the dialog was opened for: 'signout' or 'shift'
  let handingBack = null; // set while "hand all back" runs: what to do once it is done
  let handBackTimer = null;

  const openChats = () => [...convs.values()].filter(isOpen);

  /** Opens the dialog when chats are open (true), or says there is nothing to ask (false). */
  function askBeforeLeaving(mode) {
    if (!openChats().length) return false;
    leavingFor = mode;
    leavingAll.textContent = mode === 'signout' ? 'Hand all back and sign out' : 'Hand all back and go off shift';
    leavingKeep.hidden = mode !== 'shift'; // off shift, an agent may finish their chats
    leavingError.textContent = '';
    renderLeaving();
    if (!leaving.open) leaving.showModal();
    return true;
  }

  function renderLeaving() {
    leavingList.replaceChildren(...openChats().map((c) => {
      const name = el('span', {}, label(c)); // visitor text: textContent only
      const transfer = el('button', { type: 'button', class: 'ghost', 'data-testid': 'leaving-transfer' },
                          'Transfer');
      transfer.addEventListener('click', () => {
        leaving.close();
        showView('chats');
        select(c.id);
        transferOpen.click();
      });
      const back = el('button', { type: 'button', 'data-testid': 'leaving-handback' }, 'Hand back to the line');
      back.addEventListener('click', () => {
        if (!link || !link.send({ action: 'handback', conversation: c.id, ref: 'handback:' + c.id })) {
          leavingError.textContent = OFFLINE;
        }
      });
      const row = el('li', { 'data-conversation': c.id });
      row.append(name, transfer, back);
      return row;
    }));
  }

  /** A frame may have ended a chat: redraw the list, and finish when none is left. */
  function leavingChanged() {
    if (openChats().length) {
      if (leaving.open) renderLeaving();
      return;
    }
    const then = handingBack || (leaving.open ? 'stay' : null);
    handingBack = null;
    clearTimeout(handBackTimer);
    if (leaving.open) leaving.close();
    if (then === 'signout') signOut('');
    else if (then === 'shift' && onShift && link) link.send({ action: 'shift', on: false, ref: 'shift' });
  }

  function handBackAll() {
    for (const c of openChats()) link.send({ action: 'handback', conversation: c.id, ref: 'handback:' + c.id });
    clearTimeout(handBackTimer);
    handBackTimer = setTimeout(() => { // a chat that did not go (an error says why): stay
      if (handingBack) {
        handingBack = null;
        leavingError.textContent = leavingError.textContent || 'Some chats could not be handed back; try again.';
        renderLeaving();
      }
    }, 8000);
  }

  leavingAll.addEventListener('click', () => {
    if (!link) {
      leavingError.textContent = OFFLINE;
      return;
    }
    leavingError.textContent = '';
    handingBack = leavingFor;
    if (onShift) link.send({ action: 'shift', on: false, ref: 'shift' }); // then handBackAll
    else handBackAll();
  });

  leavingKeep.addEventListener('click', () => {
    leaving.close();
    if (link && link.send({ action: 'shift', on: false, ref: 'shift' })) {
      shiftBusy = true;
      renderHeader();
    }
  });

  $('leaving-cancel').addEventListener('click', () => {
    handingBack = null;
    leaving.close();
  });

  window.addEventListener('beforeunload', (event) => {
    if (!token || !openChats().length) return;
    event.preventDefault(); // the browser asks "Leave site?": visitors are waiting on us
    event.returnValue = '';
  });

  // ------------------------------------------------------------------ conversation events

  transcriptSend.addEventListener('click', () => {
    const c = selected ? convs.get(selected) : null;
    if (!c) return;
    // One id per click: a resend of this request mails once, another click mails again.
    const id = 'c' + Math.random().toString(36).slice(2, 12);
    if (!link.send({ action: 'transcript', conversation: c.id, id, ref: 'transcript:' + c.id })) {
      say(OFFLINE);
    }
  });

  convClose.addEventListener('click', () => {
    const c = selected ? convs.get(selected) : null;
    if (!c) return;
    if (isOpen(c)) {
      const frame = { action: 'close', conversation: c.id, ref: 'close:' + c.id };
      if (transcriptBox.checked && !transcriptBox.disabled) frame.transcript = true;
      if (!link.send(frame)) say(OFFLINE);
      transcriptBox.checked = false;
      return;
    }
    convs.delete(c.id);
    const next = order()[0];
    selected = null;
    if (next) select(next.id);
    else {
      renderConversations();
      renderSelected();
    }
  });

  transferOpen.addEventListener('click', async () => {
    transferError.textContent = '';
    transferBox.hidden = false;
    transferSend.disabled = true;
    transferTo.replaceChildren(el('option', { value: '' }, 'Loading the team…'));
    const answer = await api('GET', '/sites/' + encodeURIComponent(site) + '/agents');
    if (!answer.ok) {
      transferTo.replaceChildren();
      transferError.textContent = answer.message;
      return;
    }
    const team = (Array.isArray(answer.body) ? answer.body : (answer.body && answer.body.agents) || [])
      .filter((a) => a && a.id !== (me && me.id) && !a.disabled);
    const options = team.map((a) => {
      const free = a.on_shift && a.online && Number(a.load) < Number(a.max_chats);
      const state = !a.on_shift ? 'off shift' : !a.online ? 'offline' : a.away ? 'away' :
        Number(a.load) >= Number(a.max_chats) ? 'full' : 'available';
      return el('option', { value: a.id, disabled: !free, 'data-agent': a.id },
                a.name + ' — ' + state + ' (' + a.load + '/' + a.max_chats + ' chats)');
    });
    options.sort((x, y) => Number(x.disabled) - Number(y.disabled));
    transferTo.replaceChildren(...options);
    const first = options.find((o) => !o.disabled);
    if (first) transferTo.value = first.value;
    else transferError.textContent = 'Nobody else is on shift with room for a chat.';
    transferSend.disabled = !first;
    transferNote.focus();
  });

  $('transfer-cancel').addEventListener('click', () => {
    transferBox.hidden = true;
    replyInput.focus();
  });

  const transferFrame = () => ({ action: 'transfer', conversation: selected || '', to: transferTo.value,
                                 ref: 'transfer:' + (selected || '') });
  const transferCheck = lengthCheck(transferNote, $('transfer-length'), transferError, 'Note', transferFrame,
                                    'note');

  transferBox.addEventListener('submit', (event) => {
    event.preventDefault();
    const c = selected ? convs.get(selected) : null;
    if (!c || !transferTo.value) return;
    const frame = transferFrame();
    if (transferNote.value.trim()) frame.note = transferNote.value;
    transferError.textContent = '';
    if (transferCheck(true) < 0) return; // too long: said so, the note stays
    if (!link || !link.send(frame)) {
      transferError.textContent = OFFLINE;
      return;
    }
    transferSend.disabled = true;
  });

  replyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const c = selected ? convs.get(selected) : null;
    const text = replyInput.value;
    if (!c || !isOpen(c) || !text.trim()) return;
    if (replyCheck(true) < 0) return; // too long: said so; the text stays, nothing is sent
    const entry = link.post(c.id, text);
    if (!entry) return;
    c.transcript.addPending(entry, pendingNode(entry));
    replyInput.value = '';
    replyCheck();
    c.draft = '';
    hideSnippets();
    typing.stop();
    scrollDown();
  });

  replyInput.addEventListener('keydown', (event) => {
    if (!snippetMenu.hidden && menuItems.length) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        menuActive = (menuActive + (event.key === 'ArrowDown' ? 1 : -1) + menuItems.length) % menuItems.length;
        renderSnippetMenu();
        return;
      }
      if ((event.key === 'Tab' && !event.shiftKey) || (event.key === 'Enter' && !event.shiftKey && !event.isComposing)) {
        event.preventDefault();
        insertSnippet(menuItems[menuActive]);
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        menuDismissed = replyInput.value;
        hideSnippets();
        return;
      }
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      replyForm.requestSubmit();
    }
  });

  replyInput.addEventListener('input', () => {
    if (selected && replyInput.value.trim()) typing.input(selected);
    else if (typing) typing.stop();
    updateSnippets();
  });
  replyInput.addEventListener('blur', () => setTimeout(() => {
    if (document.activeElement !== replyInput) hideSnippets();
  }, 150));

  // ------------------------------------------------------------------ snippets

  let menuItems = [];
  let menuActive = 0;
  let menuAt = null; // {start, end} of the "/shortcut" being typed
  let menuDismissed = null;

  function snippetQuery() {
    const end = replyInput.selectionStart;
    if (end !== replyInput.selectionEnd) return null;
    const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(replyInput.value.slice(0, end));
    return match ? { start: end - match[2].length - 1, end, text: match[2].toLowerCase() } : null;
  }

  function updateSnippets() {
    const query = snippetQuery();
    if (!query || !snippets.length || replyInput.value === menuDismissed) {
      hideSnippets();
      return;
    }
    menuDismissed = null;
    const starts = snippets.filter((s) => s.shortcut.startsWith(query.text));
    const contains = query.text ? snippets.filter((s) => !s.shortcut.startsWith(query.text)
      && (s.shortcut.includes(query.text) || s.text.toLowerCase().includes(query.text))) : [];
    menuItems = starts.concat(contains).slice(0, 8);
    menuAt = query;
    menuActive = 0;
    if (!menuItems.length) {
      hideSnippets();
      return;
    }
    renderSnippetMenu();
  }

  function renderSnippetMenu() {
    snippetMenu.replaceChildren(...menuItems.map((s, i) => {
      const li = el('li', { role: 'option', id: 'snippet-' + i, 'aria-selected': i === menuActive ? 'true' : 'false',
                            'data-shortcut': s.shortcut, 'data-testid': 'snippet' });
      li.append(el('span', { class: 'sc' }, '/' + s.shortcut), el('span', { class: 'tx' }, s.text));
      li.addEventListener('mousedown', (event) => {
        event.preventDefault(); // keep the focus in the reply box
        insertSnippet(s);
      });
      return li;
    }));
    snippetMenu.hidden = false;
    replyInput.setAttribute('aria-activedescendant', 'snippet-' + menuActive);
  }

  function hideSnippets() {
    snippetMenu.hidden = true;
    menuItems = [];
    replyInput.removeAttribute('aria-activedescendant');
  }

  function insertSnippet(snippet) {
    if (!snippet || !menuAt) return;
    const value = replyInput.value;
    replyInput.value = value.slice(0, menuAt.start) + snippet.text + value.slice(menuAt.end);
    const caret = menuAt.start + snippet.text.length;
    replyInput.setSelectionRange(caret, caret);
    hideSnippets();
    replyCheck();
    replyInput.focus();
    if (selected) typing.input(selected);
  }

  // ------------------------------------------------------------------ keyboard shortcuts

  /** Alt+ArrowDown/Up: next/previous chat; Alt+1..9: that chat; Alt+PageDown: next unread.
   * Alt only, by physical key (event.code), and nothing else is taken from typing. */
  document.addEventListener('keydown', (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey || !me || app.hidden) return;
    const list = order();
    if (!list.length) return;
    const at = list.findIndex((c) => c.id === selected);
    let target = null;
    if (event.code === 'ArrowDown' || event.code === 'ArrowUp') {
      const step = event.code === 'ArrowDown' ? 1 : -1;
      target = list[at < 0 ? 0 : (at + step + list.length) % list.length];
    } else if (/^Digit[1-9]$/.test(event.code) && !event.shiftKey) {
      target = list[Number(event.code.slice(5)) - 1];
    } else if (event.code === 'PageDown') {
      const rotated = list.slice(at + 1).concat(list.slice(0, at + 1));
      target = rotated.find((c) => isOpen(c) && unread(c) > 0);
    }
    if (!target) return;
    event.preventDefault();
    if (view !== 'chats') showView('chats');
    select(target.id);
  });

  document.addEventListener('visibilitychange', () => {
    if (selected) markRead(convs.get(selected));
    refreshQueue();
  });
  window.addEventListener('focus', refreshQueue);

  // ------------------------------------------------------------------ live visitors

  const visitorsBody = $('visitors-list');
  const inviteText = $('invite-text');
  let visitorItems = [];
  let visitorsAt = 0;
  const invitations = new Map(); // invitation id -> visitor
  const inviting = new Set(); // visitors with an invite on its way
  const invited = new Set(); // visitors we invited, not answered yet
  let visitorsTimer = null;

  function pollVisitors() {
    if (link) link.send({ action: 'visitors', ref: 'visitors' });
  }

  function renderVisitors() {
    $('visitors-count').textContent = visitorItems.length ? String(visitorItems.length) : '';
    if (!visitorItems.length) {
      const cell = el('td', { colspan: 6, class: 'muted' }, 'Nobody is browsing the site right now.');
      const row = el('tr');
      row.append(cell);
      visitorsBody.replaceChildren(row);
      return;
    }
    const now = Date.now();
    visitorsBody.replaceChildren(...visitorItems.map((v) => {
      const row = el('tr', { 'data-visitor': v.visitor, 'data-testid': 'visitor-row' });
      const who = el('td');
      who.append(document.createTextNode('Visitor ' + String(v.visitor).slice(0, 6)));
      if (v.chatting) who.append(el('span', { class: 'tag on' }, 'chatting'));
      if (v.invited || invited.has(v.visitor)) who.append(el('span', { class: 'tag warn' }, 'invited'));
      const page = el('td');
      if (v.page) page.append(webLink(v.page.url, v.page.title || v.page.url));
      else page.textContent = '—';
      const onPage = el('td', { class: 'num' });
      if (v.page && v.on_page_ms !== null && v.on_page_ms !== undefined) {
        const since = visitorsAt - Number(v.on_page_ms);
        onPage.append(el('span', { 'data-since': since }, duration(now - since)));
      }
      const pages = Array.isArray(v.pages) ? v.pages : [];
      const pagesCell = el('td', { class: 'num', title: pages.map((p) => p.title || p.url).join('\n') },
                           String(v.page_count || pages.length));
      const onSite = el('td', { class: 'num' });
      if (v.since) onSite.append(el('span', { 'data-since': Number(v.since) }, duration(now - Number(v.since))));
      const action = el('td');
      const busy = v.chatting || v.invited || invited.has(v.visitor) || inviting.has(v.visitor);
      const button = el('button', { type: 'button', 'data-testid': 'invite', 'data-visitor': v.visitor },
                        v.chatting ? 'Chatting' : busy ? 'Invited' : 'Invite');
      button.disabled = busy;
      button.addEventListener('click', () => invite(v.visitor));
      action.append(button);
      row.append(who, page, onPage, pagesCell, onSite, action);
      return row;
    }));
  }

  function invite(visitor) {
    const text = inviteText.value.trim() || 'Can I help you?';
    if (!link || !link.send({ action: 'invite', visitor, text: text.slice(0, 300), ref: 'invite:' + visitor })) {
      toast(OFFLINE, true);
      return;
    }
    inviting.add(visitor);
    renderVisitors();
  }

  viewHooks.visitors = {
    show() {
      pollVisitors();
      clearInterval(visitorsTimer);
      visitorsTimer = setInterval(() => { if (document.visibilityState === 'visible') pollVisitors(); }, 10000);
    },
    hide() {
      clearInterval(visitorsTimer);
      visitorsTimer = null;
    },
  };
  viewHooks.chats = {
    show() {
      const c = selected ? convs.get(selected) : null;
      if (c) markRead(c);
    },
  };

  // ------------------------------------------------------------------ for admin.js

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

  window.CtcConsole = {
    api,
    download,
    el,
    toast,
    duration,
    dateTime,
    webLink,
    send: (frame) => Boolean(link && link.send(frame)),
    on(type, fn) {
      (handlers[type] = handlers[type] || []).push(fn);
    },
    onView(name, hooks) {
      viewHooks[name] = hooks;
    },
    me: () => me,
    site: () => site,
    isAdmin,
    isLead,
    view: () => view,
    setSnippets(list) {
      if (Array.isArray(list)) snippets = list;
    },
  };

  if (token) startConsole();
  else showLogin('');
})();
