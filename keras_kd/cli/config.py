"""Config loading for the CLI: the schema lives in `keras_kd.pipeline.config` (re-exported here)."""

from keras_kd.pipeline.config import (  # noqa: F401
    AUGMENT_KEYS,
    ConfigError,
    DataConfig,
    DistillationConfig,
    LoadOptions,
    ModelConfig,
    RunConfig,
    SourceConfig,
    StudentConfig,
    TeacherConfig,
    TrainingConfig,
    check_builder,
    deep_merge,
    load_config,
    load_yaml,
    parse_config,
)
