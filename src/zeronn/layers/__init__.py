"""Layers, one file per kind: the unit a network is built from (see ``layers.base``).

``LAYERS`` maps each layer class's name to the class: the one table of the layers a model
file may name (a new layer file adds its class here, and model files can hold it).
"""

from zeronn.layers.base import Layer, Param
from zeronn.layers.dense import Activation, Dense
from zeronn.layers.dropout import Dropout
from zeronn.layers.normalization import BatchNorm, LayerNorm

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Activation, BatchNorm, Dense, Dropout, LayerNorm)}

__all__ = ["LAYERS", "Activation", "BatchNorm", "Dense", "Dropout", "Layer", "LayerNorm", "Param"]
