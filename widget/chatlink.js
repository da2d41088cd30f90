/* chatlink.js: the browser side of the chat protocol (docs/protocol.md), shared by the
 * visitor widget and the agent console. Plain script, no build step of its own.
 *
 * Loaded as a page script (the console: <script src="/widget/chatlink.js">) it sets
 * window.ChatLink = { Link, Transcript, Typing, TypingIndicator, el, storage, ... }.
 * infra/bundle.py compiles it INTO widget/widget.js inside a closure that declares
 * `CTC_BUNDLE`: then it attaches ChatLink to that object instead, so the widget adds no
 * global of its own beyond window.ChatWidget.
 *
 * Link: one WebSocket with reconnect (exponential backoff with jitter), the hello/welcome
 * handshake, a heartbeat, and the message outbox: messages get an id "<client id>:<counter>"
 * when queued, are sent ONE AT A TIME (the next only after the ack or error of the previous)
 * and an unacknowledged one is resent with the same id after a reconnect (the server
 * deduplicates). Client id, counter and outbox live in sessionStorage, so a reload resends
 * rather than loses.
 *
 * Transcript: the messages of one conversation in a list element, sorted and de-duplicated
 * by seq, tracking the highest contiguous seq for `sync` after a reconnect.
 *
 * Rule for every caller: text from people (messages, names, previews) goes into the page
 * with textContent / setAttribute only, never as HTML.
 */
(function (target) {
  'use strict';

  const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
  const MAX_TEXT_CHARS = 4000; // chalicelib/protocol.py MAX_TEXT_CHARS (code points, as Python counts)
  // API Gateway closes a WebSocket with 1009 when a client frame is over 32 KB (or a message
  // over 128 KB) and with 1003 on any binary frame: "WebSocket frame size: 32 KB", in "Quotas
  // for configuring and running a WebSocket in API Gateway",
  // https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html
  // So Link.send() sends only JSON text of at most this many UTF-8 bytes: the server's own cap
  // (chalicelib/protocol.py MAX_FRAME_BYTES: it answers too_large above it), which leaves a
  // safe 12 KB margin under AWS's 32 KB whatever "KB" means there (32,000 or 32,768).
  const MAX_FRAME_BYTES = 20000;
  const ACK_TIMEOUT_MS = 15000; // no ack/error by then: resend the same frame (idempotent)
  const HELLO_TIMEOUT_MS = 10000;
  const PING_IDLE_MS = 4 * 60 * 1000; // API Gateway drops sockets idle for 10 minutes
  const PONG_TIMEOUT_MS = 20000;
  const MAX_AGE_MS = 110 * 60 * 1000; // API Gateway ends every socket after 2 hours

  // ---- sound: one synthesised beep for widget and console (no audio file to load)
  let audio = null;

  /** Create or resume the audio context; call from a user gesture so browsers allow sound. */
  function wakeAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      audio = audio || new Ctx();
      if (audio.state === 'suspended') audio.resume();
    } catch (e) { /* no sound */ }
  }

  /** A short, soft beep at ``frequency`` Hz; silently nothing where sound is unavailable. */
  function beep(frequency) {
    wakeAudio();
    if (!audio) return;
    try {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      const now = audio.currentTime;
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now);
      gain.gain.exponentialRampToValueAtTime(0.13, now + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.28);
      osc.connect(gain).connect(audio.destination);
      osc.start(now);
      osc.stop(now + 0.3);
    } catch (e) { /* no sound is fine */ }
  }

  function randomId(length) {
    const bytes = new Uint8Array(length);
    window.crypto.getRandomValues(bytes);
    let out = '';
    for (const b of bytes) out += ID_CHARS[b & 63];
    return out;
  }

  /** localStorage / sessionStorage that never throws (private modes, disabled storage). */
  function storage(kind) {
    let area = null;
    try {
      area = window[kind + 'Storage']; // 'local' or 'session'; reading it may throw
    } catch (e) {
      area = null;
    }
    return {
      get(key) {
        try { return area ? area.getItem(key) : null; } catch (e) { return null; }
      },
      set(key, value) {
        try {
          if (!area) return;
          if (value === null || value === undefined) area.removeItem(key);
          else area.setItem(key, String(value));
        } catch (e) { /* full or disabled: the chat still works for this page */ }
      },
    };
  }

  /** The WebSocket address: `base` (e.g. "wss://abc.execute-api.../prod"), or by default
   * this page's own host at /ws (the local stand-in). */
  function socketUrl(params, base) {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const root = base || scheme + '//' + window.location.host + '/ws';
    return root + (root.indexOf('?') < 0 ? '?' : '&') + new URLSearchParams(params).toString();
  }

  /** A REST address under `base` (default: this page's origin + /api). */
  function apiUrl(path, base) {
    return (base || window.location.origin + '/api') + path;
  }

  /** Is the backend up? Tells "the server refused my token" from "the network is down". */
  async function serverReachable(base) {
    try {
      const response = await fetch(apiUrl('/health', base), { cache: 'no-store' });
      return response.ok;
    } catch (e) {
      return false;
    }
  }

  /** Some frames carry a conversation id, others a conversation summary. */
  /** Create an element; `text` is set with textContent, attributes with setAttribute. */
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? '' : value); // (setAttribute makes it a string)
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const UTF8 = new TextEncoder();

  /** The JSON text of a client frame if it is one API Gateway takes, else null. Only plain
   * objects: a string, Blob, ArrayBuffer or typed array is not a frame (and binary is 1003). */
  function frameText(frame) {
    try {
      if (!frame || Object.getPrototypeOf(frame) !== Object.prototype) return null;
      const text = JSON.stringify(frame);
      return UTF8.encode(text).length <= MAX_FRAME_BYTES ? text : null;
    } catch (e) {
      return null; // cycles, BigInt
    }
  }

  // The frame a message goes in, with the longest ids the protocol allows (40, 40 + 1 + 12).
  const SEND_FRAME = { action: 'send', conversation: 'c'.repeat(40), id: 'i'.repeat(53) };

  /** Room for `text` as `frame[field]` (default: a message's `send` frame, field `text`):
   * how many characters (code points, as the server counts them) can still be added, or,
   * below zero, how many must go, for it to be at most `max` (default MAX_TEXT_CHARS)
   * characters AND for the whole frame to fit MAX_FRAME_BYTES once JSON-escaped. */
  function room(text, frame, field, max) {
    field = field || 'text';
    max = max || MAX_TEXT_CHARS;
    let bytes = MAX_FRAME_BYTES - UTF8.encode(JSON.stringify(Object.assign({}, frame || SEND_FRAME,
      { [field]: '' }))).length;
    let keep = 0;
    let all = 0;
    for (const c of String(text)) {
      // Each character costs what JSON.stringify makes of it in UTF-8: 1 to 4 bytes, 2 for
      // \" \\ \n..., 6 for other control characters and lone surrogates (\u0001, \ud800).
      if (keep === all++ && keep < max && (bytes -= UTF8.encode(JSON.stringify(c)).length - 2) >= 0) keep++;
    }
    return keep < all ? keep - all : max - all;
  }

  /** Backoff with jitter: between half and all of min(cap, base * 2^attempt). */
  function backoff(attempt, base, cap) {
    return Math.min(cap, base * 2 ** Math.min(attempt, 10)) * (1 + Math.random()) / 2;
  }

  class Link {
    /**
     * options:
     *   params()            -> query parameters for the next connect ({token} or {site})
     *   url, api            -> WebSocket and REST bases (default: this page's host, /ws, /api)
     *   maxAge              -> ms before a connection is replaced by a fresh one (default
     *                          110 min: API Gateway closes every socket at 2 hours)
     *   storagePrefix       -> sessionStorage prefix for client id, counter and outbox
     *   onWelcome(frame)    -> after each (re)connect's welcome; sync from here
     *   onFrame(frame)      -> every other server frame (acks and send errors included)
     *   onAck(entry, ack), onFailed(entry, error) -> outcome of a queued message
     *   onSlowDown(entry, ms) -> a message was refused as too fast (rate_limited) and goes
     *                          again in ms; onSlowDown(null, 0) when it is resent
     *   onState(state, ms)  -> 'connecting' | 'online' | 'offline' (retry in ms) | 'stopped'
     *                          | 'evicted' (a newer tab took this one's place: no reconnect
     *                          until the page is visible again or resume() is called)
     *   onRefused()         -> the server is up but refused the handshake twice (bad or
     *                          expired token); return 'retry' (params changed), 'stop', or
     *                          anything else to keep backing off. May be async.
     */
    constructor(options) {
      this.o = options;
      this._session = storage('session');
      const prefix = options.storagePrefix || 'ctc';
      this._keys = { client: prefix + '.client', counter: prefix + '.counter',
                    outbox: prefix + '.outbox' };
      this._clientId = this._session.get(this._keys.client);
      if (!/^[A-Za-z0-9_-]{6,40}$/.test(this._clientId || '')) this._newClientId();
      this._counter = Number(this._session.get(this._keys.counter)) || 0;
      this.outbox = this._loadOutbox();
      this._claimClientId();
      this._inflight = null;
      this.ws = null;
      this.ready = false;
      this._stopped = true;
      this._evicted = false;
      this._attempt = 0;
      this._refusals = 0;
      this._timers = {};
      this._lastHeard = 0;
      this._openedAt = 0;
      this._wake = (event) => {
        if (this._evicted) {
          if (event.type !== 'online' && document.visibilityState === 'visible') this.resume();
        } else if (!this._stopped && !this.ws && document.visibilityState !== 'hidden') {
          this._attempt = 0;
          this._connect();
        }
      };
    }

    start() {
      if (!this._stopped) return;
      this._stopped = false;
      window.addEventListener('online', this._wake);
      document.addEventListener('visibilitychange', this._wake);
      this._connect();
    }

    /** The person is here (used the page): an evicted link reconnects, once. */
    resume() {
      if (!this._evicted) return;
      this._evicted = false;
      this._attempt = 0;
      this._connect();
    }

    stop() {
      this._stopped = true;
      window.removeEventListener('online', this._wake);
      document.removeEventListener('visibilitychange', this._wake);
      this._clearTimers();
      this._abandon(1000, 'stop'); // stopped: it closes the socket and reconnects nothing
      this._state('stopped');
    }

    /** Send a frame (a plain object) now. Returns true when sent; false when not connected
     * (try again later); null when API Gateway would refuse it (over MAX_FRAME_BYTES of JSON,
     * or not a plain object: never binary): it is not sent, now or later, and the socket
     * stays open. Both refusals are falsy, so `if (!link.send(f))` means "not sent"; tell
     * "too large" (=== null) from "offline" (=== false) to say the right thing. */
    send(frame) {
      const text = frameText(frame);
      if (text === null) return null;
      if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(text);
      return true;
    }

    /** Queue a message; it is sent when its turn comes, and resent until answered. Returns
     * the entry, or null (nothing queued) when the text is too long to ever go: check with
     * room(text) first to tell the person.
     * A visitor's first line goes IN its `start` (so the agents' waiting list shows it): pass
     * `start`, the start frame's other fields ({name, email}), and conversation ''. It is then
     * queued like any message (one in flight, acked by id, resent after a reconnect or a
     * reload: the server opens one chat and stores the line once) until adopt() names its
     * conversation. */
    post(conversation, text, start) {
      if (room(text) < 0) return null;
      const entry = { key: randomId(10), id: this._nextId(), conversation, text, renamed: 0, start };
      this.outbox.push(entry);
      this._saveOutbox();
      this._pump();
      return entry;
    }

    /** Queued messages for one conversation (for showing them as pending after a reload). */
    queued(conversation) {
      return this.outbox.filter((e) => e.conversation === conversation);
    }

    /** The `start` carrying a first line was answered with `conversation`: the line belongs
     * to it, and goes again (if it must) as an ordinary `send` with the same id, so a chat
     * closed meanwhile refuses it rather than a second chat opening with it. */
    adopt(conversation) {
      for (const e of this.outbox) {
        if (e.start) {
          e.conversation = conversation;
          delete e.start;
        }
      }
      this._saveOutbox();
    }

    /** Forget queued messages of a conversation that closed; returns them. */
    drop(conversation) {
      const dropped = this.outbox.filter((e) => e.conversation === conversation);
      this.outbox = this.outbox.filter((e) => e.conversation !== conversation);
      if (this._inflight && this._inflight.conversation === conversation) this._inflight = null;
      this._saveOutbox();
      this._pump();
      return dropped;
    }

    // ------------------------------------------------------------------ internals

    _state(state, ms) {
      this.o.onState?.(state, ms);
    }

    _clearTimers() {
      for (const name of Object.keys(this._timers)) {
        clearTimeout(this._timers[name]);
        clearInterval(this._timers[name]);
      }
      this._timers = {};
    }

    _newClientId() {
      this._clientId = randomId(12);
      this._counter = 0;
      this._session.set(this._keys.client, this._clientId);
      this._session.set(this._keys.counter, 0);
    }

    /** A duplicated tab inherits our sessionStorage (client id, counter, outbox). Two tabs
     * sharing a client id would have their messages taken for resends of each other's (same
     * id, different text, stored once), so the newer tab takes a fresh id and leaves the
     * queued messages to the tab that wrote them. */
    _claimClientId() {
      if (typeof BroadcastChannel !== 'function') return;
      const channel = new BroadcastChannel('ctc-client-ids');
      const nonce = randomId(8);
      channel.onmessage = (event) => {
        const m = event.data || {};
        if (m.claim === this._clientId && m.nonce !== nonce) {
          channel.postMessage({ taken: m.claim, nonce: m.nonce });
        } else if (m.taken === this._clientId && m.nonce === nonce) {
          this._newClientId();
          this.outbox = [];
          this._inflight = null;
          this._saveOutbox();
        }
      };
      channel.postMessage({ claim: this._clientId, nonce });
      this._channel = channel;
    }

    _nextId() {
      this._counter += 1;
      this._session.set(this._keys.counter, this._counter);
      return this._clientId + ':' + this._counter;
    }

    _loadOutbox() {
      try {
        const items = JSON.parse(this._session.get(this._keys.outbox) || '[]');
        return Array.isArray(items) ? items.filter((e) => e && typeof e.id === 'string'
          && typeof e.conversation === 'string' && typeof e.text === 'string') : [];
      } catch (e) {
        return [];
      }
    }

    _saveOutbox() {
      this._session.set(this._keys.outbox, this.outbox.length ? JSON.stringify(this.outbox) : null);
    }

    _connect() {
      clearTimeout(this._timers.reconnect);
      if (this._stopped || this._evicted || this.ws) return;
      this._state('connecting');
      let ws;
      try {
        ws = new WebSocket(socketUrl(this.o.params(), this.o.url));
      } catch (e) {
        this._scheduleReconnect();
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this._refusals = 0;
        this._lastHeard = this._openedAt = Date.now();
        this._hello(ws, 0);
      };
      ws.onmessage = (event) => {
        if (this.ws === ws) this._receive(event.data);
      };
      ws.onclose = () => {
        if (this.ws === ws) this._closed(opened);
      };
    }

    /** Give up on a socket that may be dead without the browser knowing. */
    _abandon(code, reason) {
      const ws = this.ws;
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(code || 4000, reason || 'unresponsive'); } catch (e) { /* ignore */ }
      this._closed(true);
    }

    async _closed(opened) {
      this.ws = null;
      this.ready = false;
      this._inflight = null; // resent, same id, after the next welcome
      // All of them (none is for the next socket yet), and forgotten: a cleared `retry` left
      // behind would hold the outbox back for good.
      this._clearTimers();
      if (this._stopped) return;
      if (this._evicted) {
        this._state('evicted');
        return;
      }
      this._state('offline');
      if (!opened && this.o.onRefused) {
        this._refusals += 1;
        // Twice refused before opening while the server answers HTTP: the server, not the
        // network, said no. (One failure could be a blip; the second costs ~half a second.)
        if (this._refusals >= 2 && await serverReachable(this.o.api)) {
          this._refusals = 0;
          const verdict = await this.o.onRefused();
          if (this._stopped || this.ws) return;
          if (verdict === 'stop') {
            this.stop();
            return;
          }
          if (verdict === 'retry') {
            this._attempt = 0;
            this._connect();
            return;
          }
        }
      }
      this._scheduleReconnect();
    }

    _scheduleReconnect() {
      if (this._stopped || this._evicted) return;
      const delay = backoff(this._attempt++, 500, 15000);
      this._state('offline', delay);
      clearTimeout(this._timers.reconnect);
      this._timers.reconnect = setTimeout(() => this._connect(), delay);
    }

    _hello(ws, tries) {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify({ action: 'hello' }));
      this._helloTries = tries;
      clearTimeout(this._timers.hello);
      // No welcome yet: it may be the frame that was lost, not the socket. If the socket still
      // answers a ping, ask again on it (a reconnect would only lose it again); if not, or
      // after a few tries, give the socket up.
      this._timers.hello = setTimeout(() => {
        if (this.ws !== ws || this.ready) return;
        if (tries >= 4) {
          this._abandon();
          return;
        }
        const asked = Date.now();
        ws.send(JSON.stringify({ action: 'ping' }));
        this._timers.hello = setTimeout(() => {
          if (this.ws !== ws || this.ready) return;
          if (this._lastHeard >= asked) this._hello(ws, tries + 1);
          else this._abandon();
        }, 3000);
      }, HELLO_TIMEOUT_MS);
    }

    _receive(data) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame !== 'object') return;
      this._lastHeard = Date.now();
      clearTimeout(this._timers.pong);
      const type = frame.type;
      if (type === 'evicted') {
        // Another tab of this visitor took this one's place and the server hangs up; coming
        // straight back would evict the next oldest tab. Wait to be seen or used.
        this._evicted = true;
        this._abandon(1000, 'evicted');
        return;
      }
      if (type === 'welcome') {
        clearTimeout(this._timers.hello);
        this.ready = true;
        this._attempt = 0;
        this._state('online');
        this._heartbeat();
        this.o.onWelcome(frame);
        this._pump();
        return;
      }
      if (!this.ready && type === 'error') {
        // Refused before the welcome (e.g. the connection record is not readable yet):
        // ask again shortly, then give up on this socket and reconnect.
        const ws = this.ws;
        clearTimeout(this._timers.hello);
        if (this._helloTries < 4) {
          this._timers.hello = setTimeout(() => this._hello(ws, this._helloTries + 1),
            backoff(this._helloTries, 300, 3000));
        } else {
          this._abandon();
        }
        return;
      }
      if (type === 'pong') return;
      // The answer to the message in flight; or a late ack for the head of the queue whose
      // ack timer already fired (it would be resent and acknowledged again anyway).
      const head = this.outbox[0];
      const entry = this._inflight || (type === 'ack' && head && frame.ref === head.id ? head : null);
      if (entry && frame.ref === entry.id && (type === 'ack' || type === 'error')) {
        this._answered(entry, frame);
        return;
      }
      this.o.onFrame(frame);
    }

    _answered(entry, frame) {
      clearTimeout(this._timers.ack);
      this._inflight = null;
      if (frame.type === 'error' && frame.code === 'retry') {
        entry.retries = (entry.retries || 0) + 1;
        clearTimeout(this._timers.retry);
        this._timers.retry = setTimeout(() => {
          this._timers.retry = null;
          this._pump();
        }, backoff(entry.retries, 500, 10000));
        return;
      }
      // (A start refused for the visitor's chats this hour, a wait of minutes, is a refusal.)
      if (frame.type === 'error' && frame.code === 'rate_limited' && !(entry.start && frame.retry_after > 60)) {
        // Sent faster than the server allows: nothing was stored, so the very same frame
        // goes again once the hint (seconds) has passed. onSlowDown(entry, ms), then
        // onSlowDown(null) when it goes.
        const wait = Math.max(1, Number(frame.retry_after) || 1) * 1000;
        clearTimeout(this._timers.retry);
        this.o.onSlowDown?.(entry, wait);
        this._timers.retry = setTimeout(() => {
          this._timers.retry = null;
          this.o.onSlowDown?.(null, 0);
          this._pump();
        }, wait);
        return;
      }
      if (frame.type === 'error' && frame.code === 'stale_message' && entry.renamed < 2) {
        // Our counter is behind the server's (e.g. a duplicated tab shares our client id):
        // take a fresh client id, renumber everything queued and try again.
        this._newClientId();
        for (const e of this.outbox) e.id = this._nextId();
        entry.renamed += 1;
        this._saveOutbox();
        this._pump();
        return;
      }
      this.outbox = this.outbox.filter((e) => e !== entry);
      this._saveOutbox();
      if (frame.type === 'ack') {
        this.o.onAck?.(entry, frame);
      } else if (this.o.onFailed) {
        this.o.onFailed(entry, frame);
      }
      this._pump();
    }

    /** Send the next queued message if none is in flight. */
    _pump() {
      if (!this.ready || this._inflight || this._timers.retry || !this.outbox.length) return;
      const entry = this.outbox[0];
      // A start's errors echo its `ref`, a send's its `id`: either way they name the entry.
      const frame = Object.assign(entry.start ? { action: 'start', ref: entry.id, ...entry.start }
        : { action: 'send', conversation: entry.conversation }, { id: entry.id, text: entry.text });
      const sent = this.send(frame);
      if (sent === null) { // too large to ever go (e.g. an outbox from an older page): drop it
        this._answered(entry, { type: 'error', code: 'too_large', ref: entry.id,
                                message: 'Message too long.' });
        return;
      }
      if (!sent) return;
      this._inflight = entry;
      clearTimeout(this._timers.ack);
      this._timers.ack = setTimeout(() => {
        if (this._inflight === entry) {
          this._inflight = null;
          this._pump();
        }
      }, ACK_TIMEOUT_MS);
    }

    /** Replace the connection now (at most a moment of 'offline'; the outbox resends). */
    refresh() {
      if (this._stopped || !this.ws) return;
      this._abandon(1000, 'refresh');
      this._attempt = 0;
      this._connect(); // at once, not after a backoff
    }

    _heartbeat() {
      clearInterval(this._timers.ping);
      this._timers.ping = setInterval(() => {
        // Close to API Gateway's 2-hour limit: a fresh connection at a moment we choose
        // (between messages) rather than a cut at one we do not.
        if (this.ready && !this._inflight && Date.now() - this._openedAt > (this.o.maxAge || MAX_AGE_MS)) {
          this.refresh();
          return;
        }
        if (!this.ready || Date.now() - this._lastHeard < PING_IDLE_MS) return;
        this.send({ action: 'ping' });
        clearTimeout(this._timers.pong);
        this._timers.pong = setTimeout(() => this._abandon(), PONG_TIMEOUT_MS);
      }, 30000);
    }
  }

  /**
   * The messages of one conversation in `list` (an <ol>), one element per seq with
   * data-seq, sorted by seq; pending (unacknowledged) messages of our own sit at the end.
   * `render(message)` builds the element for a message frame.
   */
  class Transcript {
    constructor(conversation, list, render) {
      this.conversation = conversation;
      this.list = list;
      this._render = render;
      this.bySeq = new Map();
      this._pending = new Map(); // entry key -> {entry, node}
      this._contig = 0; // every seq up to this one is here (or was accepted as a gap)
      this.maxSeq = 0;
      this.syncing = false;
      this._gapTimer = null;
      this.action = 'sync'; // or 'past_messages': a visitor's own earlier conversation, read only
    }

    /** Add a message frame; false if it is a duplicate (same seq) or malformed. */
    add(message) {
      const seq = Number(message && message.seq);
      if (!Number.isSafeInteger(seq) || seq < 1 || this.bySeq.has(seq) || typeof message.text !== 'string') return false;
      for (const [key, p] of this._pending) {
        if (p.entry.id === message.id) { // our own pending message, already stored
          p.node.remove();
          this._pending.delete(key);
        }
      }
      const node = this._render(message);
      node.setAttribute('data-seq', seq);
      let after = this.list.lastElementChild;
      while (after && (!after.hasAttribute('data-seq') || Number(after.getAttribute('data-seq')) > seq)) {
        after = after.previousElementSibling;
      }
      this.list.insertBefore(node, after ? after.nextElementSibling : this.list.firstElementChild);
      this.bySeq.set(seq, { message, node });
      this.maxSeq = Math.max(this.maxSeq, seq);
      while (this.bySeq.has(this._contig + 1)) this._contig += 1;
      return true;
    }

    /** How many messages after `afterSeq` were written by `role`. */
    countFrom(role, afterSeq) {
      let n = 0;
      for (const [seq, item] of this.bySeq) {
        if (seq > afterSeq && item.message.from && item.message.from.role === role) n += 1;
      }
      return n;
    }

    addPending(entry, node) {
      if (this._pending.has(entry.key)) return;
      node.setAttribute('data-pending', '');
      this.list.append(node);
      this._pending.set(entry.key, { entry, node });
    }

    removePending(entry) {
      const p = this._pending.get(entry.key);
      if (p) p.node.remove();
      this._pending.delete(entry.key);
      return p ? p.node : null;
    }

    /** A live message arrived after a hole: sync once if the hole is still there shortly
     * (the missing message is often just a moment behind, posted in parallel). */
    watchGap(link) {
      if (this._contig >= this.maxSeq || this._gapTimer) return;
      this._gapTimer = setTimeout(() => {
        this._gapTimer = null;
        if (this._contig < this.maxSeq) this.sync(link);
      }, 1500);
    }

    /** Ask for everything after the contiguous seq (after a reconnect: force=true). */
    sync(link, force) {
      if (this.syncing && !force) return;
      this.syncing = link.send({ action: this.action, conversation: this.conversation,
                                 after: this._contig, ref: this.action });
    }

    /** The reply to sync: add, page on while `more`, then accept any gap left. */
    onMessages(frame, link) {
      const items = Array.isArray(frame.items) ? frame.items : [];
      let last = Number(frame.after) || 0;
      for (const item of items) {
        this.add(item);
        last = Math.max(last, Number(item.seq) || 0);
      }
      if (frame.more && items.length) {
        link.send({ action: this.action, conversation: this.conversation, after: last, ref: this.action });
        return;
      }
      this.syncing = false;
      this._contig = Math.max(this._contig, this.maxSeq);
    }
  }

  /** Sends typing on (at most every 3 s while typing) and off (after 2.5 s idle or on send). */
  class Typing {
    constructor(link) {
      this._link = link;
      this._conversation = null;
      this._lastOn = 0;
      this._timer = null;
    }

    input(conversation) {
      if (!conversation) return;
      if (this._conversation && this._conversation !== conversation) this.stop();
      this._conversation = conversation;
      const now = Date.now();
      if (now - this._lastOn > 3000 && this._link.send({ action: 'typing', conversation, on: true })) {
        this._lastOn = now;
      }
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this.stop(), 2500);
    }

    stop() {
      clearTimeout(this._timer);
      if (this._conversation && this._lastOn) {
        this._link.send({ action: 'typing', conversation: this._conversation, on: false });
      }
      this._lastOn = 0;
      this._conversation = null;
    }
  }

  /** Shows "… is typing" while the other side types; hides itself if "off" never comes. */
  class TypingIndicator {
    constructor(node) {
      this._node = node;
      this._timer = null;
      this.hide();
    }

    show(text) {
      this._node.textContent = text;
      this._node.hidden = false;
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this.hide(), 6000);
    }

    hide() {
      clearTimeout(this._timer);
      this._node.hidden = true;
      this._node.textContent = '';
    }
  }

  /** "14:05" in `locale` (default: the browser's) and the viewer's own time zone. */
  function formatTime(ts, locale) {
    const n = Number(ts);
    if (!Number.isFinite(n) || n <= 0) return '';
    return new Date(n).toLocaleTimeString(locale || [], { hour: '2-digit', minute: '2-digit' });
  }

  target.ChatLink = {
    Link, Transcript, Typing, TypingIndicator, el, storage, apiUrl,
    formatTime, randomId, beep, wakeAudio, room, MAX_TEXT_CHARS, MAX_FRAME_BYTES,
  };
})(typeof CTC_BUNDLE === 'object' ? CTC_BUNDLE : window);
