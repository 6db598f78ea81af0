"""Layers, one file per kind: the unit a network is built from (see ``layers.base``)."""

from zeronn.layers.base import Layer, Param
from zeronn.layers.dense import Activation, Dense
from zeronn.layers.dropout import Dropout
from zeronn.layers.normalization import BatchNorm, LayerNorm

__all__ = ["Activation", "BatchNorm", "Dense", "Dropout", "Layer", "LayerNorm", "Param"]
