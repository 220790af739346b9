"""One pipeline behind `keras-kd distill`, `keras-kd demo` and Python: a validated config runs
teacher → cache → distill → scratch baseline → compare → export → report, and returns its results.

```python
from keras_kd import pipeline

result = pipeline.run("examples/configs/demo.yaml", quick=True, seed=0)
result.metrics["teacher"]["accuracy"], result.metrics["distilled"]["accuracy"], result.paths["report"]
```

- `run(config_or_path, quick=False, smoke=False, seed=None, run_name=None, output_dir=None,
  runs_dir=None, allow_code=False, allow_list=(), verbose=1)` → `PipelineResult`;
- `load_config(path, quick=False, ...)` / `parse_config(mapping, ...)`: the validated `RunConfig`
  (reference: docs/guides/configs.md);
- `bundled_config(name)`: the path of a config shipped with keras-kd (`"demo"`).
"""

import os

from keras_kd.pipeline.common import PipelineResult
from keras_kd.pipeline.config import ConfigError, RunConfig, load_config, parse_config
from keras_kd.pipeline.steps import run_config

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def bundled_config(name):
    """The path of a config shipped inside the package (`keras_kd/configs/<name>.yaml`)."""
    path = os.path.join(CONFIGS_DIR, f"{name}.yaml")
    if not os.path.isfile(path):
        names = sorted(f[:-5] for f in os.listdir(CONFIGS_DIR) if f.endswith(".yaml"))
        raise ConfigError(f"No bundled config {name!r}. Bundled configs: {', '.join(names)}.")
    return path


def run(config, quick=False, smoke=False, seed=None, run_name=None, output_dir=None, runs_dir=None,
        allow_code=False, allow_list=(), verbose=1):
    """Run a config (a path, a mapping or a `RunConfig`) and return its `PipelineResult`.

    `quick` applies the config's `quick:` overrides (a small, fast run); `smoke` runs one step on a
    tiny slice (checks a config end to end); `seed` and `run_name` override the config's.
    """
    overrides = {"seed": seed} if seed is not None else None
    if isinstance(config, RunConfig):
        if quick or overrides:
            config = parse_config(config.to_dict(), name=config.name, quick=quick, overrides=overrides,
                                  allow_code=allow_code or config.options.allow_code,
                                  allow_list=allow_list or config.options.allow_list)
    elif isinstance(config, dict):
        config = parse_config(config, quick=quick, allow_code=allow_code, allow_list=allow_list, overrides=overrides)
    else:
        config = load_config(config, quick=quick, allow_code=allow_code, allow_list=allow_list, overrides=overrides)
    if run_name:
        config.name = run_name
    return run_config(config, smoke=smoke, output_dir=output_dir, runs_dir=runs_dir, verbose=verbose)


__all__ = ["ConfigError", "PipelineResult", "RunConfig", "bundled_config", "load_config", "parse_config", "run",
           "run_config"]
