"""Evaluation for cogfun: metrics for the toy world and for real videos."""
