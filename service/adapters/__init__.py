"""Classifier adapters: one module per backend behind one small async interface."""
