"""Upstreams: building one from what the user gives (:mod:`.build`: an s3prl hub name, ``NAME_local`` with a
checkpoint, ``package.module:callable``), the batch-independent forward of s3prl's WavLM / HuBERT / wav2vec 2.0
(:mod:`.padding_exact`), the stand-in upstream that reads a feature cache (:mod:`.cached`), tiny random
checkpoints in s3prl's formats (:mod:`.tiny`), and the upstreams this toolkit adds to s3prl's hub by name
(:mod:`.hub`: LFCC features, utterance embeddings, Resemblyzer's GE2E d-vector).

Layer: imports the foundation and :mod:`distilmos.data`, :mod:`distilmos.eval`, :mod:`distilmos.models`;
never its siblings :mod:`distilmos.corpora` and :mod:`distilmos.standins`, nor anything above them.
"""
