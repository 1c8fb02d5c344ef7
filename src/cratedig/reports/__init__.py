"""HTML reports: drift (:func:`drift_html`), the library overview (:func:`library_html`) and
the ranker evaluation (:func:`evaluation_html`).

Each report is one self-contained HTML file: figures are matplotlib PNGs embedded as data URIs
or inline SVG, no script, no CDN, so it opens anywhere and can be mailed or served as it is.
"""

from cratedig.reports.drift import drift_html
from cratedig.reports.evaluation import evaluation_html
from cratedig.reports.library import library_html, library_overview, library_page

__all__ = ["drift_html", "evaluation_html", "library_html", "library_overview", "library_page"]
