"""Data: 16 kHz audio, data lists (reading, writing, preflight), the one length-batching rule, the experts'
datasets and loaders, generic list preparation (:mod:`.score_list`), and the readers of the token store and
the feature cache (:mod:`.stores`; :mod:`upstream_tokens` writes them).

Layer: imports only the foundation (:mod:`distilmos.errors`, :mod:`distilmos.fileio`,
:mod:`distilmos.registry`) and third-party libraries.
"""
