"""Writes of the apps layer: plain functions, keyword-only, one transaction each."""
