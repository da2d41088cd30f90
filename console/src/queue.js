/* The waiting line: who waits, for how long, and Accept. */

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

on('queue', (frame) => {
  queue = paged(queue, frame, 'items', (i) => i.conversation,
                (cursor) => link.send({ action: 'queue', cursor }));
  if (acceptWanted && !queue.some((i) => i.conversation === acceptWanted) && !offers.has(acceptWanted)) {
    acceptWanted = null;
  }
  renderQueue();
});

onRefusal('accept', () => {
  acceptWanted = null;
  renderQueue();
  return false; // and say why
});
