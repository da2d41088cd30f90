/* The "We're away" banner: agents on shift while the site shows visitors it is closed. Each
 * view from here on keeps its own names in a block. */

{
  // The site's status (the `status` frame: asked on welcome and on each shift change, pushed
  // when it flips). Agents on shift while the site is closed would otherwise wait for chats
  // that cannot come: visitors read "We're away".
  on('status', (frame) => {
    const banner = $('site-closed');
    const closed = frame.agents === true && frame.in_hours === false;
    banner.hidden = !closed;
    if (!closed) {
      banner.textContent = '';
      return;
    }
    const why = typeof frame.closure === 'string'
      ? (frame.closure ? 'closed today: ' + frame.closure : 'closed today') : 'outside business hours';
    const back = Number(frame.next_open) > 0 ? ' Open again ' + dateTime(Number(frame.next_open)) + '.' : '';
    banner.textContent = "Your site shows visitors “We're away” (" + why + ') although agents are on shift: '
      + 'no new chats come in.' + back + (isAdmin() ? ' Business hours are in Settings.' : '');
  });
}
