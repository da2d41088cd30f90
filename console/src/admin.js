/* What the lead views (team, history, settings) share: table cells and their refusals. */

function visitorLabel(s) {
  return s.visitor_name || s.email || 'Visitor ' + String(s.visitor || '').slice(0, 6);
}

function cells(row, values) {
  for (const value of values) {
    const td = el('td');
    if (value instanceof Node) td.append(value);
    else td.textContent = value === null || value === undefined ? '' : String(value);
    row.append(td);
  }
  return row;
}

function emptyRow(columns, text) {
  const row = el('tr');
  row.append(el('td', { colspan: columns, class: 'muted' }, text));
  return row;
}

function since(ts) {
  const n = Number(ts);
  return n > 0 ? el('span', { 'data-since': n }, duration(Date.now() - n)) : '';
}

// The team and history views ask over the socket with refs "admin:...": a refusal is a toast.
onRefusal('admin', (message, id, frame) => {
  toast(frame.message || 'Something went wrong.', true);
  return true;
});
