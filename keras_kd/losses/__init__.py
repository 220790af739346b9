"""Distillation losses: pure functions in `functional`, Keras `Loss` classes, short-name registry."""

from keras_kd.losses import functional
from keras_kd.losses.attention import AttentionKL, AttentionMSE, AttentionTransfer
from keras_kd.losses.features import CosineEmbedding, FeatureLoss, HiddenStateMSE
from keras_kd.losses.logits import (
    DIST,
    DKD,
    HardDistillation,
    JSDivergence,
    KLDivergence,
    MSELogits,
    ReverseKL,
    SoftTargetCrossEntropy,
    TemperatureLoss,
)
from keras_kd.losses.registry import get, register, registered_names

__all__ = [
    "functional",
    "AttentionKL",
    "AttentionMSE",
    "AttentionTransfer",
    "CosineEmbedding",
    "FeatureLoss",
    "HiddenStateMSE",
    "DIST",
    "DKD",
    "HardDistillation",
    "JSDivergence",
    "KLDivergence",
    "MSELogits",
    "ReverseKL",
    "SoftTargetCrossEntropy",
    "TemperatureLoss",
    "get",
    "register",
    "registered_names",
]
