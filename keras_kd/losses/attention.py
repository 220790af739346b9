"""Attention losses: activation-based attention transfer and transformer attention-map matching.

Both are feature losses (`keras_kd.losses.features.FeatureLoss`): layer maps, weights, logging and
padding masks work the same way; they compare maps of equal shape, so they have no projection.
"""

from keras_kd.losses import functional
from keras_kd.losses.features import FeatureLoss
from keras_kd.losses.registry import register


class _NoProjection(FeatureLoss):
    supports_projection = False

    def __init__(self, layer_map=None, projection=False, **kwargs):
        super().__init__(layer_map=layer_map, projection=projection, **kwargs)


@register("attention_transfer", "at")
class AttentionTransfer(_NoProjection):
    """Activation-based attention transfer, Zagoruyko & Komodakis 2017 ("Paying More Attention to
    Attention").

    `loss = weight · mean_batch Σ_pairs mean_j (Q^S_j - Q^T_j)²` with `Q = vec(mean_c |F|^p)`
    L2-normalized over positions `j`, on channels-last feature maps (images: (batch, h, w, c);
    sequences: (batch, length, c)). The paper uses `weight = β/2 = 500`. Channel counts may differ.

    Args:
        p: the exponent of `|F|^p` (paper: 2).
        (others as `FeatureLoss`; `key` defaults to `"hidden_states"`.)
    """

    check_widths = False  # the map averages over channels: widths may differ

    def __init__(self, layer_map=None, p=2.0, name="attention_transfer", **kwargs):
        super().__init__(layer_map=layer_map, name=name, **kwargs)
        self.p = float(p)

    def pair_loss(self, teacher, student, mask):
        return functional.attention_transfer(teacher, student, mask, p=self.p)

    def get_config(self):
        return {**super().get_config(), "p": self.p}


@register("attention_mse", "tinybert_attention")
class AttentionMSE(_NoProjection):
    """TinyBERT attention loss, Jiao et al. 2020: `weight · mean_batch Σ_pairs mean_{h,q,k} (A^S - A^T)²`.

    Maps come from the `"attentions"` list (batch, heads, queries, keys); only real (unpadded)
    query/key pairs count.
    """

    default_key = "attentions"

    def __init__(self, layer_map=None, name="attention_mse", **kwargs):
        super().__init__(layer_map=layer_map, name=name, **kwargs)

    def pair_loss(self, teacher, student, mask):
        return functional.attention_mse(teacher, student, mask)


@register("attention_kl", "minilm_attention")
class AttentionKL(_NoProjection):
    """MiniLM attention distillation, Wang et al. 2020: `weight · mean_batch Σ_pairs mean_{h,q}
    KL(A^T_{h,q} ‖ A^S_{h,q})` over real keys and queries.

    Args:
        from_logits: the maps are attention scores (log-softmaxed over real keys here) rather than
            probabilities.
    """

    default_key = "attentions"

    def __init__(self, layer_map=None, from_logits=False, name="attention_kl", **kwargs):
        super().__init__(layer_map=layer_map, name=name, **kwargs)
        self.from_logits = bool(from_logits)

    def pair_loss(self, teacher, student, mask):
        return functional.attention_kl(teacher, student, mask, from_logits=self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
