/* Live visitors browsing the site, and inviting them to chat. */

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

onView('visitors', {
  show() {
    pollVisitors();
    clearInterval(visitorsTimer);
    visitorsTimer = setInterval(() => { if (document.visibilityState === 'visible') pollVisitors(); }, 10000);
  },
  hide() {
    clearInterval(visitorsTimer);
    visitorsTimer = null;
  },
});

on('visitors', (frame) => {
  visitorsAt = Date.now();
  visitorItems = paged(visitorItems, frame, 'items', (v) => v.visitor,
                       (cursor) => link.send({ action: 'visitors', cursor }));
  renderVisitors();
});

on('invited', (frame) => {
  if (typeof frame.visitor !== 'string') return;
  invitations.set(frame.id, frame.visitor);
  inviting.delete(frame.visitor);
  invited.add(frame.visitor);
  toast('Invitation sent to visitor ' + frame.visitor.slice(0, 6) + '.');
  renderVisitors();
});

on('invitation_answer', (frame) => {
  const who = 'Visitor ' + String(frame.visitor || '').slice(0, 6);
  invited.delete(frame.visitor);
  toast(frame.accepted ? who + ' accepted your invitation: the chat is in your list.'
    : who + ' declined your invitation.', !frame.accepted);
  if (view === 'visitors') pollVisitors();
});

onRefusal('invite', (message, id) => {
  inviting.delete(id);
  renderVisitors();
  toast(message, true);
  return true;
});
