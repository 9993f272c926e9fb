"""The DistilMOS networks; they live in the installed package (``distilmos.models.distilmos_model``) so that a
predictor file needs no repository checkout. Re-exported here for code that imports them from the expert."""

from distilmos.models.distilmos_model import (
    CNNBLSTM,
    MLP,
    DistilMOSModel,
    FeatureProcessor,
    LayerHeads,
    MaskedBatchNorm1d,
)

__all__ = ["CNNBLSTM", "MLP", "DistilMOSModel", "FeatureProcessor", "LayerHeads", "MaskedBatchNorm1d"]
