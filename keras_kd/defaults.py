"""The library's default distillation settings, in one place.

`Distiller(student=..., teacher=...)` with no loss arguments, the logit losses' default
temperature and the CLI's config defaults all read these values. They are chosen by measurement
(benchmarks/RESULTS.md, section "Library defaults"; `benchmarks/defaults_sweep.py`), and
tests/test_defaults.py pins them.

Why T=1 and alpha=0.9: on MNIST-5k (MLP 784-256-256 → 784-32, 15 epochs, 3 seeds) and Fashion-MNIST
(CNN 421 k → 9 k, 6 epochs, 3 seeds), with `compile(optimizer="adam")` and no augmentation, KL at
T=1 is the only setting that is not below labels-only training at equal epochs; T=2 and T=4 (the
former default, Hinton's classic choice for large models) are 0.3–1.6 pt below it on both. Small
students cannot match a high-temperature distribution in a short schedule; at T=1 the teacher's
outputs add its uncertainty between similar classes to the labels without diluting them. alpha
0.5–1.0 at T=1 are within seed noise of each other; 0.9 keeps a label term for teachers that are
wrong on part of the training set.
"""

#: Weight of the distillation term: `L = alpha * distillation + (1 - alpha) * student loss`.
DEFAULT_ALPHA = 0.9
#: Softmax temperature of the logit losses (`KLDivergence`, ...).
DEFAULT_TEMPERATURE = 1.0
#: Registered name of the default distillation loss.
DEFAULT_LOSS = "kl"
