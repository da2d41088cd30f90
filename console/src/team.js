/* The team right now (admins and supervisors) and, for admins, recent sign-in locks. */

{
  let overviewTimer = null;

  function pollOverview() {
    send({ action: 'overview', ref: 'admin:overview' });
  }

  onView('team', {
    show() {
      pollOverview();
      if (isAdmin()) loadLocks();
      clearInterval(overviewTimer);
      overviewTimer = setInterval(() => { if (document.visibilityState === 'visible') pollOverview(); }, 5000);
    },
    hide() {
      clearInterval(overviewTimer);
      overviewTimer = null;
    },
  });

  // The overview comes in pages of at most 32 KB: the first (no `after`) starts afresh, the
  // others add to the one list they carry; `next` names each list's cursor for its next page.
  const ov = { agents: [], conversations: [], queue: [] };
  on('overview', (frame) => {
    for (const name of Object.keys(ov)) {
      if (Array.isArray(frame[name])) ov[name] = frame.after ? ov[name].concat(frame[name]) : frame[name].slice();
      else if (!frame.after) ov[name] = [];
    }
    for (const cursor of Object.values(frame.next || {})) {
      if (typeof cursor === 'string') send({ action: 'overview', cursor, ref: 'admin:overview' });
    }
    const agents = ov.agents;
    const chats = ov.conversations;
    const queue = ov.queue;
    $('ov-queue').textContent = String(Number(frame.queue_length) || queue.length);
    $('ov-chats').textContent = String(chats.length);
    $('ov-agents').textContent = String(agents.length);
    $('ov-agent-list').replaceChildren(...(agents.length ? agents.map((a) => {
      const load = el('span');
      const meter = el('meter', { min: 0, max: Number(a.max_chats) || 1, value: Number(a.load) || 0 });
      load.append(meter, document.createTextNode(' ' + a.load + ' / ' + a.max_chats));
      return cells(el('tr', { 'data-agent': a.id }), [a.name + ' (' + a.id + ')', load,
        a.online ? 'connected' : 'disconnected', (a.conversations || []).length]);
    }) : [emptyRow(4, 'Nobody is on shift.')]));
    $('ov-chat-list').replaceChildren(...(chats.length ? chats.map((s) => cells(
      el('tr', { 'data-conversation': s.id }),
      [visitorLabel(s), s.agent || '—', s.status, since(s.assigned_at || s.created_at), s.preview || '']))
      : [emptyRow(5, 'No chats right now.')]));
    $('ov-queue-list').replaceChildren(...(queue.length ? queue.map((item) => {
      const li = el('li', { 'data-conversation': item.conversation });
      li.append(document.createTextNode('#' + item.position + ' · waiting '), since(item.queued_at),
                document.createTextNode(' · ' + (item.preview || 'No message yet')));
      return li;
    }) : [el('li', { class: 'muted' }, 'Nobody is waiting.')]));
  });

  // ------------------------------------------------------------------ sign-in locks (admins)

  // Which budget filled up (agents.sign_in): one address's guesses at one account, all
  // guesses from one address, or guesses at one account from everywhere.
  const LOCK_SCOPES = {
    'account+source': 'this account, from one source',
    source: 'every account, from one source',
    account: 'this account, from anywhere',
  };

  async function loadLocks() {
    const list = $('lock-list');
    const answer = await api('GET', '/sites/' + encodeURIComponent(site) + '/locks');
    if (!answer.ok) {
      list.replaceChildren(emptyRow(4, answer.message));
      return;
    }
    const locks = (answer.body && Array.isArray(answer.body.locks)) ? answer.body.locks : [];
    list.replaceChildren(...(locks.length ? locks.map((e) => {
      const source = e.source ? el('code', { title: String(e.source) }, String(e.source).slice(0, 12) + '…') : '—';
      return cells(el('tr', { 'data-testid': 'lock-row', 'data-agent': String(e.agent || '') }),
                   [dateTime(e.at), e.agent, LOCK_SCOPES[e.scope] || e.scope, source]);
    }) : [emptyRow(4, 'No sign-in locks lately.')]));
  }
}
