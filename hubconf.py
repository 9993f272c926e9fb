"""torch.hub entry points of the DistilMOS toolkit: MOS predictors by reference.

    import torch
    predictor = torch.hub.load("<owner>/<repo>", "predictor", path="hf://<owner>/<repo>/model.pt")
    predictor = torch.hub.load("/path/to/checkout", "predictor", source="local", path="my_model.pt", device="cpu")
    predictor = torch.hub.load("/path/to/checkout", "peer", source="local", name="distillmos")
    predictor.predict(paths=["a.wav", "b.flac"])    # -> [float, float]

``path`` is any model reference of ``distilmos-predict``: a predictor file, an ``hf://`` file (fetched into the
Hugging Face cache) or a ``peer://`` predictor; the result is a :class:`distilmos.predictor.Predictor`. The
checkout's ``distilmos`` package is imported, so its dependencies (the names below) must be installed; a peer
also needs its package (``pip install 'distilmos[peers]'``).
"""

# import names torch.hub checks before calling an entry point: what loading and scoring a predictor imports
dependencies = ["torch", "torchaudio", "numpy", "scipy", "soundfile", "yaml", "tqdm", "s3prl", "huggingface_hub"]


def predictor(path: str, device: str | None = None, trust_remote_code: bool = False, **settings):
    """A MOS predictor: ``path`` a predictor file, ``hf://<owner>/<repo>/<file>[@revision]`` or ``peer://<name>``;
    ``device`` (default: CUDA when available); ``trust_remote_code`` and ``settings`` (``batch_size``,
    ``max_seconds`` ...) as :func:`distilmos.predictor.load` takes them. A file that names code to run is
    refused unless ``trust_remote_code=True``, wherever it came from."""
    from distilmos.predictor import load

    return load(path, device=device, trust_remote_code=trust_remote_code, **settings)


def peer(name: str, device: str | None = None, **settings):
    """Another package's released predictor by name: ``distillmos``, ``dnsmos/p808``, ``dnsmos/ovrl``
    (``dnsmos/sig``, ``dnsmos/bak``), scored by this toolkit's engine (needs ``pip install 'distilmos[peers]'``)."""
    from distilmos.predictor import load

    return load(f"peer://{name}", device=device, **settings)
