"""The SSL-MOS network; it lives in the installed package (``distilmos.models.ssl_mos``) so that a predictor
file needs no repository checkout. Re-exported here for code that imports it from the expert."""

from distilmos.models.ssl_mos import SSLMOSModel

__all__ = ["SSLMOSModel"]
