"""Rename a function: its definition, every reference, imports and ``__all__`` entries."""

from __future__ import annotations

import argparse

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand


class RenameFunction(VisitorBasedCodemodCommand):
    DESCRIPTION = "Rename a function everywhere it is named."

    def __init__(self, context: CodemodContext, old: str, new: str) -> None:
        super().__init__(context)
        self.old = old
        self.new = new
        self._in_all = False

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument("--old", required=True, help="The current name.")
        arg_parser.add_argument("--new", required=True, help="The new name.")

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        if original_node.value == self.old:
            return updated_node.with_changes(value=self.new)
        return updated_node

    def visit_Assign(self, node: cst.Assign) -> None:
        self._in_all = any(
            isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in node.targets
        )

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> cst.Assign:
        self._in_all = False
        return updated_node

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.SimpleString:
        if self._in_all and original_node.evaluated_value == self.old:
            quote = original_node.quote
            return updated_node.with_changes(value=f"{quote}{self.new}{quote}")
        return updated_node
