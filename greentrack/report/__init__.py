"""Reports, figures and dashboards of the run store.

Modules: ``model`` (the figures of one run and the names every format shares), ``pricetag``
(the report object: totals, final and tuning, seeds, method notes; ``make_report``), ``render``
(the registry of report formats) and one module per format: ``markdown``, ``latex``, ``html``,
``json``, ``csv`` (``table`` is the table the human formats share). Figures: ``plotting`` (style,
saving, inline SVG), ``runplots`` (power, energy), ``gridplots`` (intensity, schedule plans),
``pareto`` (a metric versus energy across runs; the one Pareto front). ``svgchart`` (fast SVG
charts for the dashboard), ``site`` (the static dashboard), ``frames`` (pandas), ``export``,
``figures`` (what ``greentrack plot`` loads), ``data`` (which store, times, downsampling). The
reads are :mod:`greentrack.store.reads`; synthetic runs for tests are
:mod:`greentrack.testing.synthetic`. Nothing here is imported by ``import greentrack``.
"""
