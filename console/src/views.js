/* The views (chats, visitors, team, history, reports, settings): which one shows, who may see it. */

const VIEWS = ['chats', 'visitors', 'team', 'history', 'reports', 'settings'];
const isAdmin = () => Boolean(me && me.role === 'admin');
// Supervisors see the team, history and reports; only admins change settings.
const isLead = () => Boolean(me && (me.role === 'admin' || me.role === 'supervisor'));
const allowed = (name) => name === 'chats' || name === 'visitors' || (name === 'settings' ? isAdmin() : isLead());

function viewFromHash() {
  const name = location.hash.slice(1);
  return VIEWS.includes(name) ? name : null;
}

function showView(name) {
  if (!VIEWS.includes(name)) name = 'chats';
  if (me && !allowed(name)) name = 'chats';
  const before = view;
  view = name;
  for (const v of VIEWS) $('view-' + v).hidden = v !== name;
  for (const button of document.querySelectorAll('#views [data-view]')) {
    button.setAttribute('aria-current', button.getAttribute('data-view') === name ? 'page' : 'false');
  }
  if (location.hash.slice(1) !== name && app && !app.hidden) history.replaceState(null, '', '#' + name);
  if (before !== name && viewHooks[before] && viewHooks[before].hide) viewHooks[before].hide();
  // A view's data needs the agent and site the welcome brings: before it, onWelcome shows
  // the view again once they are known (nothing is asked for a site not known yet).
  if (me && viewHooks[name] && viewHooks[name].show) viewHooks[name].show();
}

/** hooks.show() when the view comes up (and after each welcome), hooks.hide() when it goes. */
function onView(name, hooks) {
  viewHooks[name] = hooks;
}

for (const button of document.querySelectorAll('#views [data-view]')) {
  button.addEventListener('click', () => showView(button.getAttribute('data-view')));
}
window.addEventListener('hashchange', () => { if (viewFromHash()) showView(viewFromHash()); });

const help = $('help');
$('help-open').addEventListener('click', () => {
  if (typeof help.showModal === 'function') help.showModal();
});
