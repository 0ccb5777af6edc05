"""The audience logic engine: tree validation (tree.py), polars (previews), SQL (materialisation) and a
plain-Python reference evaluator (tests)."""

from audiences.logic.tree import Condition, FieldRef, Group, Node, TreeError, parse

__all__ = ["Condition", "FieldRef", "Group", "Node", "TreeError", "parse"]
