/* The selected chat: its messages, title, rating, closing and the transcript by email. */

function renderMessage(message) {
  const role = message.from && ['agent', 'system'].includes(message.from.role) ? message.from.role : 'visitor';
  if (role === 'system') {
    return el('li', { class: 'msg system', 'data-role': 'system', title: formatTime(message.ts) }, message.text);
  }
  const name = message.from && message.from.name;
  const mine = role === 'agent' && (!me || !name || name === me.name);
  const who = mine ? 'You' : role === 'agent' ? name : 'Visitor';
  return el('li', { class: mine ? 'msg mine' : 'msg', 'data-role': role,
                    'data-who': who + ' · ' + formatTime(message.ts) }, message.text);
}

function pendingNode(entry) {
  return el('li', { class: 'msg mine', 'data-role': 'agent', 'data-who': 'You · sending…' }, entry.text);
}

function renderSelected() {
  const c = selected ? convs.get(selected) : null;
  const ready = Boolean(link && link.ready);
  if (!c) {
    messages.replaceChildren();
    convTitle.textContent = 'Select a chat';
    convClose.hidden = transferOpen.hidden = transcriptLabel.hidden = transcriptSend.hidden = true;
    ratingBox.hidden = true;
    transferBox.hidden = transferState.hidden = true;
    replyInput.disabled = replySend.disabled = true;
    indicator.hide();
    renderContext();
    return;
  }
  if (messages.firstElementChild !== c.transcript.list) messages.replaceChildren(c.transcript.list);
  convTitle.textContent = label(c) + ' · ' + statusText(c);
  if (isOpen(c) && c.summary.presence && !byMail(c)) convTitle.append(presenceNode(c.summary.presence));
  if (byMail(c)) {
    convTitle.append(el('span', { class: 'badge', 'data-testid': 'by-email' }, ' · by email'));
  }
  convClose.hidden = false;
  convClose.textContent = isOpen(c) ? 'End chat' : 'Remove from list';
  transferOpen.hidden = !isOpen(c) || c.summary.status === 'queued';
  transferOpen.disabled = !ready || Boolean(c.transfer);
  transcriptLabel.hidden = !isOpen(c);
  const email = c.summary.email || (c.context && c.context.email);
  transcriptBox.disabled = !email;
  if (!email) transcriptBox.checked = false;
  transcriptText.textContent = email ? 'Email the transcript to ' + email : 'Email the transcript (no email given)';
  transcriptSend.hidden = !email || isOpen(c);  // while open, the box above sends it on closing
  transcriptSend.title = email ? 'Email the whole chat to ' + email : '';
  const rating = c.summary.rating;
  ratingBox.hidden = !rating;
  ratingBox.textContent = rating ? 'Visitor rating: ' + (rating.score === 'up' ? 'good' : 'poor')
    + (rating.comment ? ' — “' + rating.comment + '”' : '') : '';
  if (!isOpen(c)) transferBox.hidden = true;
  transferState.hidden = !c.transfer;
  transferState.textContent = c.transfer ? 'Waiting for ' + c.transfer.name + ' to accept the chat…' : '';
  // Offline too: the outbox keeps the reply and sends it once the connection is back.
  replyInput.disabled = replySend.disabled = !isOpen(c);
  if (!isOpen(c)) indicator.hide();
  renderContext();
}

function atBottom() {
  return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
}

function scrollDown() {
  messages.scrollTop = messages.scrollHeight;
}

// ------------------------------------------------------------------ conversation events

transcriptSend.addEventListener('click', () => {
  const c = selected ? convs.get(selected) : null;
  if (!c) return;
  // One id per click: a resend of this request mails once, another click mails again.
  const id = 'c' + Math.random().toString(36).slice(2, 12);
  if (!link.send({ action: 'transcript', conversation: c.id, id, ref: 'transcript:' + c.id })) {
    say(OFFLINE);
  }
});

convClose.addEventListener('click', () => {
  const c = selected ? convs.get(selected) : null;
  if (!c) return;
  if (isOpen(c)) {
    const frame = { action: 'close', conversation: c.id, ref: 'close:' + c.id };
    if (transcriptBox.checked && !transcriptBox.disabled) frame.transcript = true;
    if (!link.send(frame)) say(OFFLINE);
    transcriptBox.checked = false;
    return;
  }
  convs.delete(c.id);
  const next = order()[0];
  selected = null;
  if (next) select(next.id);
  else {
    renderConversations();
    renderSelected();
  }
});

on('message', (frame, c) => {
  if (!c || !c.transcript.add(frame)) return;
  const fromVisitor = frame.from && frame.from.role === 'visitor';
  if (!isSystem(frame)) c.last = frame.text.slice(0, 140); // a holding message is no preview
  if (fromVisitor && !c.summary.preview) c.summary.preview = frame.text.slice(0, 140);
  if (fromVisitor && c.id === selected) indicator.hide();
  c.transcript.watchGap(link);
  if (c.id === selected) {
    if (atBottom() || !fromVisitor) scrollDown();
    markRead(c);
  }
  if (fromVisitor && (c.id !== selected || view !== 'chats' || document.visibilityState !== 'visible')) {
    chime('message');
    notify(label(c), frame.text, c.id);
  }
  renderConversations();
});

on('messages', (frame, c) => {
  if (!c) return;
  const stick = atBottom();
  c.transcript.onMessages(frame, link);
  const items = Array.isArray(frame.items) ? frame.items : [];
  const said = items.filter((m) => !isSystem(m));
  if (said.length) c.last = String(said[said.length - 1].text || '').slice(0, 140);
  if (frame.summary && c.summary.status !== 'gone') {
    c.summary = Object.assign({}, c.summary, frame.summary);
    if (!isOpen(c)) ended(c, null);
  }
  if (c.id === selected) {
    if (stick) scrollDown();
    markRead(c);
  }
  renderConversations();
  renderSelected();
});

on('typing', (frame, c) => {
  if (c && c.id === selected && frame.role === 'visitor') {
    if (frame.on) indicator.show('Visitor is typing…');
    else indicator.hide();
  }
});

on('rated', (frame, c) => {
  if (!c) return;
  c.summary = Object.assign({}, c.summary, { rating: frame.rating });
  if (c.id === selected) renderSelected();
  toast(label(c) + (frame.rating && frame.rating.score === 'up' ? ' rated the chat good' : ' rated the chat poor'));
});

on('transcript_queued', (frame) => {
  toast('Transcript on its way to ' + String(frame.email || 'the visitor') + '.');
});
