"""Pretraining the demo's tiny HuBERT offline: the command (:mod:`.tiny_hubert`), HuBERT-style masked
prediction with s3prl's own model (:mod:`.masked_prediction`) and the frozen linear probes that show what
its layers learned (:mod:`.probes`).

Layer: imports the foundation, :mod:`distilmos.data`, :mod:`distilmos.eval`, :mod:`distilmos.models`,
:mod:`distilmos.upstream`, :mod:`distilmos.corpora` and :mod:`distilmos.standins`; never its siblings
:mod:`distilmos.predictor` and :mod:`distilmos.train`, nor anything above them.
"""
