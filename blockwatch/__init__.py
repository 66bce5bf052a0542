"""Blockwatch: the domain and sync library for Neighborhood Block Watch apps."""

__version__ = "0.1.0"
