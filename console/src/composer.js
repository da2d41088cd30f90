/* The reply box: sending (through ChatLink's outbox: acked or failed), typing, snippets. */

const replyCheck = lengthCheck(replyInput, $('reply-length'), notice, 'Message');

replyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const c = selected ? convs.get(selected) : null;
  const text = replyInput.value;
  if (!c || !isOpen(c) || !text.trim()) return;
  if (replyCheck(true) < 0) return; // too long: said so; the text stays, nothing is sent
  const entry = link.post(c.id, text);
  if (!entry) return;
  c.transcript.addPending(entry, pendingNode(entry));
  replyInput.value = '';
  replyCheck();
  c.draft = '';
  hideSnippets();
  typing.stop();
  scrollDown();
});

replyInput.addEventListener('keydown', (event) => {
  if (!snippetMenu.hidden && menuItems.length) {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      menuActive = (menuActive + (event.key === 'ArrowDown' ? 1 : -1) + menuItems.length) % menuItems.length;
      renderSnippetMenu();
      return;
    }
    if ((event.key === 'Tab' && !event.shiftKey) || (event.key === 'Enter' && !event.shiftKey && !event.isComposing)) {
      event.preventDefault();
      insertSnippet(menuItems[menuActive]);
      return;
    }
    if (event.key === 'Escape') {
      event.preventDefault();
      menuDismissed = replyInput.value;
      hideSnippets();
      return;
    }
  }
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    replyForm.requestSubmit();
  }
});

replyInput.addEventListener('input', () => {
  if (selected && replyInput.value.trim()) typing.input(selected);
  else if (typing) typing.stop();
  updateSnippets();
});
replyInput.addEventListener('blur', () => setTimeout(() => {
  if (document.activeElement !== replyInput) hideSnippets();
}, 150));

// ------------------------------------------------------------------ snippets

let menuItems = [];
let menuActive = 0;
let menuAt = null; // {start, end} of the "/shortcut" being typed
let menuDismissed = null;

function snippetQuery() {
  const end = replyInput.selectionStart;
  if (end !== replyInput.selectionEnd) return null;
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(replyInput.value.slice(0, end));
  return match ? { start: end - match[2].length - 1, end, text: match[2].toLowerCase() } : null;
}

function updateSnippets() {
  const query = snippetQuery();
  if (!query || !snippets.length || replyInput.value === menuDismissed) {
    hideSnippets();
    return;
  }
  menuDismissed = null;
  const starts = snippets.filter((s) => s.shortcut.startsWith(query.text));
  const contains = query.text ? snippets.filter((s) => !s.shortcut.startsWith(query.text)
    && (s.shortcut.includes(query.text) || s.text.toLowerCase().includes(query.text))) : [];
  menuItems = starts.concat(contains).slice(0, 8);
  menuAt = query;
  menuActive = 0;
  if (!menuItems.length) {
    hideSnippets();
    return;
  }
  renderSnippetMenu();
}

function renderSnippetMenu() {
  snippetMenu.replaceChildren(...menuItems.map((s, i) => {
    const li = el('li', { role: 'option', id: 'snippet-' + i, 'aria-selected': i === menuActive ? 'true' : 'false',
                          'data-shortcut': s.shortcut, 'data-testid': 'snippet' });
    li.append(el('span', { class: 'sc' }, '/' + s.shortcut), el('span', { class: 'tx' }, s.text));
    li.addEventListener('mousedown', (event) => {
      event.preventDefault(); // keep the focus in the reply box
      insertSnippet(s);
    });
    return li;
  }));
  snippetMenu.hidden = false;
  replyInput.setAttribute('aria-activedescendant', 'snippet-' + menuActive);
}

function hideSnippets() {
  snippetMenu.hidden = true;
  menuItems = [];
  replyInput.removeAttribute('aria-activedescendant');
}

function insertSnippet(snippet) {
  if (!snippet || !menuAt) return;
  const value = replyInput.value;
  replyInput.value = value.slice(0, menuAt.start) + snippet.text + value.slice(menuAt.end);
  const caret = menuAt.start + snippet.text.length;
  replyInput.setSelectionRange(caret, caret);
  hideSnippets();
  replyCheck();
  replyInput.focus();
  if (selected) typing.input(selected);
}

function onAck(entry, ack) {
  const c = convs.get(entry.conversation);
  if (!c) return;
  c.transcript.removePending(entry);
  c.transcript.add({ type: 'message', conversation: c.id, seq: ack.seq, id: entry.id,
                     from: { role: 'agent', name: me ? me.name : null }, text: entry.text, ts: ack.ts });
  c.last = entry.text.slice(0, 140);
  c.transcript.watchGap(link);
  if (c.id === selected) scrollDown();
  renderConversations();
}

function onFailed(entry, error) {
  const c = convs.get(entry.conversation);
  if (!c) return;
  failedNode(c, entry, 'not sent: ' + (error.message || error.code));
  if (error.code === 'closed') {
    c.summary.status = 'closed';
    ended(c, null);
    renderConversations();
    renderSelected();
  }
}

on('snippets', (frame) => {
  snippets = paged(snippets, frame, 'items', (s) => s.shortcut,
                   (cursor) => link.send({ action: 'snippets', cursor }));
});
