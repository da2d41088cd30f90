"""Imports go down the layers, never up (issue 17).

    handlers  ->  domain  ->  store / adapters  ->  base

* handlers: ``app.py`` and ``chalicelib.dispatch`` (parse, authorize, call the domain, send);
* domain: what the product does (conversations, routing, presence, hours of sites, limits...);
* store / adapters: the table (``chalicelib.models``, ``chalicelib.store*``) and the edges to
  AWS (``aws``, ``fanout``, ``mail``, ``queue``, ``telemetry``);
* base: pure modules every layer may use (configuration, the clock, the error model, the
  protocol and frame builders, checks on values, business-hours arithmetic).

A module may import its own layer and those below. Imports inside functions count too (a
late import hides a dependency, it does not remove it). Computed from the sources' AST
(bench/shape.py), so nothing is imported. A module in no layer fails the test: whoever adds
one says where it belongs.
"""

from __future__ import annotations

from bench import shape

HANDLERS, DOMAIN, ADAPTERS, BASE = 3, 2, 1, 0
LAYER_NAMES = {HANDLERS: "handlers", DOMAIN: "domain", ADAPTERS: "store/adapters", BASE: "base"}

LAYERS: dict[str, int] = {
    "app": HANDLERS,
    "chalicelib.dispatch": HANDLERS,
    **{f"chalicelib.{name}": DOMAIN for name in (
        "abandonment", "agents", "auth", "availability", "conversations", "email_channel", "handback",
        "holding", "inbox", "lifecycle", "limits", "notes", "offline", "presence", "privacy", "ratings",
        "reports",
        "routing", "sites", "stats", "supervision", "transcripts", "transfers", "unattended",
        "visitors")},
    **{f"chalicelib.{name}": ADAPTERS for name in (
        "models", "aws", "fanout", "mail", "queue", "telemetry")},
    **{f"chalicelib.{name}": BASE for name in (
        "config", "clock", "errors", "frames", "protocol", "validate", "hours")},
    "chalicelib": BASE,  # the package's empty __init__
}

#: Upward imports that exist today, each inside a function, each to be removed by the change
#: named here (issue 17). Listed so they are known, not hidden; the test fails once one is
#: gone, so the list only shrinks.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("chalicelib.config", "chalicelib.aws"): "the SSM read of the token secret (settings work)",
    ("chalicelib.store.conversations", "chalicelib.lifecycle"):
        "ConversationModel.lifecycle_view: summaries carry the lifecycle view (states live in lifecycle)",
}


def layer_of(module: str) -> int | None:
    """The layer of a module; the store package (``chalicelib.store`` and its modules) is store."""
    if module == "chalicelib.store" or module.startswith("chalicelib.store."):
        return ADAPTERS
    return LAYERS.get(module)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer, as "a (layer) -> b (layer)"."""
    found = []
    for module, imported in sorted(edges.items()):
        for target in sorted(imported):
            low, high = layer_of(module), layer_of(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({LAYER_NAMES[low]}) -> {target} ({LAYER_NAMES[high]})")
    return found


def test_every_module_has_a_layer():
    modules = set(shape.modules())
    assert len(modules) > 30  # the scan found the package
    unassigned = sorted(m for m in modules if layer_of(m) is None)
    assert not unassigned, f"put these in a layer in tests/test_layers.py: {unassigned}"
    stale = sorted(m for m in LAYERS if m not in modules)
    assert not stale, f"no such modules any more: {stale}"


def test_nothing_imports_upward():
    edges = shape.graph(module_level_only=False)
    assert sum(len(targets) for targets in edges.values()) > 100  # the imports were read
    known = {f"{a} ({LAYER_NAMES[layer_of(a) or 0]}) -> {b} ({LAYER_NAMES[layer_of(b) or 0]})"
             for a, b in KNOWN_UPWARD}
    found = upward(edges)
    assert sorted(set(found) - known) == [], "imports against the layers"
    gone = sorted(known - set(found))
    assert not gone, f"fixed, so remove them from KNOWN_UPWARD: {gone}"


def test_the_check_sees_an_upward_import():
    """The checker itself: a store module importing the domain, and the domain importing a
    handler, are both reported; downward and same-layer imports are not."""
    edges = {"chalicelib.models": {"chalicelib.routing", "chalicelib.config"},
             "chalicelib.routing": {"chalicelib.dispatch", "chalicelib.lifecycle", "chalicelib.fanout"},
             "chalicelib.store.keys": {"chalicelib.offline"}}
    assert upward(edges) == [
        "chalicelib.models (store/adapters) -> chalicelib.routing (domain)",
        "chalicelib.routing (domain) -> chalicelib.dispatch (handlers)",
        "chalicelib.store.keys (store/adapters) -> chalicelib.offline (domain)"]


def test_imports_inside_functions_are_dependencies_too():
    """The late imports the chain measure leaves out are still seen by the layer check."""
    late = shape.graph(module_level_only=False)
    top = shape.graph(module_level_only=True)
    conv = "chalicelib.store.conversations"
    assert "chalicelib.lifecycle" in late[conv] - top[conv]
