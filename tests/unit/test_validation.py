"""Settings an admin sends and addresses anyone types, checked without the stack: what is
accepted as given, and every refusal naming its field (the console shows that text)."""

from __future__ import annotations

import re

import pytest

from chalicelib import lifecycle, sites, validate


def test_a_full_widget_document_is_accepted_as_given():
    doc = {"color": "#12abEF", "greeting": "Hi!", "prechat": True, "presence": False, "position": "left",
           "offline_message": "Back at nine.", "prechat_fields": {"name": "required", "email": "off"},
           "faq": [{"title": "Returns", "url": "https://shop.example/returns", "keywords": ["refund"]}]}
    assert sites.validate_widget(doc) is doc
    assert sites.validate_widget({}) == {}


@pytest.mark.parametrize(("doc", "field"), [
    ([], "widget:"),
    ({"colour": "#000000"}, "widget:"),
    ({"color": "red"}, "widget.color"),
    ({"color": "#12345"}, "widget.color"),
    ({"greeting": "x" * 201}, "widget.greeting"),
    ({"prechat": "yes"}, "widget.prechat"),
    ({"presence": 1}, "widget.presence"),
    ({"position": "top"}, "widget.position"),
    ({"offline_message": "x" * (sites.OFFLINE_MESSAGE_MAX + 1)}, "widget.offline_message"),
    ({"prechat_fields": {"phone": "required"}}, "widget.prechat_fields"),
    ({"prechat_fields": {"name": "always"}}, "widget.prechat_fields"),
    ({"faq": [{"title": "x", "url": "javascript:alert(1)"}]}, "widget.faq"),
    ({"faq": [{"title": "", "url": "https://a.example/"}]}, "widget.faq"),
    ({"faq": [{"title": "t", "url": "https://a.example/"}] * 51}, "widget.faq"),
])
def test_a_bad_widget_setting_is_refused_with_its_field_named(doc, field):
    with pytest.raises(ValueError, match=f"^{re.escape(field)}"):
        sites.validate_widget(doc)


def test_a_full_console_document_is_accepted_as_given():
    doc = {"snippets": [{"shortcut": "hours", "text": "We are open 9 to 6."}],
           "holding": {"enabled": True, "after_seconds": 15, "text": "One moment."},
           "rules": [{"id": "r1", "text": "Need help?", "url_contains": "/checkout", "min_seconds": 30}],
           "origins": ["https://shop.example", "http://localhost:8000"],
           "abandon": {"queued_after_seconds": 60, "assigned_after_seconds": 86400}}
    assert sites.validate_console(doc) is doc


@pytest.mark.parametrize(("doc", "field"), [
    ({"macros": []}, "console:"),
    ({"snippets": [{"shortcut": "Hours", "text": "x"}]}, "console.snippets"),
    ({"snippets": [{"shortcut": "a", "text": ""}]}, "console.snippets"),
    ({"snippets": [{"shortcut": "a", "text": "x"}, {"shortcut": "a", "text": "y"}]}, "console.snippets"),
    ({"holding": {"after_seconds": 14}}, "console.holding"),
    ({"holding": {"after_seconds": 3601}}, "console.holding"),
    ({"holding": {"enabled": True, "colour": "red"}}, "console.holding"),
    ({"rules": [{"id": "r", "text": "x", "url_contains": "/"}]}, "console.rules"),  # neither trigger
    ({"rules": [{"id": "r", "text": "x", "url_contains": "/", "min_seconds": 5, "min_pages": 2}]},
     "console.rules"),  # both
    ({"rules": [{"id": "r", "text": "x", "url_contains": "/", "min_pages": 0}]}, "console.rules"),
    ({"origins": ["https://shop.example/path"]}, "console.origins"),
    ({"origins": ["shop.example"]}, "console.origins"),
    ({"abandon": {"queued_after_seconds": 59}}, "console.abandon"),
    ({"abandon": {"assigned_after_seconds": 90.0}}, "console.abandon"),
])
def test_a_bad_console_setting_is_refused_with_its_field_named(doc, field):
    with pytest.raises(ValueError, match=f"^{re.escape(field)}"):
        sites.validate_console(doc)


def test_abandonment_timers_are_whole_seconds_within_bounds():
    low, high = lifecycle.ABANDON_BOUNDS
    assert lifecycle.validate_abandon({"queued_after_seconds": low, "assigned_after_seconds": high})
    for bad in ({"queued_after_seconds": True}, {"assigned_after_seconds": high + 1}, {"other": 100}, []):
        with pytest.raises(ValueError, match=r"^console\.abandon"):
            lifecycle.validate_abandon(bad)


def test_the_company_name_is_one_trimmed_line_or_unset():
    assert sites.valid_name("  Acme Shoes ") == "Acme Shoes"
    assert sites.valid_name(None) is None and sites.valid_name("   ") is None
    for bad in ("Acme\nShoes", "Acme\x00", "x" * (sites.NAME_MAX + 1), 42):
        with pytest.raises(ValueError, match=r"^name:"):
            sites.valid_name(bad)


@pytest.mark.parametrize(("value", "taken"), [
    ("ann@example.com", "ann@example.com"),
    ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    ("user@bücher.example", "user@xn--bcher-kva.example"),
    ("no-at-sign.example", None),
    ("two@@example.com", None),
    ("spaces in@example.com", None),
    ("ann@exa mple.com", None),
    ("x" * 65 + "@example.com", None),
    (None, None),
])
def test_an_address_is_taken_as_ses_will_or_refused(value, taken):
    assert validate.email_address(value) == taken
