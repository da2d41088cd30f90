/* Private notes on a chat: the visitor never sees them. */

function renderNotes(c) {
  const list = $('notes');
  const notes = c.notes || [];
  list.replaceChildren(...(notes.length ? notes.map((n) => {
    const li = el('li', { 'data-testid': 'note' });
    li.append(el('span', { class: 'by' }, ((n.from && n.from.name) || 'Agent') + ' · ' + dateTime(n.ts)),
              document.createTextNode(n.text));
    return li;
  }) : [el('li', { class: 'muted empty-note' }, 'No notes yet. The visitor never sees them.')]));
  const open = isOpen(c) && c.summary.status !== 'gone';
  $('note-input').disabled = $('note-add').disabled = !open;
}

function addNote(c, note) {
  if (!note || typeof note.text !== 'string') return;
  c.notes = c.notes || [];
  const key = (n) => n.ts + '|' + (n.from && n.from.id) + '|' + n.text;
  if (c.notes.some((n) => key(n) === key(note))) return;
  c.notes.push(note);
  c.notes.sort((a, b) => Number(a.ts) - Number(b.ts));
}

const noteFrame = () => ({ action: 'note', conversation: selected || '', ref: 'note:' + (selected || '') });
const noteCheck = lengthCheck($('note-input'), $('note-length'), $('note-error'), 'Note', noteFrame);

$('note-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const c = selected ? convs.get(selected) : null;
  const input = $('note-input');
  const text = input.value;
  if (!c || !text.trim() || noteCheck(true) < 0) return; // too long: said so, the note stays
  if (!link || !link.send(Object.assign(noteFrame(), { text }))) {
    say(OFFLINE);
    return;
  }
  input.value = '';
  noteCheck();
});

on('notes', (frame, c) => {
  if (!c) return;
  if (!frame.after) c.notes = [];
  paged([], frame, 'items', null,
        (cursor) => link.send({ action: 'notes', conversation: c.id, cursor }));
  for (const note of Array.isArray(frame.items) ? frame.items : []) addNote(c, note);
  c.notesLoaded = true;
  if (c.id === selected) renderNotes(c);
});

on('note', (frame, c) => {
  if (!c) return;
  addNote(c, frame);
  if (c.id === selected) renderNotes(c);
});

onRefusal('notes', () => true); // like the context: the chat works without
