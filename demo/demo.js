/* The demo page's chat panel: the visitor side of the protocol (uses /chatlink.js).
 *
 * Stored state: localStorage "ctc.token" (visitor token, saved once a chat is started and
 * refreshed on every welcome) and "ctc.conv" (the open conversation, so a reload resumes it).
 * Everything people wrote is rendered with textContent.
 */
(function () {
  'use strict';

  const { Link, Transcript, Typing, TypingIndicator, el, storage, formatTime,
          MAX_TEXT_CHARS } = window.ChatLink;

  const TOKEN_KEY = 'ctc.token';
  const CONV_KEY = 'ctc.conv';
  const local = storage('local');

  const $ = (id) => document.getElementById(id);
  const openButton = $('chat-open');
  const panel = $('chat-panel');
  const statusLine = $('chat-status');
  const connLine = $('chat-conn');
  const log = $('chat-log');
  const form = $('chat-form');
  const input = $('chat-input');
  const sendButton = $('chat-send');
  const closeButton = $('chat-close');
  const hideButton = $('chat-hide');
  const restartButton = $('chat-restart');
  const indicator = new TypingIndicator($('chat-typing'));

  const siteParam = new URLSearchParams(window.location.search).get('site');
  const site = /^[A-Za-z0-9_-]{1,40}$/.test(siteParam || '') ? siteParam : 'default';

  let token = storedToken();
  let usingToken = false; // the current connection attempt presented `token`
  let welcomeToken = null; // from the latest welcome; stored once a chat is started
  let conv = null; // the conversation summary (plus `position` while queued)
  let transcript = null;
  let lastRead = 0;
  let wantChat = false; // the visitor asked for a chat: start one when connected
  let resuming = false; // opened by a reload to resume, not by a click
  let closing = false; // "End chat" pressed while offline
  let ended = ''; // why the chat ended, for the status line
  let notice = '';
  let link = null;
  let typing = null;

  /** The stored token, unless it belongs to another site than this page's. */
  function storedToken() {
    const value = local.get(TOKEN_KEY);
    if (!value) return null;
    try {
      const claims = JSON.parse(atob(value.split('.')[0].replace(/-/g, '+').replace(/_/g, '/')));
      if (claims && claims.w && claims.w !== site) return null;
    } catch (e) {
      return null;
    }
    return value;
  }

  function saveToken(value) {
    if (!value) return;
    token = value;
    local.set(TOKEN_KEY, value);
  }

  function isOpen(c) {
    return Boolean(c) && c.status !== 'closed';
  }

  function ensureLink() {
    if (!link) {
      link = new Link({
        storagePrefix: 'ctc.visitor',
        params() {
          usingToken = Boolean(token);
          return token ? { token } : { site };
        },
        onWelcome,
        onFrame,
        onAck,
        onFailed,
        onState,
        onRefused() {
          if (!usingToken) return 'backoff';
          // The server is up but refuses the token (expired, or from another deployment):
          // forget it and the conversation it pointed to, and come back as a new visitor.
          token = null;
          local.set(TOKEN_KEY, null);
          local.set(CONV_KEY, null);
          return 'retry';
        },
      });
      typing = new Typing(link);
    }
    if (link.stopped) link.start();
  }

  // ------------------------------------------------------------------ UI state

  function updateUi() {
    let text;
    if (ended) text = ended;
    else if (!conv) text = wantChat ? 'Connecting you to an agent…' : 'Connecting…';
    else if (conv.status === 'queued') {
      text = conv.position ? 'You are number ' + conv.position + ' in line' : 'Waiting for an agent…';
    } else text = "You're chatting with " + (conv.agent || 'an agent');
    statusLine.textContent = notice ? notice + ' ' + text : text;
    const canWrite = isOpen(conv) && !ended;
    input.disabled = !canWrite;
    sendButton.disabled = !canWrite;
    restartButton.hidden = !ended;
    closeButton.hidden = Boolean(ended);
  }

  function showPanel() {
    panel.hidden = false;
    openButton.hidden = true;
    openButton.setAttribute('aria-expanded', 'true');
  }

  function hidePanel() {
    panel.hidden = true;
    openButton.hidden = false;
    openButton.setAttribute('aria-expanded', 'false');
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function renderMessage(message) {
    const role = message.from && message.from.role === 'agent' ? 'agent' : 'visitor';
    const mine = role === 'visitor';
    const who = mine ? 'You' : (message.from.name || 'Agent');
    return el('li', { class: mine ? 'msg mine' : 'msg', 'data-role': role, 'data-who': who,
                      title: formatTime(message.ts) }, message.text);
  }

  function pendingNode(entry) {
    return el('li', { class: 'msg mine', 'data-role': 'visitor', 'data-who': 'You · sending…' },
      entry.text);
  }

  function newTranscript(id) {
    log.replaceChildren();
    transcript = new Transcript(id, log, renderMessage);
    for (const entry of link.queued(id)) transcript.addPending(entry, pendingNode(entry));
  }

  /** Take in a conversation summary (welcome, conversation, assigned, sync state). */
  function setConversation(summary) {
    if (!summary || typeof summary.id !== 'string') return;
    const same = conv && conv.id === summary.id;
    if (!same) {
      ended = '';
      newTranscript(summary.id);
      lastRead = Number(summary.reads && summary.reads.visitor) || 0;
    }
    const position = summary.position || (same && summary.status === 'queued' ? conv.position : null);
    conv = Object.assign({}, summary, { position });
    if (conv.status === 'closed') {
      conversationEnded(null);
      return;
    }
    if (conv.status !== 'queued') notice = '';
    local.set(CONV_KEY, conv.id);
    updateUi();
  }

  function conversationEnded(by) {
    if (!conv) return;
    conv.status = 'closed';
    local.set(CONV_KEY, null);
    for (const entry of link.drop(conv.id)) failed(entry, 'not sent: the chat has ended');
    if (typing) typing.stop();
    indicator.hide();
    wantChat = false;
    closing = false;
    notice = '';
    ended = by === 'agent' ? 'The agent ended the chat. Thanks for talking to us!'
      : by === 'visitor' ? 'You ended the chat. Thanks for talking to us!' : 'This chat has ended.';
    updateUi();
    link.stop(); // nothing left to listen for
  }

  function failed(entry, why) {
    const node = transcript && transcript.removePending(entry);
    if (!node) return;
    node.classList.add('failed');
    node.setAttribute('data-who', 'You · ' + why);
    log.append(node); // stays visible, without data-seq: it is not part of the conversation
  }

  function markRead() {
    if (!transcript || !isOpen(conv) || panel.hidden || document.visibilityState !== 'visible') return;
    const top = transcript.maxSeq;
    if (top > lastRead && transcript.countFrom('agent', lastRead) > 0
        && link.send({ action: 'read', conversation: conv.id, seq: top })) {
      lastRead = top;
    }
  }

  function startChat() {
    if (link.send({ action: 'start' })) saveToken(welcomeToken);
  }

  // ------------------------------------------------------------------ protocol

  function onWelcome(welcome) {
    welcomeToken = welcome.token;
    if (token) saveToken(welcome.token); // a fresh expiry for a returning visitor
    const open = isOpen(welcome.conversation) ? welcome.conversation : null;
    if (open) {
      saveToken(welcome.token);
      resuming = false;
      setConversation(open);
      transcript.sync(link, true);
      if (closing) link.send({ action: 'close', conversation: open.id });
    } else if (isOpen(conv)) {
      conversationEnded(null); // it closed while we were away
    } else if (wantChat) {
      startChat();
      updateUi();
    } else if (resuming) {
      resuming = false;
      local.set(CONV_KEY, null);
      ended = 'Your previous chat has ended.';
      updateUi();
      link.stop();
    }
  }

  function onFrame(frame) {
    const mineConv = (id) => conv && id === conv.id;
    switch (frame.type) {
      case 'conversation':
        setConversation(frame.summary);
        break;
      case 'queued':
        if (mineConv(frame.conversation) && conv.status === 'queued') {
          conv.position = Number(frame.position) || null;
          updateUi();
        }
        break;
      case 'assigned':
        if (frame.summary && (!conv || mineConv(frame.conversation))) {
          setConversation(frame.summary);
        }
        break;
      case 'requeued':
        if (mineConv(frame.conversation)) {
          conv.status = 'queued';
          conv.agent = null;
          conv.position = null;
          notice = typeof frame.message === 'string' ? frame.message : '';
          indicator.hide();
          updateUi();
        }
        break;
      case 'message':
        if (transcript && frame.conversation === transcript.conversation && transcript.add(frame)) {
          if (frame.from && frame.from.role === 'agent') indicator.hide();
          transcript.watchGap(link);
          scrollDown();
          markRead();
        }
        break;
      case 'messages':
        if (transcript && frame.conversation === transcript.conversation) {
          transcript.onMessages(frame, link);
          if (frame.summary) setConversation(frame.summary);
          scrollDown();
          markRead();
        }
        break;
      case 'typing':
        if (mineConv(frame.conversation) && frame.role === 'agent') {
          if (frame.on) indicator.show((conv.agent || 'The agent') + ' is typing…');
          else indicator.hide();
        }
        break;
      case 'closed':
        if (mineConv(frame.conversation)) conversationEnded(frame.by);
        break;
      case 'error':
        if (typeof frame.message === 'string') {
          notice = frame.message;
          updateUi();
        }
        break;
      default:
        break;
    }
  }

  function onAck(entry, ack) {
    if (!transcript || transcript.conversation !== entry.conversation) return;
    transcript.removePending(entry);
    transcript.add({ type: 'message', conversation: entry.conversation, seq: ack.seq, id: entry.id,
                     from: { role: 'visitor', name: null }, text: entry.text, ts: ack.ts });
    transcript.watchGap(link);
    scrollDown();
  }

  function onFailed(entry, error) {
    if (error.code === 'closed') {
      conversationEnded(null);
      return;
    }
    failed(entry, 'not sent: ' + (error.message || error.code));
  }

  function onState(state, retryMs) {
    if (state === 'offline') {
      connLine.textContent = 'Connection lost. Reconnecting'
        + (retryMs ? ' in ' + Math.max(1, Math.round(retryMs / 1000)) + ' s…' : '…');
    } else if (state === 'online' || state === 'stopped') {
      connLine.textContent = '';
    }
  }

  // ------------------------------------------------------------------ events

  openButton.addEventListener('click', () => {
    showPanel();
    if (!isOpen(conv) && !ended) wantChat = true;
    if (!ended) {
      ensureLink();
      if (wantChat && link.ready && !isOpen(conv)) startChat();
    }
    updateUi();
    markRead();
    if (!input.disabled) input.focus();
  });

  hideButton.addEventListener('click', hidePanel);

  restartButton.addEventListener('click', () => {
    ended = '';
    notice = '';
    conv = null;
    transcript = null;
    log.replaceChildren();
    wantChat = true;
    ensureLink();
    if (link.ready) startChat();
    updateUi();
  });

  closeButton.addEventListener('click', () => {
    if (isOpen(conv)) {
      if (!link.send({ action: 'close', conversation: conv.id })) {
        closing = true; // sent on reconnect
        notice = 'Ending the chat when the connection is back…';
        updateUi();
      }
      return;
    }
    // No conversation yet: just stop asking for one.
    wantChat = false;
    if (link) link.stop();
    hidePanel();
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || !isOpen(conv) || !transcript) return;
    if (text.length > MAX_TEXT_CHARS) {
      notice = 'Messages can be at most ' + MAX_TEXT_CHARS + ' characters.';
      updateUi();
      return;
    }
    const entry = link.post(conv.id, text);
    transcript.addPending(entry, pendingNode(entry));
    input.value = '';
    typing.stop();
    scrollDown();
    input.focus();
  });

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  input.addEventListener('input', () => {
    if (isOpen(conv) && input.value.trim()) typing.input(conv.id);
    else if (typing) typing.stop();
  });

  document.addEventListener('visibilitychange', markRead);

  // A reload with an open chat resumes it at once.
  if (token && local.get(CONV_KEY)) {
    resuming = true;
    showPanel();
    ensureLink();
    updateUi();
  }
})();
