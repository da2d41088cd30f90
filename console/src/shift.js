/* The header (shift, away) and leaving with open chats: the dialog that makes sure nobody is
 * left waiting on an agent who goes off shift or signs out. */

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

on('shift', (frame) => {
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
});

// This console handed the chat back to the line (the visitor's side has it too).
on('requeued', (frame, c) => {
  if (!c) return;
  c.summary = Object.assign({}, c.summary, frame.summary || {}, { status: 'gone' });
  c.goneText = 'handed back to the line';
  ended(c, null);
  renderConversations();
  renderSelected();
});

const shiftRefused = () => {
  shiftBusy = false;
  renderHeader();
  return false; // and say why
};
onRefusal('shift', shiftRefused);
onRefusal('away', shiftRefused);

onRefusal('handback', (message) => {
  leavingError.textContent = message;
  return true;
});
