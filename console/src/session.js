/* Sign-in, starting the connection, signing out. */

function showLogin(message) {
  app.hidden = true;
  loginSection.hidden = false;
  loginError.textContent = message || '';
  loginAgent.focus();
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  wakeAudio();
  loginError.textContent = '';
  loginSubmit.disabled = true;
  try {
    const response = await fetch(apiUrl('/auth/login', DEPLOYED.api), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent: loginAgent.value.trim(), password: loginPassword.value }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok && typeof body.token === 'string') {
      token = body.token;
      session.set(TOKEN_KEY, token);
      loginPassword.value = '';
      startConsole();
    } else if (response.status === 401 || response.status === 403) {
      loginError.textContent = 'Wrong agent id or password.';
    } else {
      loginError.textContent = typeof body.message === 'string' ? body.message
        : 'Sign-in failed (' + response.status + ').';
    }
  } catch (e) {
    loginError.textContent = "Can't reach the server. Check your connection and try again.";
  } finally {
    loginSubmit.disabled = false;
  }
});

function startConsole() {
  loginSection.hidden = true;
  app.hidden = false;
  connState.textContent = 'Connecting…';
  updateAlertsButton();
  link = new Link({
    url: DEPLOYED.ws,
    api: DEPLOYED.api,
    storagePrefix: 'ctc.console',
    params: () => ({ token }),
    onWelcome,
    onFrame,
    onAck,
    onFailed,
    onState,
    onRefused() {
      signOut('Your session has expired. Please sign in again.');
      return 'stop';
    },
  });
  typing = new Typing(link);
  link.start();
  timers.push(setInterval(tick, 1000));
  // Off shift the server pushes no queue updates: ask now and then, and on coming back.
  timers.push(setInterval(refreshQueue, 10000));
  timers.push(setInterval(refreshInbox, 30000)); // nobody pushes new messages: ask now and then
  showView(viewFromHash() || 'chats');
}

function signOut(message) {
  if (link) link.stop();
  link = null;
  for (const t of timers) clearInterval(t);
  timers = [];
  token = null;
  session.set(TOKEN_KEY, null);
  me = null;
  site = null;
  onShift = away = false;
  queue = [];
  snippets = [];
  convs.clear();
  offers.clear();
  selected = null;
  signingOut = false;
  welcomed = false;
  showView('chats');
  queueList.replaceChildren();
  inboxList.replaceChildren(); // the next agent to sign in here must not see this one's list
  convList.replaceChildren();
  offersBox.replaceChildren();
  messages.replaceChildren();
  indicator.hide();
  say('');
  document.title = TITLE;
  showLogin(message);
}

signOutButton.addEventListener('click', () => {
  if (askBeforeLeaving('signout')) return; // open chats: nobody must be left waiting for us
  // Going off shift first hands nothing new to us; open chats stay ours until closed.
  if (onShift && link && link.send({ action: 'shift', on: false })) {
    signingOut = true;
    setTimeout(() => { if (signingOut) signOut(''); }, 1500);
  } else {
    signOut('');
  }
});
