"""Evaluation: the MOS metrics (utterance and system level), the metrics and predictions files of a run,
and the CCA analysis of hidden states.

Layer: imports only the foundation (:mod:`distilmos.errors`, :mod:`distilmos.fileio`,
:mod:`distilmos.registry`) and third-party libraries.
"""
