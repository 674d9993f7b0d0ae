"""A small Sphinx extension for the course website (loaded by book/_config.yml).

Sphinx 7.4 lists sphinx-thebe's inline configuration script twice on every page, and the
second copy fails in the browser ("Identifier 'THEBE_JS_URL' has already been declared");
sphinx-togglebutton's inline script is listed twice too. This keeps the first copy of
every script (the copies differ only in a filename of None or "").
"""


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # One copy has filename None, the other "": compare them as equal.
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
