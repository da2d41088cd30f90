/* Sounds and desktop notifications: how an agent hears of a chat while looking elsewhere. */

/** A short beep: higher for a new chat, lower for a message. */
function chime(kind) {
  beep(kind === 'chat' ? 988 : 660);
}

function canNotify() {
  return typeof Notification === 'function';
}

function updateAlertsButton() {
  alertsButton.hidden = !canNotify() || Notification.permission !== 'default';
}

/** Ask for desktop notifications; only ever from a click (browsers require a gesture). */
function askPermission() {
  wakeAudio();
  if (!canNotify() || Notification.permission !== 'default') return;
  try {
    const asked = Notification.requestPermission(updateAlertsButton);
    if (asked && asked.then) asked.then(updateAlertsButton, updateAlertsButton);
  } catch (e) { /* old browsers */ }
}

/** A desktop notification when the console is not in front (and allowed). */
function notify(title, body, conversation) {
  if (!canNotify() || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  try {
    const n = new Notification(title, { body: String(body || '').slice(0, 160), tag: conversation || 'ctc' });
    n.onclick = () => {
      window.focus();
      if (conversation && convs.has(conversation)) {
        showView('chats');
        select(conversation);
      }
      n.close();
    };
  } catch (e) { /* notifications need a service worker on some platforms */ }
}

alertsButton.addEventListener('click', askPermission);
document.addEventListener('pointerdown', wakeAudio, { once: true });

/** A chat that just became ours: sound, desktop notification, the count in the title. */
function announceNew(c, how) {
  chime('chat');
  notify(how || 'New chat', label(c) + (c.summary.preview ? ': ' + c.summary.preview : ''), c.id);
}
