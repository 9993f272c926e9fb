"""The MoE-MOS network; it lives in the installed package (``distilmos.models.moe_mos``) so that a predictor
file needs no repository checkout. Re-exported here for code that imports it from the expert."""

from distilmos.models.moe_mos import MoEMOSModel

__all__ = ["MoEMOSModel"]
