"""DistilMOS toolkit: shared helpers of the s3prl downstream experts, the token builder and the predictor.

Submodules are imported where needed (``distilmos.data.audio``, ``distilmos.data.datalist``, ...) so that importing
the package stays cheap.
"""

__version__ = "0.1.0"
