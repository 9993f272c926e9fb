"""Data: 16 kHz audio, data lists (reading, writing, preflight), the one length-batching rule, the experts'
datasets and loaders, and generic list preparation (:mod:`.score_list`).

Layer: imports only the foundation (:mod:`distilmos.errors`, :mod:`distilmos.fileio`,
:mod:`distilmos.registry`) and third-party libraries.
"""
