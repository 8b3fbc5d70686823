"""Sphinx configuration of the rlkit book (built by tools/book.py; see there for the layout).

tools/book.py copies this file into the staged source folder, next to the staged notebooks,
docs and API pages, and sets the environment variables read below.
"""
import os

project = "rlkit: natural-gradient deep RL"
author = "the rlkit authors"
root_doc = os.environ.get("RLKIT_BOOK_ROOT", "notebooks/README")
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The notebooks are rendered as committed: never executed by the build.
nb_execution_mode = "off"
# No widget JavaScript from a CDN (the book must work offline); widgets show their text fallback.
nb_ipywidgets_js = {}
nb_output_stderr = "remove"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4
suppress_warnings = ["myst.header", "myst.xref_missing", "misc.highlighting_failure", "mystnb.unknown_mime_type"]

# Math is typeset in the browser by a local MathJax 3 (copied into _static/mathjax by tools/book.py
# from the sphinx-mathjax-offline package, which bundles MathJax with its fonts): no CDN.
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]}}
html_static_path = ["_static"]
html_extra_path = ["_extra"]
html_theme = "alabaster"
html_theme_options = {"nosidebar": False, "fixed_sidebar": True, "page_width": "1100px", "sidebar_width": "240px"}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_title = project
html_copy_source = False
html_show_sourcelink = False

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"


# The docstrings are written for help() as much as for the book: a "|" (|x|, a norm) or a lone "*"
# is text there, not reStructuredText markup. Escape both outside ``literal`` spans.
import re  # noqa: E402

_LITERAL = re.compile(r"(``.+?``)")


def _escape_docstring(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        bullet = re.match(r"\s*\* ", line)  # a list item's marker stays
        head, line = (bullet[0], line[bullet.end():]) if bullet else ("", line)
        parts = _LITERAL.split(line)
        for j in range(0, len(parts), 2):
            text = parts[j].replace("|", r"\|")
            parts[j] = re.sub(r"(?<![*\w])\*(?=[^*\s][^*]*$|\s|$)", r"\*", text)
        lines[i] = head + "".join(parts)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_docstring)
