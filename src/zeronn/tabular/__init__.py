"""Tables in, models out: the Python side of the ``zeronn`` command (pandas DataFrames).

``columns``: what each column is (numbers, booleans, categories, dates, or left out);
``preprocessing``: :class:`Preprocessor`, the fitted encoding of those columns into numbers;
``model``: :class:`TabularModel`, an MLP for named columns (encoding, scaling, labels, the
model file).
"""

from zeronn.tabular.columns import KINDS, ColumnPlan, plan_columns
from zeronn.tabular.model import CLASS_WEIGHTS, LABEL_KINDS, TASKS, TabularModel
from zeronn.tabular.preprocessing import Preprocessor

__all__ = ["CLASS_WEIGHTS", "KINDS", "LABEL_KINDS", "TASKS", "ColumnPlan", "Preprocessor",
           "TabularModel", "plan_columns"]
