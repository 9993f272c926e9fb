"""Scoring audio with a trained model: a self-contained predictor file, ``distilmos-predict``, a Python API.

    from distilmos.predictor import export, load
    export("exp/my_exp/best-states-val.ckpt", "my_model.pt")   # or: distilmos-predict export -e ... -o ...
    predictor = load("my_model.pt")
    predictor.predict(wav=waveform, sr=44100)                   # -> float
    predictor.predict(paths=["a.wav", "b.wav"])                 # -> [float, float]

Modules: :mod:`.fileformat` (the file), :mod:`.export` (checkpoint -> file, model card), :mod:`.upstream_entry`
and :mod:`.downstreams` (what is stored of each part and how it is rebuilt), :mod:`.pipeline` (the
inference network), :mod:`.predictor` (batching, long files, bad files, ``score_iter``), :mod:`.chunking`,
:mod:`.inputs`, :mod:`.streaming` (resumable output files), :mod:`.shards` (``--nshard``, the merge) and
:mod:`.cli` (``distilmos-predict``); :mod:`.sources` (model references: ``hf://`` files, ``peer://``
predictors) and :mod:`.peers` (Distill-MOS and DNSMOS behind the same engine).

Layer: imports the foundation, :mod:`distilmos.data`, :mod:`distilmos.eval`, :mod:`distilmos.models`,
:mod:`distilmos.upstream`, :mod:`distilmos.corpora` and :mod:`distilmos.standins`; never its siblings
:mod:`distilmos.train` and :mod:`distilmos.pretrain` (a predictor file is scored without the training
code), nor anything above them.
"""

from .export import ExportError, export
from .fileformat import FORMAT_VERSION, PredictorFileError
from .predictor import FileResult, PredictionError, Predictor, load
from .upstream_entry import RemoteCodeError

__all__ = [
    "export",
    "load",
    "Predictor",
    "FileResult",
    "PredictionError",
    "PredictorFileError",
    "ExportError",
    "RemoteCodeError",
    "FORMAT_VERSION",
]
