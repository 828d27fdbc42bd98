"""The extension as the wheel ships it: a production build, no source maps, small."""

from __future__ import annotations

import json

from .lab import BUILT

#: the budget of the extension's JavaScript, minified (issue 15)
MAX_JS_BYTES = 250 * 1024


def test_the_shipped_extension_is_a_small_production_build() -> None:
    static = BUILT.parent / "static"
    scripts = sorted(static.glob("*.js"))
    assert scripts, f"no built extension in {static}: run `make labextension`"
    assert sorted(p.name for p in static.glob("*.map")) == []  # no source maps shipped
    total = sum(p.stat().st_size for p in scripts)
    assert total < MAX_JS_BYTES, f"{total} bytes of JavaScript"
    for script in scripts:  # a development build keeps the bundler's module banners
        assert "/******/" not in script.read_text(), script.name
    package = json.loads(BUILT.read_text())
    assert package["name"] == "jupyter-ml-workbench"
