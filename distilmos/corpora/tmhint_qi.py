"""TMHINT-QI (Mandarin speech, noisy and enhanced, quality ratings of listeners).

    <root>/raw_data.csv        one row per rating:
                               idx,method,uttr,snr,noise,quality_score,intelligibility_score,file_name
    <root>/train/<file_name>.wav
    <root>/test/<file_name>.wav

An utterance's score is the mean of its ``quality_score`` ratings (rows with an empty quality score are
ratings of intelligibility only, and are left out); its system is ``<method>-SNR<snr>-<noise>``. Whether
a file is in train or test is where its audio is: ``train/`` or ``test/``. The corpus has no validation
set: a seeded 10 % of the training utterances (:func:`~distilmos.corpora.common.holdout`, seed 1337)
becomes ``val`` (SHEET draws its dev set the same way in spirit, with Python's ``random``, so the two
draws differ). Splits train / val / test.

Fairly confident about the file and column names (SHEET reads them so). Unsure: whether every
``raw_data.csv`` row has its audio in ``train/`` or ``test/``; here a row whose file is in neither is an
error naming it (SHEET skips such rows silently).
"""

from __future__ import annotations

import os

from distilmos.data.datalist import Row

from .common import CorpusLayoutError, Splits, average_ratings, holdout, read_table, split_by

NAME = "tmhint_qi"
SPLITS = ("train", "val", "test")
TEST_SPLITS = ("test",)
LAYOUT = "raw_data.csv, train/*.wav, test/*.wav"
COLUMNS = ("method", "snr", "noise", "quality_score", "file_name")


def read(root: str) -> Splits:
    """``{split: (rows, source)}`` of a TMHINT-QI copy."""
    path = os.path.join(root, "raw_data.csv")
    for folder in ("train", "test"):
        if not os.path.isdir(os.path.join(root, folder)):
            raise CorpusLayoutError(
                f"{os.path.join(root, folder)}: not found; the TMHINT-QI root must hold raw_data.csv, train/ and test/"
            )
    records = [(n, r) for n, r in read_table(path, COLUMNS) if r["quality_score"]]
    systems = {r["file_name"]: f"{r['method']}-SNR{r['snr']}-{r['noise']}" for _, r in records}
    means = average_ratings((r["file_name"], r["quality_score"], f"{path}:{n}") for n, r in records)
    pools = {"train": [], "test": []}
    for name, (mean, count, origin) in means.items():
        found = [f for f in ("train", "test") if os.path.isfile(os.path.join(root, f, name + ".wav"))]
        # not found: listed under train/ so that validation names the missing file
        folder = found[0] if found else "train"
        pools[folder].append(
            Row(
                name,
                systems[name],
                os.path.join(os.path.abspath(root), folder, name + ".wav"),
                mean,
                origin,
                {"n_ratings": str(count)},
            )
        )
    train, val = split_by(pools["train"], holdout([r.sample_id for r in pools["train"]]))
    return {"train": (train, path), "val": (val, path), "test": (pools["test"], path)}
