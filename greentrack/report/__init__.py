"""Reports, figures and dashboards of the run store.

Modules: ``pricetag`` (the figures of a price tag and the report object), ``formats``
(Markdown, JSON, CSV), ``latex``, ``html``, ``plots`` (matplotlib figures), ``svgchart`` (fast
SVG charts for the dashboard), ``site`` (the static dashboard), ``frames`` (pandas), ``export``,
``figures`` (what ``greentrack plot`` loads), ``data`` (fast reads), ``synthetic`` (fixed runs
for tests, examples and benchmarks). Nothing here is imported by ``import greentrack``.
"""
