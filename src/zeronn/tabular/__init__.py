"""Tables in, models out: the Python side of the ``zeronn`` command (pandas DataFrames).

``model``: :class:`TabularModel`, an MLP for named columns (scaling, labels, the model file).
"""

from zeronn.tabular.model import LABEL_KINDS, TASKS, TabularModel

__all__ = ["LABEL_KINDS", "TASKS", "TabularModel"]
