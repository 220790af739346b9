"""The library's default distillation settings, in one place.

`Distiller(student=..., teacher=...)` with no loss arguments, the logit losses' default
temperature and the CLI's config defaults all read these values. They are chosen by measurement
(see `benchmarks/RESULTS.md`), and a test pins them.
"""

#: Weight of the distillation term: `L = alpha * distillation + (1 - alpha) * student loss`.
DEFAULT_ALPHA = 0.9
#: Softmax temperature of the logit losses (`KLDivergence`, ...).
DEFAULT_TEMPERATURE = 4.0
#: Registered name of the default distillation loss.
DEFAULT_LOSS = "kl"
