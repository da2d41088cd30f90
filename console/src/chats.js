/* My chats: the list, the selection, unread counts, the keyboard, and a chat's start and end. */

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
    if (isOpen(c) && c.summary.presence && !byMail(c)) what.append(presenceNode(c.summary.presence));
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

// ------------------------------------------------------------------ a chat's start and end

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

onView('chats', {
  show() {
    const c = selected ? convs.get(selected) : null;
    if (c) markRead(c);
  },
});

on('assigned', (frame) => {
  const known = convs.get(frame.summary && frame.summary.id);
  const wasOpen = isOpen(known);
  const mine = upsert(frame.summary);
  if (!mine) return;
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
});

on('presence', (frame, c) => { // the visitor left (every tab closed) or came back
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
});

on('closed', (frame, c) => {
  const summary = frame.summary;
  offers.delete(frame.conversation);
  renderOffers();
  if (c) {
    c.summary = Object.assign({}, c.summary, typeof summary === 'object' ? summary : {}, { status: 'closed' });
    ended(c, frame.by);
    renderConversations();
    renderSelected();
  }
});

on('by_email', (frame, c) => {
  if (!c) return;
  c.summary = Object.assign({}, c.summary, frame.summary || {});
  if (c.id === selected) renderSelected();
  toast(label(c) + ' asked to continue by email: your replies are emailed to ' +
        String(frame.email || 'them') + '.');
});
