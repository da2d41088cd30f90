/* The "Messages" inbox beside the waiting line: messages visitors left while nobody could
 * chat (chalicelib/inbox.py), newest first, a page at a time, each with who, how long ago
 * and the first words. Take makes one of my conversations (the server's `assigned` adds it
 * to My chats, as an accepted chat); the visitor is not connected, so my replies there go
 * by email. What visitors wrote is rendered with textContent, never as HTML. */

const inboxList = $('inbox');
const inboxCount = $('inbox-count');
let inboxItems = [];
let inboxCursor = null; // where the next (older) page starts, while there is one
let takeWanted = null;

/** A conversation that began as a message: the visitor is not on the page, so no presence. */
function byMail(c) {
  return c.summary.channel === 'email';
}

function renderInbox() {
  const items = inboxItems.filter((item) => item && typeof item.conversation === 'string');
  inboxCount.textContent = items.length ? String(items.length) + (inboxCursor ? '+' : '') : '';
  inboxList.replaceChildren();
  if (!items.length) {
    inboxList.append(el('li', { class: 'empty' }, 'No messages.'));
    return;
  }
  const now = Date.now();
  for (const item of items) {
    const row = el('li', { class: 'queue-item', 'data-conversation': item.conversation, 'data-testid': 'inbox-item' });
    const what = el('span', { class: 'what' });
    const at = Number(item.at) || now;
    what.append(el('span', { class: 'who' }, String(item.name || item.email || 'Visitor') + ' · '),
                el('span', { class: 'wait', 'data-since': at }, duration(now - at)),
                el('span', {}, ' ago'),
                el('span', { class: 'preview' }, String(item.preview || '')));
    const take = el('button', { type: 'button', 'data-testid': 'take', 'data-conversation': item.conversation }, 'Take');
    take.disabled = takeWanted === item.conversation;
    take.addEventListener('click', () => takeMessage(item.conversation));
    row.append(what, take);
    inboxList.append(row);
  }
  if (inboxCursor) {
    const older = el('button', { type: 'button', class: 'link', 'data-testid': 'inbox-more' }, 'Older messages');
    older.addEventListener('click', () => send({ action: 'inbox', cursor: inboxCursor }));
    inboxList.append(el('li', {}, older));
  }
}

function refreshInbox() {
  if (link && document.visibilityState === 'visible') link.send({ action: 'inbox' });
}

function takeMessage(id) {
  if (!link || !link.send({ action: 'take', conversation: id, ref: 'take:' + id })) {
    say(OFFLINE);
    return;
  }
  takeWanted = id;
  renderInbox();
}

on('inbox', (frame) => {
  const items = Array.isArray(frame.items) ? frame.items : [];
  if (frame.after === null || frame.after === undefined) {
    inboxItems = items;
  } else {
    const seen = new Set(inboxItems.map((i) => i.conversation));
    inboxItems = inboxItems.concat(items.filter((i) => !seen.has(i.conversation)));
  }
  inboxCursor = frame.more && typeof frame.cursor === 'string' ? frame.cursor : null;
  if (takeWanted && !inboxItems.some((i) => i.conversation === takeWanted)) takeWanted = null;
  renderInbox();
});

onRefusal('take', () => {
  takeWanted = null;
  refreshInbox(); // someone else took it: the list without it
  return false; // and say why
});

window.addEventListener('focus', refreshInbox);
