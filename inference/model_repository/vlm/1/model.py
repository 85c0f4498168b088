"""Triton loads this file; everything lives in the installed ``inference`` package."""

from inference.triton_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
