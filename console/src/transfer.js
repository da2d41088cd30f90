/* Transfers: offers from colleagues (accept, decline) and handing a chat to one, with a note. */

function renderOffers() {
  offersBox.replaceChildren();
  for (const offer of offers.values()) {
    const from = (offer.from && offer.from.name) || 'A colleague';
    const s = offer.summary || {};
    const box = el('div', { class: 'offer', 'data-testid': 'transfer-offer', 'data-conversation': offer.conversation });
    box.append(el('p', {}, from + ' wants to hand you a chat'),
               el('p', { class: 'preview' },
                  (s.visitor_name || s.email || 'Visitor ' + String(s.visitor || '').slice(0, 6))
                  + (s.preview ? ' · ' + s.preview : '')));
    if (offer.note && offer.note.text) {
      box.append(el('p', { class: 'note', 'data-testid': 'offer-note' }, offer.note.text));
    }
    const row = el('div', { class: 'row' });
    const yes = el('button', { type: 'button', class: 'accept', 'data-testid': 'offer-accept' }, 'Accept');
    const no = el('button', { type: 'button', 'data-testid': 'offer-decline' }, 'Decline');
    yes.addEventListener('click', () => answerOffer(offer.conversation, true));
    no.addEventListener('click', () => answerOffer(offer.conversation, false));
    yes.disabled = no.disabled = Boolean(offer.answering);
    row.append(yes, no);
    box.append(row);
    offersBox.append(box);
  }
}

function answerOffer(id, accept) {
  const offer = offers.get(id);
  if (!offer || !link || !link.send({ action: 'transfer_answer', conversation: id, accept, ref: 'offer:' + id })) {
    say(OFFLINE);
    return;
  }
  if (accept) {
    offer.answering = true;
    acceptWanted = id;
  } else {
    offers.delete(id);
  }
  renderOffers();
}

transferOpen.addEventListener('click', async () => {
  transferError.textContent = '';
  transferBox.hidden = false;
  transferSend.disabled = true;
  transferTo.replaceChildren(el('option', { value: '' }, 'Loading the team…'));
  const answer = await api('GET', '/sites/' + encodeURIComponent(site) + '/agents');
  if (!answer.ok) {
    transferTo.replaceChildren();
    transferError.textContent = answer.message;
    return;
  }
  const team = (Array.isArray(answer.body) ? answer.body : (answer.body && answer.body.agents) || [])
    .filter((a) => a && a.id !== (me && me.id) && !a.disabled);
  const options = team.map((a) => {
    const free = a.on_shift && a.online && Number(a.load) < Number(a.max_chats);
    const state = !a.on_shift ? 'off shift' : !a.online ? 'offline' : a.away ? 'away' :
      Number(a.load) >= Number(a.max_chats) ? 'full' : 'available';
    return el('option', { value: a.id, disabled: !free, 'data-agent': a.id },
              a.name + ' — ' + state + ' (' + a.load + '/' + a.max_chats + ' chats)');
  });
  options.sort((x, y) => Number(x.disabled) - Number(y.disabled));
  transferTo.replaceChildren(...options);
  const first = options.find((o) => !o.disabled);
  if (first) transferTo.value = first.value;
  else transferError.textContent = 'Nobody else is on shift with room for a chat.';
  transferSend.disabled = !first;
  transferNote.focus();
});

$('transfer-cancel').addEventListener('click', () => {
  transferBox.hidden = true;
  replyInput.focus();
});

const transferFrame = () => ({ action: 'transfer', conversation: selected || '', to: transferTo.value,
                               ref: 'transfer:' + (selected || '') });
const transferCheck = lengthCheck(transferNote, $('transfer-length'), transferError, 'Note', transferFrame,
                                  'note');

transferBox.addEventListener('submit', (event) => {
  event.preventDefault();
  const c = selected ? convs.get(selected) : null;
  if (!c || !transferTo.value) return;
  const frame = transferFrame();
  if (transferNote.value.trim()) frame.note = transferNote.value;
  transferError.textContent = '';
  if (transferCheck(true) < 0) return; // too long: said so, the note stays
  if (!link || !link.send(frame)) {
    transferError.textContent = OFFLINE;
    return;
  }
  transferSend.disabled = true;
});

on('transfer_offer', (frame) => {
  if (typeof frame.conversation !== 'string') return;
  offers.set(frame.conversation, frame);
  renderOffers();
  chime('chat');
  notify('Transfer from ' + ((frame.from && frame.from.name) || 'a colleague'),
         (frame.note && frame.note.text) || (frame.summary && frame.summary.preview) || '', frame.conversation);
});

on('transfer_pending', (frame, c) => {
  if (!c) return;
  c.transfer = { to: frame.to && frame.to.id, name: (frame.to && frame.to.name) || 'your colleague' };
  transferBox.hidden = true;
  transferNote.value = '';
  renderSelected();
});

on('transferred', (frame, c) => {
  if (!c) return;
  c.summary.status = 'gone';
  c.goneText = 'transferred to ' + ((frame.to && frame.to.name) || 'a colleague');
  ended(c, null);
  toast('The chat with ' + label(c) + ' is now with ' + ((frame.to && frame.to.name) || 'your colleague') + '.');
  renderConversations();
  renderSelected();
});

on('transfer_declined', (frame, c) => {
  if (!c) return;
  const who = c.transfer ? c.transfer.name : frame.by;
  c.transfer = null;
  toast(who + ' declined the chat with ' + label(c) + '; it stays with you.', true);
  renderSelected();
});

onRefusal('offer', (message, id) => {
  offers.delete(id);
  acceptWanted = null;
  renderOffers();
  toast(message, true);
  return true;
});

onRefusal('transfer', (message) => {
  transferError.textContent = message;
  transferSend.disabled = false;
  return true;
});
