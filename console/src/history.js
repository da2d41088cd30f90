/* Past chats: a search over closed chats (admins and supervisors). */

{
  const historyText = $('history-text');
  const historyState = $('history-state');

  $('history-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = historyText.value.trim();
    if (!text) return;
    if (!send({ action: 'history', text: text.slice(0, 100), ref: 'admin:history' })) {
      historyState.textContent = "You're offline; try again when the connection is back.";
      return;
    }
    historyState.textContent = 'Searching…';
  });

  on('history', (frame) => {
    const items = Array.isArray(frame.items) ? frame.items : [];
    const query = String(frame.query || historyText.value);
    historyState.textContent = items.length ? items.length + (items.length === 1 ? ' chat' : ' chats') + ' found.'
      : 'No closed chats match “' + query + '”.';
    $('history-list').replaceChildren(...items.map((s) => {
      const who = el('span');
      who.append(document.createTextNode(s.visitor_name || 'Visitor ' + String(s.visitor || '').slice(0, 6)));
      if (s.email) who.append(el('span', { class: 'muted' }, ' · ' + s.email));
      // Words, not emoji: they read the same without an emoji font and to a screen reader.
      const rating = s.rating ? (s.rating.score === 'up' ? 'good' : 'poor') + (s.rating.comment ? ': ' + s.rating.comment : '') : '';
      return cells(el('tr', { 'data-conversation': s.id, 'data-testid': 'history-row' }),
                   [dateTime(s.created_at), who, s.agent || '—', s.preview || '', rating]);
    }));
  });
}
