/* The agent console: sign in, shift on/off, the waiting queue, my chats, replies
 * (uses /widget/chatlink.js). The agent token lives in sessionStorage ("ctc.agent.token"): closing
 * the tab signs out. Everything people wrote is rendered with textContent.
 */
(function () {
  'use strict';

  const { Link, Transcript, Typing, TypingIndicator, el, storage, apiUrl,
          formatTime, MAX_TEXT_CHARS } = window.ChatLink;

  const TOKEN_KEY = 'ctc.agent.token';
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
  const signOutButton = $('sign-out');
  const queueList = $('queue');
  const convList = $('conversations');
  const convTitle = $('conv-title');
  const convClose = $('conv-close');
  const messages = $('messages');
  const notice = $('notice');
  const replyForm = $('reply-form');
  const replyInput = $('reply-input');
  const replySend = $('reply-send');
  const indicator = new TypingIndicator($('typing'));

  let token = session.get(TOKEN_KEY);
  let link = null;
  let typing = null;
  let me = null; // the agent, as the server describes them
  let onShift = false;
  let shiftBusy = false;
  let queue = [];
  const convs = new Map(); // conversation id -> {id, summary, transcript, lastRead, endedBy}
  let selected = null;
  let acceptWanted = null;
  let signingOut = false;
  let timers = [];

  const OPEN = new Set(['queued', 'assigned', 'active']);
  const isOpen = (c) => Boolean(c) && OPEN.has(c.summary.status);

  function say(text) {
    notice.textContent = text || '';
  }

  // ------------------------------------------------------------------ sign-in

  function showLogin(message) {
    app.hidden = true;
    loginSection.hidden = false;
    loginError.textContent = message || '';
    loginAgent.focus();
  }

  loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    loginError.textContent = '';
    loginSubmit.disabled = true;
    try {
      const response = await fetch(apiUrl('/auth/login'), {
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
        loginError.textContent = typeof body.Message === 'string' ? body.Message
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
    link = new Link({
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
    timers.push(setInterval(renderQueue, 30000)); // waiting times
    // Off shift the server pushes no queue updates: ask now and then, and on coming back.
    timers.push(setInterval(refreshQueue, 10000));
  }

  function signOut(message) {
    if (link) link.stop();
    link = null;
    for (const t of timers) clearInterval(t);
    timers = [];
    token = null;
    session.set(TOKEN_KEY, null);
    me = null;
    onShift = false;
    queue = [];
    convs.clear();
    selected = null;
    signingOut = false;
    queueList.replaceChildren();
    convList.replaceChildren();
    messages.replaceChildren();
    indicator.hide();
    say('');
    document.title = 'Agent console';
    showLogin(message);
  }

  signOutButton.addEventListener('click', () => {
    // Going off shift first hands nothing new to us; open chats stay ours until closed.
    if (onShift && link && link.send({ action: 'shift', on: false })) {
      signingOut = true;
      setTimeout(() => { if (signingOut) signOut(''); }, 1500);
    } else {
      signOut('');
    }
  });

  // ------------------------------------------------------------------ rendering

  function label(c) {
    return 'Visitor ' + String(c.summary.visitor || '').slice(0, 6);
  }

  function statusText(c) {
    const s = c.summary.status;
    if (s === 'closed') {
      return c.endedBy === 'visitor' ? 'ended by the visitor' : c.endedBy === 'agent' ? 'ended' : 'closed';
    }
    if (s === 'gone') return 'no longer assigned to you';
    return s;
  }

  function unread(c) {
    return c.transcript.countFrom('visitor', c.lastRead);
  }

  function renderMessage(message) {
    const role = message.from && message.from.role === 'agent' ? 'agent' : 'visitor';
    const name = message.from && message.from.name;
    const mine = role === 'agent' && (!me || !name || name === me.name);
    const who = mine ? 'You' : role === 'agent' ? name : 'Visitor';
    return el('li', { class: mine ? 'msg mine' : 'msg', 'data-role': role, 'data-who': who,
                      title: formatTime(message.ts) }, message.text);
  }

  function pendingNode(entry) {
    return el('li', { class: 'msg mine', 'data-role': 'agent', 'data-who': 'You · sending…' }, entry.text);
  }

  function renderHeader() {
    agentName.textContent = me ? me.name + ' (' + me.id + ')' : '';
    shiftToggle.textContent = 'On shift';
    shiftToggle.setAttribute('aria-pressed', onShift ? 'true' : 'false');
    shiftToggle.title = onShift ? 'You get new chats. Click to stop taking new chats.'
      : 'You get no new chats. Click to start taking chats.';
    shiftToggle.disabled = shiftBusy || !link || !link.ready;
  }

  function waitedFor(queuedAt) {
    const minutes = Math.floor((Date.now() - Number(queuedAt)) / 60000);
    if (!Number.isFinite(minutes) || minutes < 1) return 'just now';
    return minutes < 60 ? minutes + ' min' : Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min';
  }

  function renderQueue() {
    const items = queue.filter((item) => item && typeof item.conversation === 'string');
    queueList.replaceChildren();
    if (!items.length) {
      queueList.append(el('li', { class: 'empty' }, 'Nobody is waiting.'));
      return;
    }
    for (const item of items) {
      const row = el('li', { class: 'queue-item', 'data-conversation': item.conversation });
      const what = el('span', { class: 'what' }, '#' + item.position + ' · waiting ' + waitedFor(item.queued_at));
      what.append(el('span', { class: 'preview' }, item.preview || 'No message yet'));
      const accept = el('button', { type: 'button', 'data-testid': 'accept',
                                    'data-conversation': item.conversation }, 'Accept');
      accept.disabled = acceptWanted === item.conversation;
      accept.addEventListener('click', () => acceptChat(item.conversation));
      row.append(what, accept);
      queueList.append(row);
    }
  }

  function renderConversations() {
    convList.replaceChildren();
    if (!convs.size) convList.append(el('li', { class: 'empty' }, 'No chats yet.'));
    let total = 0;
    for (const c of convs.values()) {
      const count = isOpen(c) ? unread(c) : 0;
      total += count;
      const button = el('button', { type: 'button', class: isOpen(c) ? 'conv-item' : 'conv-item closed',
                                    'data-conversation': c.id, 'data-testid': 'conversation',
                                    'aria-current': c.id === selected ? 'true' : 'false' });
      const what = el('span', { class: 'what' }, label(c) + ' · ' + statusText(c));
      what.append(el('span', { class: 'preview' }, c.summary.preview || 'No message yet'));
      const badge = el('span', { class: 'unread', 'data-testid': 'unread', 'data-count': count,
                                 'aria-label': count + ' unread' }, String(count));
      button.append(what, badge);
      button.addEventListener('click', () => select(c.id));
      const row = el('li');
      row.append(button);
      convList.append(row);
    }
    document.title = total ? '(' + total + ') Agent console' : 'Agent console';
  }

  function renderSelected() {
    const c = selected ? convs.get(selected) : null;
    if (!c) {
      messages.replaceChildren();
      convTitle.textContent = 'Select a chat';
      convClose.hidden = true;
      replyInput.disabled = replySend.disabled = true;
      indicator.hide();
      return;
    }
    if (messages.firstElementChild !== c.transcript.list) messages.replaceChildren(c.transcript.list);
    convTitle.textContent = label(c) + ' · ' + statusText(c);
    convClose.hidden = false;
    convClose.textContent = isOpen(c) ? 'End chat' : 'Remove from list';
    replyInput.disabled = replySend.disabled = !isOpen(c) || !link || !link.ready;
    if (!isOpen(c)) indicator.hide();
  }

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  function select(id) {
    if (selected !== id) {
      if (typing) typing.stop();
      indicator.hide();
      say('');
    }
    selected = id;
    renderSelected();
    markRead(convs.get(id));
    renderConversations();
    scrollDown();
    if (!replyInput.disabled) replyInput.focus();
  }

  /** Viewing a chat reads it: tell the visitor how far (and make an assigned chat active). */
  function markRead(c) {
    if (!c || c.id !== selected || !isOpen(c) || document.visibilityState !== 'visible' || !link) return;
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

  // ------------------------------------------------------------------ state

  function upsert(summary) {
    if (!summary || typeof summary.id !== 'string') return null;
    let c = convs.get(summary.id);
    if (!c) {
      const list = el('ol', { 'data-conversation': summary.id });
      c = { id: summary.id, summary: {}, lastRead: 0, endedBy: null,
            transcript: new Transcript(summary.id, list, renderMessage) };
      convs.set(summary.id, c);
      for (const entry of link.queued(summary.id)) c.transcript.addPending(entry, pendingNode(entry));
    }
    c.summary = Object.assign({}, c.summary, summary);
    c.lastRead = Math.max(c.lastRead, Number(summary.reads && summary.reads.agent) || 0);
    return c;
  }

  function ended(c, by) {
    c.endedBy = by || c.endedBy;
    for (const entry of link.drop(c.id)) failedNode(c, entry, 'not sent: the chat has ended');
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
    if (!link || !link.send({ action: 'accept', conversation: id, ref: 'accept:' + id })) {
      say("You're offline; try again when the connection is back.");
      return;
    }
    acceptWanted = id;
    renderQueue();
  }

  // ------------------------------------------------------------------ protocol

  function onWelcome(welcome) {
    if (typeof welcome.token === 'string') {
      token = welcome.token; // a fresh expiry
      session.set(TOKEN_KEY, token);
    }
    me = welcome.agent || me;
    onShift = Boolean(me && me.on_shift);
    shiftBusy = false;
    queue = Array.isArray(welcome.queue) ? welcome.queue : [];
    const current = new Set();
    for (const summary of welcome.conversations || []) {
      const c = upsert(summary);
      if (c) current.add(c.id);
    }
    for (const c of convs.values()) {
      if (!current.has(c.id) && isOpen(c)) { // closed or handed back while we were away
        c.summary.status = 'gone';
        ended(c, null);
      }
      if (isOpen(c)) c.transcript.sync(link, true);
    }
    renderHeader();
    renderQueue();
    renderConversations();
    renderSelected();
  }

  function onFrame(frame) {
    const c = typeof frame.conversation === 'string' ? convs.get(frame.conversation) : null;
    switch (frame.type) {
      case 'shift':
        onShift = Boolean(frame.on);
        shiftBusy = false;
        if (frame.agent) me = frame.agent;
        renderHeader();
        if (signingOut && !onShift) signOut('');
        else if (!onShift) link.send({ action: 'queue' });
        break;
      case 'queue':
        queue = Array.isArray(frame.items) ? frame.items : [];
        if (acceptWanted && !queue.some((i) => i.conversation === acceptWanted)) acceptWanted = null;
        renderQueue();
        break;
      case 'assigned': {
        const mine = upsert(frame.summary);
        if (!mine) break;
        mine.endedBy = null;
        mine.transcript.sync(link, true); // messages written while the chat waited
        queue = queue.filter((i) => i.conversation !== mine.id);
        renderQueue();
        renderConversations();
        if (acceptWanted === mine.id || !selected) {
          acceptWanted = null;
          select(mine.id);
        }
        break;
      }
      case 'message':
        if (c && c.transcript.add(frame)) {
          const fromVisitor = frame.from && frame.from.role === 'visitor';
          if (fromVisitor && !c.summary.preview) c.summary.preview = frame.text.slice(0, 140);
          if (fromVisitor && c.id === selected) indicator.hide();
          c.transcript.watchGap(link);
          if (c.id === selected) {
            scrollDown();
            markRead(c);
          }
          renderConversations();
        }
        break;
      case 'messages':
        if (c) {
          c.transcript.onMessages(frame, link);
          if (frame.summary && c.summary.status !== 'gone') {
            c.summary = Object.assign({}, c.summary, frame.summary);
            if (!isOpen(c)) ended(c, null);
          }
          if (c.id === selected) {
            scrollDown();
            markRead(c);
          }
          renderConversations();
          renderSelected();
        }
        break;
      case 'typing':
        if (c && c.id === selected && frame.role === 'visitor') {
          if (frame.on) indicator.show('Visitor is typing…');
          else indicator.hide();
        }
        break;
      case 'closed': {
        const summary = frame.summary;
        const closed = convs.get(frame.conversation);
        if (closed) {
          closed.summary = Object.assign({}, closed.summary, typeof summary === 'object' ? summary : {},
                                         { status: 'closed' });
          ended(closed, frame.by);
          renderConversations();
          renderSelected();
        }
        break;
      }
      case 'error':
        if (typeof frame.ref === 'string' && frame.ref.startsWith('accept:')) {
          acceptWanted = null;
          renderQueue();
        }
        if (typeof frame.ref === 'string' && frame.ref.startsWith('shift')) shiftBusy = false;
        say(typeof frame.message === 'string' ? frame.message : 'Something went wrong.');
        renderHeader();
        break;
      default:
        break;
    }
  }

  function onAck(entry, ack) {
    const c = convs.get(entry.conversation);
    if (!c) return;
    c.transcript.removePending(entry);
    c.transcript.add({ type: 'message', conversation: c.id, seq: ack.seq, id: entry.id,
                       from: { role: 'agent', name: me ? me.name : null }, text: entry.text, ts: ack.ts });
    c.transcript.watchGap(link);
    if (c.id === selected) scrollDown();
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

  // ------------------------------------------------------------------ events

  shiftToggle.addEventListener('click', () => {
    if (!link || !link.send({ action: 'shift', on: !onShift, ref: 'shift' })) return;
    shiftBusy = true;
    renderHeader();
  });

  convClose.addEventListener('click', () => {
    const c = selected ? convs.get(selected) : null;
    if (!c) return;
    if (isOpen(c)) {
      if (!link.send({ action: 'close', conversation: c.id, ref: 'close:' + c.id })) {
        say("You're offline; try again when the connection is back.");
      }
      return;
    }
    convs.delete(c.id);
    selected = null;
    renderConversations();
    renderSelected();
  });

  replyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const c = selected ? convs.get(selected) : null;
    const text = replyInput.value;
    if (!c || !isOpen(c) || !text.trim()) return;
    if (text.length > MAX_TEXT_CHARS) {
      say('Messages can be at most ' + MAX_TEXT_CHARS + ' characters.');
      return;
    }
    const entry = link.post(c.id, text);
    c.transcript.addPending(entry, pendingNode(entry));
    replyInput.value = '';
    typing.stop();
    scrollDown();
  });

  replyInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      replyForm.requestSubmit();
    }
  });

  replyInput.addEventListener('input', () => {
    if (selected && replyInput.value.trim()) typing.input(selected);
    else if (typing) typing.stop();
  });

  document.addEventListener('visibilitychange', () => {
    if (selected) markRead(convs.get(selected));
    refreshQueue();
  });
  window.addEventListener('focus', refreshQueue);

  if (token) startConsole();
  else showLogin('');
})();
