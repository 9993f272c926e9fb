"""The SALF-MOS network; it lives in the installed package (``distilmos.models.salf_mos``) so that a predictor
file needs no repository checkout. Re-exported here for code that imports it from the expert."""

from distilmos.models.salf_mos import SALFMOSModel

__all__ = ["SALFMOSModel"]
