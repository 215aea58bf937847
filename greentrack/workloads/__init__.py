"""Reference efficient models as benchmark workloads (PyTorch; imported only when used).

One model family per module, each citing its paper:

- ``transformer``  baseline decoder LM and encoder classifier (Vaswani 2017, nanoGPT layout)
- ``early_exit``   per-example exits with calibrated confidence (Schwartz 2020; CALM 2022)
- ``moe``          Mixture-of-Experts FFN: top-k gating, balancing loss, capacity (Switch)
- ``sparse_ffn``   one active unit per block, gathered at inference (Jaszczur 2021)
- ``attention``    random-feature (RFA / FAVOR+) and bounded-memory (ABC) attention
- ``compression``  distillation, int8 weight-only quantization, magnitude pruning
- ``dfa``          direct feedback alignment for a tanh MLP (Nøkland 2016)

and the pieces around them: ``data`` (generated tasks, Tiny Shakespeare loader), ``training``,
``flops`` (``count_flops``) and ``sweep`` (attention cost against sequence length).

``greentrack bench``, one job per module: ``suites`` (the sizes of each suite), ``builders``
(how each workload is built and trained, and the ``WORKLOADS`` registry), ``progress`` (the
stderr line), ``bench`` (the harness: each workload a tracked run), ``results``
(``BenchResult``) and ``output`` (table, JSON, and the Pareto chart drawn by
:mod:`greentrack.report.pareto`). Nothing here is imported by ``import greentrack``.
"""
