"""Helpers the test packages share (test modules do not import each other)."""
