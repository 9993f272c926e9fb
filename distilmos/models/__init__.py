"""The inference models of the toolkit's experts: plain ``torch.nn.Module`` s that turn featurizer output
``[batch, frames, dim]`` (with valid frame counts) into MOS predictions.

They live in the installed package, so that a predictor file can be scored without the repository's
``downstream/`` folder; each ``downstream/<name>/`` expert imports its model from here. Every model has a
static ``kwargs_from_state(state_dict)`` that reads its constructor arguments off its weights, so a model
is rebuilt from a state dict alone (:func:`distilmos.registry.build_model`). Which expert uses which
model is registered in :mod:`distilmos.registry`. Beside them: :mod:`.masking` (valid-frame masks and masked
means) and :mod:`.entmax` (1.5-entmax, the layer weighting of the DistilMOS authors' released code).

Layer: imports only the foundation (:mod:`distilmos.errors`, :mod:`distilmos.fileio`,
:mod:`distilmos.registry`), torch and other third-party libraries.
"""
