"""Per-layer k-means tokens of any s3prl upstream: the self-distillation targets of DistilMOS.

    python -m upstream_tokens fit  --csv data/bvcc/train.csv -u wavlm_base_plus --out tokens/wavlm_base_plus_k200
    python -m upstream_tokens dump --csv data/bvcc/val.csv --store tokens/wavlm_base_plus_k200 --split val

Modules: :mod:`.extract` (upstream, frame law, length-aware batches, one forward -> unpadded frames of
every layer), :mod:`.kmeans` (sklearn and torch online k-means), :mod:`.fit`, :mod:`.dump` (resumable,
sharded, ``merge``), :mod:`.store` (atomic writers), :mod:`.feature_cache` (a frozen upstream's hidden
states), :mod:`.cli`. The format and the readers are :mod:`distilmos.data.stores` (re-exported here): the
package reads what this tool writes without importing it, and no ``distilmos`` module imports
``upstream_tokens``.

Reader, for a downstream::

    from distilmos.data.stores import TokenStore, TokenStoreError   # or: from upstream_tokens.store import ...
    store = TokenStore("tokens/wavlm_base_plus_k200")
    store.check("wavlm_base_plus", None, n_clusters=200, layers=list(range(1, 13)))
    ids = store.tokens("sys64e2f-utt9c183cd")     # LongTensor [frames, len(store.layers)]

Frame rule: tokens have the upstream's own frame count for the waveform alone; trim tokens and features
to the shorter of the two and treat a gap of more than 2 frames as a store/upstream mismatch.
"""

from .store import TokenStore, TokenStoreError

__all__ = ["TokenStore", "TokenStoreError"]
