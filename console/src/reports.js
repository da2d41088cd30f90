/* Reports (admins and supervisors): the site's service figures for a date range, everyone
 * or one agent, from GET /api/sites/<site>/reports; charts drawn here as inline SVG (no chart
 * library), tables, and the same figures as a CSV download (format=csv). Days are the site's
 * own days.
 */

{
  const NS = 'http://www.w3.org/2000/svg';
  const from = $('rep-from');
  const to = $('rep-to');
  const who = $('rep-agent');
  const state = $('rep-state');
  let agentsLoaded = false;

  const sitePath = () => '/sites/' + encodeURIComponent(site);

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function isoDay(d) {
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }

  function query(extra) {
    const params = new URLSearchParams({ from: from.value, to: to.value });
    if (who.value) params.set('agent', who.value);
    for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
    return sitePath() + '/reports?' + params.toString();
  }

  /** Seconds as people read them: "37.5 s" under a minute and a half, then "m:ss". */
  function secs(v) {
    if (v === null || v === undefined) return '—';
    return v < 90 ? Math.round(v * 10) / 10 + ' s' : duration(v * 1000);
  }

  function pct(v) {
    return v === null || v === undefined ? '—' : Math.round(v * 100) + ' %';
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function titled(node, text) {
    node.append(svg('title', {}, text));
    return node;
  }

  onView('reports', {
    show() {
      if (!to.value) {
        const today = new Date();
        const week = new Date(today);
        week.setDate(today.getDate() - 6);
        from.value = isoDay(week);
        to.value = isoDay(today);
      }
      if (!agentsLoaded) loadAgents();
      load();
    },
  });

  async function loadAgents() {
    const answer = await api('GET', sitePath() + '/agents');
    if (!answer.ok || !answer.body) return;
    agentsLoaded = true;
    const keep = who.value;
    who.replaceChildren(el('option', { value: '' }, 'Everyone'),
      ...(answer.body.agents || []).map((a) => el('option', { value: a.id }, a.name + ' (' + a.id + ')')));
    who.value = keep;
  }

  async function load() {
    if (!site || !from.value || !to.value) return;
    state.textContent = 'Loading…';
    const answer = await api('GET', query());
    if (!answer.ok) {
      state.textContent = answer.message;
      return;
    }
    render(answer.body);
  }

  $('rep-form').addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });

  $('rep-csv').addEventListener('click', async () => {
    const result = await download(query({ format: 'csv' }), 'report.csv');
    if (!result.ok) toast(result.message, true);
  });

  function row(values, attrs) {
    const tr = el('tr', attrs);
    for (const value of values) tr.append(el('td', {}, value));
    return tr;
  }

  function render(doc) {
    const t = doc.totals;
    $('rep-zone').textContent = '· days in ' + (doc.timezone || 'UTC');
    state.textContent = t.chats ? doc.from + ' to ' + doc.to + (doc.agent ? ' · ' + doc.agent : '')
      : 'No chats from ' + doc.from + ' to ' + doc.to + '.';
    const tiles = [
      ['chats', 'chats', String(t.chats)],
      ['wait_median_s', 'median wait', secs(t.wait_median_s)],
      ['wait_p90_s', 'p90 wait', secs(t.wait_p90_s)],
      ['first_response_median_s', 'median first response', secs(t.first_response_median_s)],
      ['first_response_p90_s', 'p90 first response', secs(t.first_response_p90_s)],
      ['missed_share', 'missed (' + t.missed + ')', pct(t.missed_share)],
      ['abandoned_share', 'abandoned (' + t.abandoned + ')', pct(t.abandoned_share)],
      ['satisfaction', 'satisfied (' + t.rated_up + ' up, ' + t.rated_down + ' down)', pct(t.satisfaction)],
      ['after_hours', 'after hours (' + t.offline_messages + ' left a message)',
        String(t.after_hours_chats + t.offline_messages)],
      ['email_conversations', 'by email (' + t.chat_conversations + ' chats; first reply in '
        + secs(t.email_answer_avg_s) + ' on average)', String(t.email_conversations)],
    ];
    $('rep-totals').replaceChildren(...tiles.map(([key, label, value]) => {
      const tile = el('div', { class: 'stat', 'data-figure': key });
      tile.append(el('span', {}, value), document.createTextNode(label));
      return tile;
    }));
    $('rep-days').replaceChildren(...doc.days.map((d) => row([d.date, String(d.chats), String(d.missed),
      String(d.abandoned), secs(d.wait_median_s) + ' / ' + secs(d.wait_p90_s),
      secs(d.first_response_median_s) + ' / ' + secs(d.first_response_p90_s), pct(d.satisfaction),
      String(d.after_hours_chats + d.offline_messages)], { 'data-day': d.date })));
    $('rep-agents').replaceChildren(...(doc.agents.length ? doc.agents.map((a) => row([a.name + ' (' + a.agent + ')',
      String(a.chats), String(a.missed), String(a.abandoned),
      secs(a.wait_median_s) + ' / ' + secs(a.wait_p90_s),
      secs(a.first_response_median_s) + ' / ' + secs(a.first_response_p90_s), pct(a.satisfaction),
      String(a.transfers)], { 'data-agent': a.agent }))
      : [row(['No agent handled a chat in these days.'])]));
    drawn = doc;
    drawCharts();
  }

  // Charts are drawn in the pixels they get (viewBox = their width), so axis labels keep
  // their CSS size (12 px) at any window width instead of shrinking with the SVG; they are
  // drawn again when the window's width changes.
  let drawn = null;
  let W = 640;
  const AXIS_LABEL = 44; // px a day label ("03-09") needs, with room to breathe

  function drawCharts() {
    if (!drawn || $('view-reports').hidden) return;
    W = Math.max(280, Math.round($('rep-days-chart').getBoundingClientRect().width) || 640);
    daysChart(drawn.days);
    timesChart(drawn.days);
    hoursChart(drawn.hours_of_week);
  }

  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(drawCharts, 150);
  });

  /** Stacked bars: answered, missed, abandoned per day. */
  function daysChart(days) {
    const chart = $('rep-days-chart');
    const H = 150;
    const top = Math.max(1, ...days.map((d) => d.chats));
    const step = (W - 40) / Math.max(1, days.length);
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + (H + 20));
    const parts = [svg('text', { x: 0, y: 12, class: 'axis' }, top),
                   svg('text', { x: 0, y: H, class: 'axis' }, 0),
                   svg('line', { x1: 30, y1: H, x2: W, y2: H, class: 'base' })];
    days.forEach((d, i) => {
      const x = 36 + i * step;
      let y = H;
      for (const [key, cls] of [['answered', 'ok'], ['missed', 'missed'], ['abandoned', 'abandoned']]) {
        const h = ((H - 16) * d[key]) / top;
        if (!h) continue;
        y -= h;
        parts.push(titled(svg('rect', { x, y, width: Math.max(2, step * 0.7), height: h, class: cls,
                                        'data-day': d.date, 'data-kind': key, 'data-value': d[key] }),
                          d.date + ': ' + d[key] + ' ' + key));
      }
      if (i % Math.max(1, Math.ceil(AXIS_LABEL / step)) === 0) { // never two labels on each other
        parts.push(svg('text', { x, y: H + 15, class: 'axis' }, d.date.slice(5)));
      }
    });
    chart.replaceChildren(...parts);
  }

  /** Two lines: median wait and median first response per day (days without chats skipped). */
  function timesChart(days) {
    const chart = $('rep-times-chart');
    const H = 150;
    const values = days.flatMap((d) => [d.wait_median_s, d.first_response_median_s]).filter((v) => v !== null);
    const top = Math.max(1, ...values);
    const step = (W - 40) / Math.max(1, days.length);
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + (H + 20));
    const parts = [svg('text', { x: 0, y: 12, class: 'axis' }, Math.round(top)),
                   svg('text', { x: 0, y: H, class: 'axis' }, 0),
                   svg('line', { x1: 30, y1: H, x2: W, y2: H, class: 'base' })];
    for (const [key, cls, name] of [['wait_median_s', 'wait', 'median wait'],
                                    ['first_response_median_s', 'frt', 'median first response']]) {
      const points = [];
      days.forEach((d, i) => {
        if (d[key] === null) return;
        const x = 36 + i * step + step * 0.35;
        const y = H - ((H - 16) * d[key]) / top;
        points.push(x.toFixed(1) + ',' + y.toFixed(1));
        parts.push(titled(svg('circle', { cx: x, cy: y, r: 3, class: cls, 'data-day': d.date, 'data-kind': key }),
                          d.date + ': ' + name + ' ' + secs(d[key])));
      });
      if (points.length > 1) parts.unshift(svg('polyline', { points: points.join(' '), class: cls }));
    }
    chart.replaceChildren(...parts);
  }

  /** A week of hours as a heat map, Monday first, darker for more chats. */
  function hoursChart(week) {
    const chart = $('rep-hours-chart');
    const left = 40;
    const cell = Math.max(14, Math.min(28, Math.floor((W - left) / 24)));
    const counts = week.chats;
    const top = Math.max(1, ...counts.flat());
    chart.setAttribute('viewBox', '0 0 ' + (left + 24 * cell) + ' ' + (18 + 7 * cell));
    const parts = [];
    for (let h = 0; h < 24; h += 3) parts.push(svg('text', { x: left + h * cell, y: 12, class: 'axis' }, pad(h)));
    week.days.forEach((name, d) => {
      parts.push(svg('text', { x: 0, y: 18 + d * cell + cell / 2 + 4, class: 'axis' }, name));
      for (let h = 0; h < 24; h += 1) {
        const n = counts[d][h];
        parts.push(titled(svg('rect', { x: left + h * cell, y: 18 + d * cell, width: cell - 2, height: cell - 2,
                                        class: n ? 'heat' : 'heat none', 'fill-opacity': n ? (0.2 + 0.8 * n / top).toFixed(2) : 1,
                                        'data-day': name, 'data-hour': h, 'data-chats': n }),
                          name + ' ' + pad(h) + ':00: ' + n + (n === 1 ? ' chat' : ' chats')));
      }
    });
    chart.replaceChildren(...parts);
  }
}
