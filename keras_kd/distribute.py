"""Pick a `tf.distribute` strategy and build teacher + student + `Distiller` inside its scope.

keras-kd has no distribution code of its own: the `Distiller`'s losses are Keras `Loss` objects with
`sum_over_batch_size` reduction, which Keras divides by the number of replicas, so the gradients the
strategy all-reduces are those of the **global** batch and the logged losses (unscaled again by
the trackers) are global-batch means. This module only chooses the strategy and the scope.

    strategy = keras_kd.distribute.get_strategy("auto")       # TF_CONFIG → multi-worker, TPU, GPUs
    distiller = keras_kd.distribute.distiller_in_scope(
        strategy, build_student, build_teacher,
        distiller_kwargs={"alpha": 0.9}, compile_kwargs={"optimizer": "adam", "jit_compile": True},
    )
    distiller.fit(dataset.batch(keras_kd.distribute.global_batch_size(64, strategy)))

Strategy names: `"auto"`, `"default"` (one device), `"mirrored"` (all local GPUs, or all logical
CPUs when there is no GPU), `"multi_worker"` (needs `TF_CONFIG`), `"tpu"` (a
`TPUClusterResolver`, resolved lazily).
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu")
STRATEGY_ENV = "KERAS_KD_STRATEGY"


def _tf_config(tf_config=None):
    """The parsed `TF_CONFIG` (argument, else environment), or None."""
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return None
    if isinstance(tf_config, str):
        try:
            tf_config = json.loads(tf_config)
        except json.JSONDecodeError as e:
            raise ValueError(f"`TF_CONFIG` must be JSON. Received: TF_CONFIG={tf_config!r} ({e})") from None
    if not isinstance(tf_config, dict) or "cluster" not in tf_config:
        raise ValueError(
            "`TF_CONFIG` must be a JSON object with a `cluster` and a `task`, e.g. "
            '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={tf_config!r}"
        )
    return tf_config


def _num_workers(tf_config):
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))


def _tpu_requested():
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"))


def _mirrored(devices=None):
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy(devices=devices)
    # No GPU: mirror over the logical CPUs (one replica per logical device), as in the tests. Reduce
    # on one device rather than with collective ops: MirroredStrategy objects over the same devices
    # reuse collective keys, so a second one in the same process fails with "Shape mismatch in the
    # collective instance" as soon as its gradients differ in size from the first one's.
    if devices is None:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _multi_worker(tf_config=None, communication="auto"):
    config = _tf_config(tf_config)
    if config is None:
        raise ValueError(
            "strategy='multi_worker' needs a cluster: set the `TF_CONFIG` environment variable on each "
            'worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\'.'
        )
    if tf_config is not None:
        os.environ["TF_CONFIG"] = json.dumps(config)
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }
    if communication not in implementation:
        raise ValueError(
            f"`communication` must be one of {sorted(implementation)}. Received: communication={communication!r}"
        )
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation[communication])
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _tpu(tpu=None):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise RuntimeError(
            "strategy='tpu' found no reachable TPU. Run on a TPU VM, set `TPU_NAME`, or pass "
            f"`tpu='grpc://host:8470'` (or the TPU's name). Received: tpu={tpu!r}. Cause: {e}"
        ) from e
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(name=None, *, devices=None, tf_config=None, tpu=None, communication="auto"):
    """A `tf.distribute.Strategy` from a name, a config dict or the environment.

    Args:
        name: one of `"auto"`, `"default"`, `"mirrored"`, `"multi_worker"`, `"tpu"`; a dict
            `{"name": ..., **kwargs}` (a YAML `strategy:` block); or a `tf.distribute.Strategy`,
            returned as is. `None` reads `$KERAS_KD_STRATEGY`, else `"auto"`.
            `"auto"` picks a TPU when `TPU_NAME`/`COLAB_TPU_ADDR` is set, multi-worker when
            `TF_CONFIG` lists more than one worker, mirrored over several GPUs, else the default
            (single-device) strategy.
        devices: for `"mirrored"`, the devices to mirror over (default: all GPUs, or all logical
            CPUs when there is no GPU).
        tf_config: for `"multi_worker"`, a `TF_CONFIG` dict/JSON to use instead of the
            environment variable (it is exported to the environment, as TensorFlow reads it there).
        tpu: for `"tpu"`, the TPU name or `grpc://` address (default: the resolver's discovery).
        communication: all-reduce for `"multi_worker"`: `"auto"`, `"ring"` or `"nccl"`.

    Create the strategy at program start, before any other TensorFlow op (a requirement of
    `MultiWorkerMirroredStrategy` and of TPU initialization).
    """
    if isinstance(name, tf.distribute.Strategy):
        return name
    if isinstance(name, dict):
        config = dict(name)
        name = config.pop("name", None)
        return get_strategy(name, **config)
    if name is None:
        name = os.environ.get(STRATEGY_ENV, "auto")
    if name not in STRATEGY_NAMES:
        raise ValueError(f"Unknown strategy: {name!r}. Valid names: {', '.join(STRATEGY_NAMES)}.")
    if name == "auto":
        if tpu is not None or _tpu_requested():
            name = "tpu"
        elif (config := _tf_config(tf_config)) is not None and _num_workers(config) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored(devices)
    if name == "multi_worker":
        return _multi_worker(tf_config, communication)
    return _tpu(tpu)


def global_batch_size(per_replica_batch_size, strategy=None):
    """The batch size to give `Dataset.batch` so each replica sees `per_replica_batch_size`."""
    strategy = strategy or tf.distribute.get_strategy()
    return int(per_replica_batch_size) * strategy.num_replicas_in_sync


def per_replica_batch_size(global_batch, strategy=None):
    """`global_batch / replicas`; raises when it does not divide evenly (replicas would differ)."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if int(global_batch) % replicas:
        raise ValueError(
            f"The global batch size must be a multiple of the number of replicas ({replicas}). "
            f"Received: global_batch={global_batch}"
        )
    return int(global_batch) // replicas


def build_in_scope(strategy, build_fn, *args, **kwargs):
    """Call `build_fn(*args, **kwargs)` inside `strategy.scope()` (models, optimizer, variables)."""
    with get_strategy(strategy).scope():
        return build_fn(*args, **kwargs)


def distiller_in_scope(
    strategy, build_student, build_teacher=None, distiller_kwargs=None, compile_kwargs=None
):
    """Build teacher, student and a compiled `keras_kd.Distiller` inside `strategy.scope()`.

    Args:
        strategy: a strategy or anything `get_strategy` accepts.
        build_student: a no-argument callable returning the student `keras.Model`.
        build_teacher: a no-argument callable (called first) returning the teacher (a model, an adapter, or a
            `keras.saving.load_model(...)` call), or None to train on cached teacher outputs.
        distiller_kwargs: keyword arguments of `Distiller` (`alpha`, `distillation_loss`, ...).
        compile_kwargs: keyword arguments of `Distiller.compile` (`optimizer`, `jit_compile`, ...);
            the optimizer must be created here too, so pass a name, a config, or a callable
            returning an optimizer.
    """
    from keras_kd.distiller import Distiller

    def build():
        teacher = build_teacher() if build_teacher is not None else None
        distiller = Distiller(student=build_student(), teacher=teacher, **(distiller_kwargs or {}))
        kwargs = dict(compile_kwargs or {})
        if callable(kwargs.get("optimizer")) and not isinstance(kwargs["optimizer"], keras.optimizers.Optimizer):
            kwargs["optimizer"] = kwargs["optimizer"]()
        distiller.compile(**kwargs)
        return distiller

    return build_in_scope(strategy, build)


@contextlib.contextmanager
def dtype_policy(policy):
    """Build layers under a dtype policy, then restore the previous global policy.

    Use it to run the teacher in a lower precision than the student:

        with keras_kd.distribute.dtype_policy("mixed_bfloat16"):
            teacher = build_teacher()          # bfloat16 compute, float32 variables
        student = build_student()              # the global policy (e.g. float32)

    Losses are computed in float32 whatever the models' policies.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)
