"""The hostile-text corpus: what visitors and agents may type, render as text everywhere.

Each payload that could run sets ``window.__xss`` (or opens a dialog), so a test that finds
``window.__xss`` still undefined and no dialog knows none ran; a test that finds the same
characters in the element's text knows they were shown, not parsed. Used by
tests/test_xss.py (both ends, every place people's text is shown), tests/test_widget.py and
tests/test_browser.py.
"""

from __future__ import annotations

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=3</script>"

CORPUS = [
    IMG,
    '<svg onload="window.__xss=2"><circle r="9"/></svg>',
    SCRIPT,
    '<iframe srcdoc="<script>parent.__xss=4</script>"></iframe>',
    "javascript:window.__xss=5",
    '<a href="javascript:window.__xss=6">click me</a>',
    "[click me](javascript:window.__xss=7) **bold** <https://evil.example>",  # markdown-like
    '" onmouseover="window.__xss=8" autofocus onfocus="window.__xss=9" x="',  # attribute breaking
    "'><details open ontoggle=alert(10)>",
    "</textarea></p></li><script>window.__xss=11</script>",
    "{{constructor.constructor('window.__xss=12')()}} ${window.__xss=13}",
    "&lt;b&gt;not bold&lt;/b&gt; &amp;amp; &#60;i&#62;",
    "\u202egnp.exe \u202dinvoice (RTL override)",
    "x" * 3990 + "<b>end</b>",  # one 4,000-character word, the limit
    '"><style>*{display:none}</style>',
]

# Records dialogs instead of blocking on them; the tests also listen for Playwright's event.
GUARD = """(() => {
  window.__dialogs = [];
  for (const f of ['alert', 'confirm', 'prompt']) window[f] = (m) => { window.__dialogs.push(String(m)); };
})();"""

# What must never be in the page after rendering the corpus (document and the widget's
# shadow root): event-handler attributes, javascript: links, frames, a payload's script.
FIND_ACTIVE = """() => {
  const roots = [document];
  const host = document.querySelector('[data-chat-widget]');
  if (host && host.shadowRoot) roots.push(host.shadowRoot);
  const found = [];
  for (const root of roots) {
    for (const e of root.querySelectorAll('*')) {
      for (const a of e.attributes) {
        if (a.name.startsWith('on')) found.push(e.tagName + ' ' + a.name);
        if (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name)
            && /^\\s*javascript:/i.test(a.value)) found.push(e.tagName + ' ' + a.name);
      }
      if (['IFRAME', 'FRAME', 'OBJECT', 'EMBED'].includes(e.tagName)) found.push(e.tagName);
      if (e.tagName === 'SCRIPT' && e.textContent.includes('__xss')) found.push('SCRIPT');
    }
  }
  return {found, xss: typeof window.__xss, dialogs: window.__dialogs || []};
}"""


def assert_inert(page: object, dialogs: list[str]) -> None:
    """Nothing from the corpus ran or became live markup on ``page``."""
    state = page.evaluate(FIND_ACTIVE)  # type: ignore[attr-defined]
    assert state == {"found": [], "xss": "undefined", "dialogs": []}, state
    assert dialogs == []
    assert page.locator("body").is_visible()  # type: ignore[attr-defined]  # the <style> hid nothing
