"""Evaluation: the MOS metrics (utterance and system level), the metrics and predictions files of a run,
the CCA analysis of hidden states, and the description of the machine a speed was measured on.

Layer: imports only the foundation (:mod:`distilmos.errors`, :mod:`distilmos.fileio`,
:mod:`distilmos.registry`) and third-party libraries.
"""
