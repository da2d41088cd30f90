/* Settings (admins): agents, business hours, snippets, widget and FAQ links, invitation rules,
 * holding message, allowed origins.
 *
 * Settings are read with GET /api/sites/<site> and written with PUT /api/sites/<site>. The
 * server replaces a whole `console` or `widget` object, so each form sends the object it
 * belongs to in full (the last one read, with its own part changed). Refusals show the
 * server's own message.
 */

{
  let siteDoc = null; // the last GET/PUT answer: {site, name, team_email, hours, widget, console}
  let team = [];
  const sitePath = () => '/sites/' + encodeURIComponent(site);

  function setStatus(name, text, bad) {
    const node = document.querySelector('.status[data-for="' + name + '"]');
    if (!node) return;
    node.textContent = text || '';
    node.className = 'status' + (bad ? ' bad' : text ? ' ok' : '');
    node.setAttribute('role', bad ? 'alert' : 'status');
  }

  onView('settings', {
    show() {
      load();
    },
  });

  async function load() {
    if (!site) return;
    $('settings-site').textContent = '· site ' + site;
    const [settings, agents] = await Promise.all([api('GET', sitePath()), api('GET', sitePath() + '/agents')]);
    if (settings.ok) {
      siteDoc = settings.body;
      renderSite();
      renderHours();
      renderSnippets();
      renderWidget();
      renderRules();
      renderHolding();
      renderOrigins();
    } else {
      for (const name of ['site', 'hours', 'snippets', 'widget', 'rules', 'holding', 'origins']) {
        setStatus(name, settings.message, true);
      }
    }
    if (agents.ok) {
      team = Array.isArray(agents.body) ? agents.body : (agents.body && agents.body.agents) || [];
      renderAgents();
    } else {
      setStatus('agents', agents.message, true);
    }
  }

  /** PUT part of the settings; true when the server took it. */
  async function save(name, doc) {
    setStatus(name, 'Saving…');
    const answer = await api('PUT', sitePath(), doc);
    if (!answer.ok) {
      setStatus(name, answer.message, true);
      return false;
    }
    siteDoc = answer.body;
    setStatus(name, 'Saved.');
    return true;
  }

  const consoleWith = (part) => Object.assign({}, siteDoc.console, part);

  // A list of editable rows: inputs named after the fields, and a remove button.
  function addRow(container, fields, values) {
    const row = el('div', { class: 'row' });
    for (const f of fields) {
      let input;
      if (f.type === 'textarea') input = el('textarea', { name: f.name, rows: 2, maxlength: f.max, placeholder: f.label });
      else if (f.type === 'select') {
        input = el('select', { name: f.name });
        for (const [value, text] of f.options) input.append(el('option', { value }, text));
      } else {
        input = el('input', { name: f.name, type: f.type || 'text', maxlength: f.max, min: f.min, max: f.maxValue,
                              placeholder: f.label, class: f.wide ? 'wide' : null });
      }
      input.setAttribute('aria-label', f.label);
      const value = values ? values[f.name] : undefined;
      if (value !== undefined && value !== null) input.value = String(value);
      row.append(input);
    }
    const remove = el('button', { type: 'button', class: 'ghost', 'aria-label': 'Remove' }, 'Remove');
    remove.addEventListener('click', () => row.remove());
    row.append(remove);
    container.append(row);
    return row;
  }

  /** The rows' values, skipping rows whose `keys` are all empty (a blank row left over). */
  function readRows(container, keys) {
    return [...container.querySelectorAll('.row')].map((row) => {
      const out = {};
      for (const input of row.querySelectorAll('input, textarea, select')) out[input.name] = input.value;
      return out;
    }).filter((values) => keys.some((k) => String(values[k] || '').trim()));
  }

  // ---------------------------------------------------------------- company & widget

  // Name, team email, the widget's look and words, pre-chat fields, and the abandonment
  // timers (console.abandon, shown once the server has them). One PUT: the server checks
  // every part before it writes any, so a refusal changes nothing; its message starts with
  // the field's path ("widget.color: ..."), which puts it next to that field.
  const siteForm = $('site-form');
  const PRECHAT_DEFAULTS = { name: 'optional', email: 'required' };

  function clearFieldErrors() {
    for (const node of siteForm.querySelectorAll('.field-error')) node.textContent = '';
    for (const node of siteForm.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  }

  /** Put the server's refusal beside its field; false when no field claims it. */
  function showFieldError(message) {
    const path = String(message).split(':')[0].trim();
    for (const node of siteForm.querySelectorAll('.field-error')) {
      const paths = node.getAttribute('data-error').split(' ');
      if (!paths.some((p) => path === p || path.startsWith(p + '.'))) continue;
      node.textContent = message;
      const box = node.closest('.field');
      const input = box && box.querySelector('input, select, textarea');
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      }
      return true;
    }
    return false;
  }

  function renderSite() {
    const widget = siteDoc.widget || {};
    const f = siteForm.elements;
    f.name.value = siteDoc.name || '';
    f.name.placeholder = siteDoc.display_name || 'Support';
    f.team_email.value = siteDoc.team_email || '';
    f.notify_team.checked = !siteDoc.console || siteDoc.console.notify_team !== false;
    f.greeting.value = widget.greeting || '';
    f.color.value = /^#[0-9a-fA-F]{6}$/.test(widget.color || '') ? widget.color : '#1f6f5c';
    for (const radio of siteForm.querySelectorAll('input[name="position"]')) {
      radio.checked = radio.value === (widget.position === 'left' ? 'left' : 'right');
    }
    const fields = Object.assign({}, PRECHAT_DEFAULTS, widget.prechat_fields || {});
    f.prechat_name.value = widget.prechat === true ? fields.name : 'off';
    f.prechat_email.value = widget.prechat === true ? fields.email : 'off';
    f.offline_message.value = widget.offline_message || '';
    const abandon = siteDoc.console && siteDoc.console.abandon;
    $('site-abandon').hidden = !abandon;
    if (abandon) {
      f.queued_after_seconds.value = String(abandon.queued_after_seconds || 180);
      f.assigned_after_seconds.value = String(abandon.assigned_after_seconds || 900);
    }
    clearFieldErrors();
  }

  siteForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const f = siteForm.elements;
    clearFieldErrors();
    const position = siteForm.querySelector('input[name="position"]:checked');
    const asked = { name: f.prechat_name.value, email: f.prechat_email.value };
    const prechat = asked.name !== 'off' || asked.email !== 'off';
    const widget = Object.assign({}, siteDoc.widget, {
      greeting: f.greeting.value.trim(), color: f.color.value, position: position ? position.value : 'right',
      offline_message: f.offline_message.value.trim(), prechat,
    });
    if ('prechat_fields' in siteDoc.widget || prechat) widget.prechat_fields = asked;
    const doc = { name: f.name.value.trim(), team_email: f.team_email.value.trim(), widget };
    const part = { notify_team: f.notify_team.checked };
    if (siteDoc.console && siteDoc.console.abandon) {
      part.abandon = Object.assign({}, siteDoc.console.abandon, {
        queued_after_seconds: Number(f.queued_after_seconds.value),
        assigned_after_seconds: Number(f.assigned_after_seconds.value) });
    }
    doc.console = consoleWith(part);
    setStatus('site', 'Saving…');
    const answer = await api('PUT', sitePath(), doc);
    if (!answer.ok) {
      const placed = showFieldError(answer.message);
      setStatus('site', placed ? 'Not saved: see the field marked in red.' : answer.message, true);
      return;
    }
    siteDoc = answer.body;
    renderSite();
    setStatus('site', 'Saved. Visitors see it now.');
  });

  // ---------------------------------------------------------------- agents

  function renderAgents() {
    $('agents-list').replaceChildren(...team.map((a) => {
      const row = el('tr', { 'data-agent': a.id });
      const name = el('input', { value: a.name, maxlength: 100, 'aria-label': 'Name of ' + a.id });
      name.value = a.name;
      const role = el('select', { 'aria-label': 'Role of ' + a.id });
      for (const r of ['agent', 'supervisor', 'admin']) role.append(el('option', { value: r }, r));
      role.value = a.role;
      const max = el('input', { type: 'number', min: 1, max: 50, 'aria-label': 'Maximum chats of ' + a.id,
                                'data-testid': 'agent-max' });
      max.value = String(a.max_chats);
      const now = el('span');
      if (a.disabled) now.append(el('span', { class: 'tag warn' }, 'deactivated'));
      else {
        now.append(document.createTextNode(a.load + ' chats'));
        if (a.on_shift) now.append(el('span', { class: 'tag on' }, a.away ? 'away' : 'on shift'));
        if (a.online) now.append(el('span', { class: 'tag' }, 'online'));
      }
      const actions = el('span');
      const saveButton = el('button', { type: 'button', 'data-testid': 'agent-save' }, 'Save');
      saveButton.addEventListener('click', async () => {
        const doc = {};
        if (name.value.trim() !== a.name) doc.name = name.value.trim();
        if (role.value !== a.role) doc.role = role.value;
        if (Number(max.value) !== Number(a.max_chats)) doc.max_chats = Number(max.value);
        if (!Object.keys(doc).length) {
          setStatus('agents', 'Nothing changed for ' + a.id + '.');
          return;
        }
        const answer = await api('PATCH', sitePath() + '/agents/' + encodeURIComponent(a.id), doc);
        if (!answer.ok) {
          setStatus('agents', answer.message, true);
          return;
        }
        setStatus('agents', 'Saved ' + a.id + '.');
        reloadTeam();
      });
      actions.append(saveButton);
      if (!a.disabled && !(me && me.id === a.id)) {
        const off = el('button', { type: 'button', class: 'danger', 'data-testid': 'agent-deactivate' }, 'Deactivate');
        off.addEventListener('click', async () => {
          if (off.getAttribute('data-confirm') !== 'yes') { // a second click confirms
            off.setAttribute('data-confirm', 'yes');
            off.textContent = 'Click again to deactivate ' + a.id;
            return;
          }
          const answer = await api('DELETE', sitePath() + '/agents/' + encodeURIComponent(a.id));
          if (!answer.ok) {
            setStatus('agents', answer.message, true);
            return;
          }
          setStatus('agents', a.id + ' is deactivated and signed out.');
          reloadTeam();
        });
        actions.append(document.createTextNode(' '), off);
      }
      return cells(row, [a.id, name, role, max, now, actions]);
    }));
  }

  async function reloadTeam() {
    const answer = await api('GET', sitePath() + '/agents');
    if (answer.ok) {
      team = Array.isArray(answer.body) ? answer.body : (answer.body && answer.body.agents) || [];
      renderAgents();
    }
  }

  $('agent-create').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    const data = new FormData(form);
    const doc = { id: String(data.get('id')).trim(), name: String(data.get('name')).trim(),
                  password: String(data.get('password')), role: String(data.get('role')),
                  max_chats: Number(data.get('max_chats')) || 3 };
    const email = String(data.get('email') || '').trim();
    if (email) doc.email = email;
    const answer = await api('POST', sitePath() + '/agents', doc);
    if (!answer.ok) {
      setStatus('agents', answer.message, true);
      return;
    }
    form.reset();
    setStatus('agents', 'Added ' + doc.id + '. They can sign in now.');
    reloadTeam();
  });

  // ---------------------------------------------------------------- business hours

  const DAYS = [['mon', 'Mon'], ['tue', 'Tue'], ['wed', 'Wed'], ['thu', 'Thu'], ['fri', 'Fri'], ['sat', 'Sat'],
                ['sun', 'Sun']];
  const hoursForm = $('hours-form');
  const zones = $('zones');
  try {
    if (typeof Intl.supportedValuesOf === 'function') {
      zones.replaceChildren(...Intl.supportedValuesOf('timeZone').map((z) => el('option', { value: z })));
    }
  } catch (e) { /* no list: free text */ }
  $('hours-days').replaceChildren(...DAYS.flatMap(([key, text]) => [
    el('label', { for: 'hours-' + key }, text),
    el('input', { id: 'hours-' + key, name: 'day-' + key, 'data-testid': 'hours-' + key,
                  placeholder: 'closed', autocomplete: 'off' })]));

  function syncAlways() {
    $('hours-fields').disabled = hoursForm.elements.always.checked;
    if (!hoursForm.elements.always.checked && !hoursForm.elements.timezone.value) {
      hoursForm.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    }
  }
  hoursForm.elements.always.addEventListener('change', syncAlways);

  function renderHours() {
    const hours = siteDoc.hours || {};
    const always = Boolean(hours.always_open) || !hours.timezone;
    hoursForm.elements.always.checked = always;
    hoursForm.elements.timezone.value = hours.timezone || '';
    for (const [key] of DAYS) {
      const ranges = (hours.week && hours.week[key]) || [];
      hoursForm.elements['day-' + key].value = ranges.map((r) => r[0] + '-' + r[1]).join(', ');
    }
    hoursForm.elements.closures.value = (hours.closures || [])
      .map((c) => c.date + (c.note ? ' ' + c.note : '')).join('\n');
    $('hours-fields').disabled = always;
  }

  hoursForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const f = hoursForm.elements;
    if (f.always.checked) {
      if (await save('hours', { hours: null })) renderHours();
      return;
    }
    const week = {};
    for (const [key] of DAYS) {
      const ranges = f['day-' + key].value.split(/[,;]+/).map((r) => r.trim()).filter(Boolean)
        .map((r) => { // "09:00-12:30"; anything else goes as typed and the server says what is wrong
          const parts = r.split(/\s*[-–—]\s*|\s+to\s+/);
          return parts.length === 2 ? parts : [r, ''];
        });
      if (ranges.length) week[key] = ranges;
    }
    const closures = f.closures.value.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
      const [date, ...note] = line.split(/\s+/);
      return note.length ? { date, note: note.join(' ') } : { date };
    });
    if (await save('hours', { hours: { timezone: f.timezone.value.trim(), week, closures } })) {
      renderHours();
      setStatus('hours', 'Saved. Visitors see the new hours now.');
    }
  });

  // ---------------------------------------------------------------- snippets

  const SNIPPET = [{ name: 'shortcut', label: 'shortcut', max: 30 },
                   { name: 'text', label: 'Text the agent sends', type: 'textarea', max: 2000 }];
  const snippetRows = $('snippet-rows');

  function renderSnippets() {
    snippetRows.replaceChildren();
    for (const s of siteDoc.console.snippets || []) addRow(snippetRows, SNIPPET, s);
    if (!snippetRows.children.length) addRow(snippetRows, SNIPPET);
  }

  $('snippets-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const edited = readRows(snippetRows, ['shortcut', 'text']).map((s) => ({ shortcut: s.shortcut.trim().replace(/^\//, ''), text: s.text }));
    if (await save('snippets', { console: consoleWith({ snippets: edited }) })) {
      if (Array.isArray(siteDoc.console.snippets)) snippets = siteDoc.console.snippets;
      renderSnippets();
      setStatus('snippets', 'Saved. Type /' + (snippets[0] ? snippets[0].shortcut : 'shortcut') + ' in a reply.');
    }
  });

  // ---------------------------------------------------------------- widget and FAQ

  const FAQ = [{ name: 'title', label: 'Title', max: 100 }, { name: 'url', label: 'https://…', type: 'url', wide: true },
               { name: 'keywords', label: 'keywords, comma separated' }];
  const faqRows = $('faq-rows');
  const widgetForm = $('widget-form');

  function renderWidget() {
    const widget = siteDoc.widget || {};
    $('presence-label').hidden = !('presence' in widget);
    widgetForm.elements.presence.checked = widget.presence === true;
    faqRows.replaceChildren();
    for (const item of widget.faq || []) {
      addRow(faqRows, FAQ, { title: item.title, url: item.url, keywords: (item.keywords || []).join(', ') });
    }
    if (!faqRows.children.length) addRow(faqRows, FAQ);
  }

  widgetForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const faq = readRows(faqRows, ['title', 'url']).map((item) => {
      const keywords = item.keywords.split(',').map((k) => k.trim()).filter(Boolean);
      return keywords.length ? { title: item.title.trim(), url: item.url.trim(), keywords }
        : { title: item.title.trim(), url: item.url.trim() };
    });
    const widget = Object.assign({}, siteDoc.widget, { faq });
    if ('presence' in siteDoc.widget) widget.presence = widgetForm.elements.presence.checked;
    if (await save('widget', { widget })) renderWidget();
  });

  // ---------------------------------------------------------------- invitation rules

  const RULE = [{ name: 'id', label: 'rule id', max: 40 }, { name: 'text', label: 'Invitation text', max: 300, wide: true },
                { name: 'url_contains', label: 'address contains', max: 200 },
                { name: 'kind', label: 'when', type: 'select',
                  options: [['min_pages', 'after N matching pages'], ['min_seconds', 'after N seconds on a page']] },
                { name: 'value', label: 'N', type: 'number', min: 1, maxValue: 3600 }];
  const ruleRows = $('rule-rows');

  function renderRules() {
    ruleRows.replaceChildren();
    for (const r of siteDoc.console.rules || []) {
      const kind = 'min_pages' in r ? 'min_pages' : 'min_seconds';
      addRow(ruleRows, RULE, Object.assign({}, r, { kind, value: r[kind] }));
    }
    if (!ruleRows.children.length) addRow(ruleRows, RULE, { kind: 'min_pages', value: 2 });
  }

  $('rules-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const rules = readRows(ruleRows, ['text', 'url_contains']).map((r, i) => {
      const id = r.id.trim() || (r.url_contains.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'rule')
        .slice(0, 30) + '-' + (i + 1);
      return { id, text: r.text, url_contains: r.url_contains, [r.kind]: Number(r.value) };
    });
    if (await save('rules', { console: consoleWith({ rules }) })) renderRules();
  });

  // ---------------------------------------------------------------- holding message

  const holdingForm = $('holding-form');

  function renderHolding() {
    const holding = siteDoc.console.holding || {};
    holdingForm.elements.enabled.checked = holding.enabled !== false;
    holdingForm.elements.after_seconds.value = String(holding.after_seconds || 90);
    holdingForm.elements.text.value = holding.text || '';
  }

  holdingForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const f = holdingForm.elements;
    const holding = { enabled: f.enabled.checked, after_seconds: Number(f.after_seconds.value), text: f.text.value };
    if (await save('holding', { console: consoleWith({ holding }) })) renderHolding();
  });

  // ---------------------------------------------------------------- allowed origins

  const originsForm = $('origins-form');

  function renderOrigins() {
    originsForm.elements.origins.value = (siteDoc.console.origins || []).join('\n');
  }

  originsForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!siteDoc) return;
    const origins = originsForm.elements.origins.value.split(/\s+/).map((o) => o.trim().replace(/\/$/, ''))
      .filter(Boolean);
    if (await save('origins', { console: consoleWith({ origins }) })) renderOrigins();
  });

  for (const button of document.querySelectorAll('[data-add]')) {
    button.addEventListener('click', () => {
      const kind = button.getAttribute('data-add');
      const [rows, fields, values] = kind === 'snippet' ? [snippetRows, SNIPPET] : kind === 'faq' ? [faqRows, FAQ]
        : [ruleRows, RULE, { kind: 'min_pages', value: 2 }];
      const row = addRow(rows, fields, values);
      row.querySelector('input, textarea').focus();
    });
  }
}
