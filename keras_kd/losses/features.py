"""Intermediate-layer losses: match chosen teacher and student outputs, not just the logits.

A feature loss is a `keras.layers.Layer` that `Distiller(feature_losses=[...])` calls as
`term(teacher_outputs, student_outputs, sample_weight=None)` on the two models' output dicts and that
returns `weight · mean_batch Σ_pairs loss(teacher[t], student[s])`, logged under the term's `name`.

Which outputs are matched is a layer map `{student_layer: teacher_layer}` (see
`keras_kd.layer_mapping`): an int indexes the list under `key` (`"hidden_states"` by default), a
string names an output (`"embedding"`, or a name given with `Distiller(student_features=...)`), and
`"uniform"` / `"last_k"` pick layers for stacks of different depth once the list lengths are known.

When widths differ the term owns a learned linear projection (a `Dense`, student width → teacher
width) per pair. It is a weight of the term, tracked by the `Distiller` and trained with the student,
and never part of `distiller.student`. The term builds its projections from the output shapes on
its first call, which `Distiller` makes during Keras' symbolic build, before the optimizer is built.

A padding mask (batch, positions), 1 for real tokens, is read from the outputs under `mask_key`
(`Distiller` copies `x["padding_mask"]` there); padded positions change nothing.
"""

import keras

from keras_kd import _keras_compat as compat
from keras_kd import layer_mapping
from keras_kd.losses import functional
from keras_kd.losses.registry import register


def select_output(outputs, selector, key):
    """`outputs[key][selector]` for an int selector, `outputs[selector]` for a string."""
    if isinstance(selector, bool) or not isinstance(selector, (int, str)):
        raise TypeError(f"A layer must be an int index or an output name. Received: {selector!r}")
    if isinstance(selector, str):
        if selector not in outputs:
            raise ValueError(
                f"No output named {selector!r}. Available outputs: {sorted(outputs)}. Expose intermediate "
                "outputs by returning a dict from the model or with Distiller(student_features=..., "
                "teacher_features=...)."
            )
        return outputs[selector]
    if key not in outputs or not isinstance(outputs[key], (list, tuple)):
        raise ValueError(
            f"Layer index {selector} needs a list of outputs under {key!r}. Available outputs: {sorted(outputs)}."
        )
    return outputs[key][selector]


class FeatureLoss(keras.layers.Layer):
    """Base class of intermediate-layer losses (see the module docstring).

    Args:
        layer_map: `{student_layer: teacher_layer}`, a list of pairs, or `"uniform"` / `"last_k"`.
            Default: the last entry of each model's `key` list.
        key: the output holding the per-layer list that int layers index.
        weight: multiplies the summed per-pair losses.
        projection: `"auto"` (a projection only where widths differ), `True` (always) or `False`.
        mask_key: the output holding the (batch, positions) padding mask, if any.
    Subclasses implement `pair_loss(teacher, student, mask)` returning one value per example.
    """

    default_key = "hidden_states"
    supports_projection = True
    check_widths = True

    def __init__(
        self,
        layer_map=None,
        key=None,
        weight=1.0,
        projection="auto",
        mask_key="padding_mask",
        name=None,
        dtype="float32",
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.layer_map = [(-1, -1)] if layer_map is None else layer_map
        if not isinstance(self.layer_map, str):
            self.layer_map = layer_mapping.resolve(self.layer_map)
        else:
            layer_mapping.resolve(self.layer_map, 1, 1)  # validate the strategy name now
        self.key = key or self.default_key
        self.weight = float(weight)
        if projection not in ("auto", True, False):
            raise ValueError(
                f"`projection` must be 'auto', True or False. Received: projection={projection!r}"
            )
        if projection is True and not self.supports_projection:
            raise ValueError(
                f"`{type(self).__name__}` compares maps of equal shape and has no projection."
            )
        self.projection = projection
        self.mask_key = mask_key
        self.pairs = None
        self.projections = []
        self._projection_of_pair = []

    def build(self, teacher_outputs_shape, student_outputs_shape):
        def depth(shapes):
            value = shapes.get(self.key)
            return len(value) if isinstance(value, (list, tuple)) else None

        self.pairs = layer_mapping.resolve(
            self.layer_map, depth(student_outputs_shape), depth(teacher_outputs_shape)
        )
        self._projection_of_pair = []
        for student_layer, teacher_layer in self.pairs:
            s_width = select_output(student_outputs_shape, student_layer, self.key)[-1]
            t_width = select_output(teacher_outputs_shape, teacher_layer, self.key)[-1]
            needed = self.projection is True or (
                self.projection == "auto" and self.supports_projection and s_width != t_width
            )
            if not needed:
                if self.check_widths and s_width != t_width:
                    raise ValueError(
                        f"`{self.name}`: student layer {student_layer!r} has width {s_width} and teacher layer "
                        f"{teacher_layer!r} width {t_width}; use projection='auto' or matching widths."
                    )
                self._projection_of_pair.append(None)
                continue
            dense = keras.layers.Dense(
                t_width,
                dtype=self.dtype_policy,
                name=f"{self.name}_projection_{len(self.projections)}",
            )
            dense.build((None, s_width))
            self._projection_of_pair.append(len(self.projections))
            self.projections.append(dense)

    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        mask = (
            student_outputs.get(self.mask_key, teacher_outputs.get(self.mask_key))
            if self.mask_key
            else None
        )
        total = None
        for (student_layer, teacher_layer), index in zip(
            self.pairs, self._projection_of_pair, strict=True
        ):
            student = select_output(student_outputs, student_layer, self.key)
            teacher = select_output(teacher_outputs, teacher_layer, self.key)
            if index is not None:
                student = self.projections[index](student)
            value = self.pair_loss(teacher, student, mask)
            total = value if total is None else total + value
        loss = compat.reduce_weighted_values(
            total, sample_weight=sample_weight, reduction="sum_over_batch_size", dtype="float32"
        )
        return self.weight * loss

    def pair_loss(self, teacher, student, mask):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        layer_map = (
            self.layer_map
            if isinstance(self.layer_map, str)
            else [list(pair) for pair in self.layer_map]
        )
        config.update(
            {
                "layer_map": layer_map,
                "key": self.key,
                "weight": self.weight,
                "projection": self.projection,
                "mask_key": self.mask_key,
            }
        )
        return config


@register("hidden_mse", "fitnets")
class HiddenStateMSE(FeatureLoss):
    """Hidden-state regression: FitNets (Romero et al. 2015) / TinyBERT (Jiao et al. 2020).

    `loss = weight · mean_batch Σ_pairs mean_{positions, d} (W h^S + b - h^T)²`, with the learned
    projection `W` only where the widths differ (TinyBERT's `W_h`, FitNets' regressor).
    """

    def __init__(self, layer_map=None, name="hidden_mse", **kwargs):
        super().__init__(layer_map=layer_map, name=name, **kwargs)

    def pair_loss(self, teacher, student, mask):
        return functional.hidden_state_mse(teacher, student, mask)


@register("cosine_embedding", "cosine")
class CosineEmbedding(FeatureLoss):
    """Cosine embedding loss on hidden states (DistilBERT, Sanh et al. 2019).

    `loss = weight · mean_batch Σ_pairs mean_positions (1 - cos(W h^S + b, h^T))`.
    """

    def __init__(self, layer_map=None, name="cosine_embedding", **kwargs):
        super().__init__(layer_map=layer_map, name=name, **kwargs)

    def pair_loss(self, teacher, student, mask):
        return functional.cosine_embedding(teacher, student, mask)
