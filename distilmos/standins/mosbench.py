"""Small synthetic corpora in the distributed layouts of the MOS-Bench corpora.

    distilmos-standins mosbench --out_dir D [--seed 0] [--corpora "singmos nisqa ..."] [--utts 4]

One folder per corpus under ``D`` (``D/<corpus>/``), laid out as the real corpus ships (see
``distilmos/corpora/<corpus>.py`` for each layout): the score files with their real names, columns and
id conventions, listener-rating files where the corpus has them (averaged by the preparation), audio at
the corpus's own sample rate (8 kHz PSTN to 48 kHz NISQA, so resampling on reading is exercised). The
speech is the stand-ins' own (:mod:`.speech`), with noise at an SNR that falls with each system's quality.
``D/mosbench_record.json`` holds what was written, per corpus and split as the preparation must find it,
for tests. The same seed gives the same files.

BVCC and SOMOS layouts are written by :mod:`.bvcc_somos`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable

import numpy as np
import soundfile as sf

from distilmos.errors import ConfigError

from .degradations import add_noise
from .output import check_out_dir
from .speech import synthesize_speech

RECORD = "mosbench_record.json"


class Writer:
    """Writes one corpus: audio files of given quality, score files, and the record of what it wrote."""

    def __init__(self, root: str, rng: np.random.Generator, utts: int):
        self.root, self.rng, self.utts = root, rng, utts
        self.expected: dict[str, list[dict]] = {}

    def quality(self) -> float:
        return float(self.rng.uniform(1.5, 4.5))

    def wav(self, rel: str, sr: int, quality: float) -> str:
        """Write a 1-1.5 s utterance at ``sr`` whose noise grows as ``quality`` falls; return ``rel``."""
        x = synthesize_speech(self.rng, sr, float(self.rng.uniform(1.0, 1.5)))
        x = add_noise(x, sr, self.rng, severity=min(1.0, max(0.0, (4.6 - quality) / 3.1)))
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, np.clip(x, -1, 1), sr, subtype="PCM_16")
        return rel

    def mean_score(self, quality: float) -> str:
        """A mean opinion score near ``quality``, as the score files write it (6 decimals)."""
        return f"{float(np.clip(quality + self.rng.normal(0, 0.3), 1, 5)):.6f}"

    def ratings(self, quality: float, n: int) -> list[int]:
        return [int(np.clip(round(quality + self.rng.normal(0, 0.8)), 1, 5)) for _ in range(n)]

    def expect(self, split: str, sample_id: str, system: str, score, wav: str) -> None:
        self.expected.setdefault(split, []).append(
            {"sample_id": sample_id, "system": system, "score": float(score), "wav": wav}
        )

    def text(self, rel: str, content: str) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)

    def table(self, rel: str, header: list[str], rows: list[list]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        self.text(rel, buffer.getvalue())


def singmos(w: Writer) -> None:
    """DATA/wav/<id>.wav, DATA/sets/{train,val,eval}_mos_list.txt ("id,score", no .wav)."""
    for split, list_name in (("train", "train"), ("val", "val"), ("test", "eval")):
        lines = []
        for s in range(3):
            system = f"sys{s + 1:04d}"
            quality = w.quality()
            for _u in range(w.utts):
                sample_id = f"voicemos2024-track2-{system}-utt{len(lines) + 1:04d}{split[0]}"
                w.wav(f"DATA/wav/{sample_id}.wav", 16000, quality)
                score = w.mean_score(quality)
                lines.append(f"{sample_id},{score}\n")
                w.expect(split, sample_id, system, score, f"DATA/wav/{sample_id}.wav")
        w.text(f"DATA/sets/{list_name}_mos_list.txt", "".join(lines))


NISQA_HEADER = [
    "db",
    "con",
    "file",
    "con_description",
    "filename_deg",
    "filename_ref",
    "source",
    "lang",
    "votes",
    "mos",
    "noi",
    "col",
    "dis",
    "loud",
]


def nisqa(w: Writer) -> None:
    """NISQA_<SET>/NISQA_<SET>_file.csv + NISQA_<SET>/deg/*.wav at 48 kHz; LIVETALK leaves some ``con`` empty."""
    sets = {
        "train": "NISQA_TRAIN_SIM",
        "val": "NISQA_VAL_SIM",
        "test_livetalk": "NISQA_TEST_LIVETALK",
        "test_for": "NISQA_TEST_FOR",
        "test_p501": "NISQA_TEST_P501",
    }
    for split, db in sets.items():
        rows = []
        for c in range(3):
            quality = w.quality()
            con = "" if split == "test_livetalk" and c == 0 else str(c + 1)
            for u in range(w.utts):
                name = f"{db.lower()}_c{c + 1:02d}_{u:04d}.wav"
                w.wav(f"{db}/deg/{name}", 48000, quality)
                score = w.mean_score(quality)
                rows.append(
                    [
                        db,
                        con,
                        u,
                        "simulated" if con else "",
                        name,
                        "" if "LIVE" in db else f"ref_{u}.wav",
                        "src",
                        "en",
                        5,
                        score,
                        "",
                        "",
                        "",
                        "",
                    ]
                )
                w.expect(split, name[:-4], con or name[:-4], score, f"{db}/deg/{name}")
        w.table(f"{db}/{db}_file.csv", NISQA_HEADER, rows)


def tmhint_qi(w: Writer) -> None:
    """raw_data.csv (one row per rating; some rows rate intelligibility only), train/*.wav, test/*.wav."""
    rows = []
    for folder, split in (("train", "train+val"), ("test", "test")):
        for method, snr, noise in (("Noisy", "5", "white"), ("MMSE", "-2", "babble"), ("Clean", "", "")):
            quality = w.quality()
            for u in range(w.utts):
                name = f"{method}_{noise or 'none'}_{snr or 'inf'}_{folder}{u:03d}"
                w.wav(f"{folder}/{name}.wav", 16000, quality)
                ratings = w.ratings(quality, 3)
                for r in ratings:
                    rows.append([len(rows), method, u, snr, noise, r, int(w.rng.integers(0, 11)), name])
                rows.append([len(rows), method, u, snr, noise, "", 7, name])  # intelligibility only
                w.expect(split, name, f"{method}-SNR{snr}-{noise}", float(np.mean(ratings)), f"{folder}/{name}.wav")
    w.table(
        "raw_data.csv",
        ["idx", "method", "uttr", "snr", "noise", "quality_score", "intelligibility_score", "file_name"],
        rows,
    )


def tencent(w: Writer) -> None:
    """{without,with}ReverberationTrainDevMOS.csv (deg_wav,mos) + the wavs under their folders."""
    for kind in ("without", "with"):
        rows = []
        for u in range(3 * w.utts):
            quality = w.quality()
            rel = f"{kind}ReverberationTrainDev/{kind}_{u:05d}.wav"
            w.wav(rel, 16000, quality)
            score = w.mean_score(quality)
            rows.append([f"./{rel}", score])
            sample_id = rel[:-4].replace("/", "_")
            w.expect(f"train+val:{kind}", sample_id, sample_id, score, rel)
        w.table(f"{kind}ReverberationTrainDevMOS.csv", ["deg_wav", "mos"], rows)


def pstn(w: Writer) -> None:
    """pstn_train.csv (filename,MOS,std,95%CI,votes) + 8 kHz files beside it."""
    rows = []
    for u in range(3 * w.utts):
        quality = w.quality()
        name = w.wav(f"pstn_{u:05d}_deg.wav", 8000, quality)
        score = w.mean_score(quality)
        rows.append([name, score, "0.8", "0.3", 5])
        w.expect("train+val", name[:-4], name[:-4], score, name)
    w.table("pstn_train.csv", ["filename", "MOS", "std", "95%CI", "votes"], rows)


def rated(w: Writer, systems, template: str, folder: str, rate: int, first: int = 0):
    """``(system, sample_id, score, path)`` of ``w.utts`` utterances of each system, their wavs written to
    ``folder`` at ``rate`` (a system's utterances share its quality); ``template`` makes the sample id from
    the system ``s`` and the utterance number ``n`` (counted from ``first``)."""
    for system in systems:
        quality = w.quality()
        for u in range(w.utts):
            sid = template.format(s=system, n=first + u)
            path = w.wav(f"{folder}/{sid}.wav", rate, quality)
            yield system, sid, w.mean_score(quality), path


def vmc23(w: Writer) -> None:
    """track{1,2,3}/*.wav and answers/track{1,2,3}_answer.txt ("id,score")."""
    track1, track2, track3 = [], [], []
    for system, sample_id, score, path in rated(
        w, ("A-NEB", "BF-NEB", "A-AD", "BT-AD"), "VoiceMOS2023Track1-{s}_test_{n:04d}", "track1", 22050
    ):
        track1.append(f"{sample_id},{score}\n")
        w.expect("track1a" if system.endswith("NEB") else "track1b", sample_id, system, score, path)
    for system, sample_id, score, path in rated(
        w, ("B01", "B02", "T03"), "VoiceMOS2023Track2-{s}-SF1-CDF1-{n}", "track2", 24000, first=30001
    ):
        track2.append(f"{sample_id},{score}\n")
        w.expect("track2", sample_id, system, score, path)
    track3_systems = ("CMGAN_snr-2_babble_TMHINT", "Noisy_snr5_white_TMHINT", "clean_TMHINT", "TMHINT")
    for system, sample_id, score, path in rated(
        w, track3_systems, "VoiceMOS2023Track3-{s}_g4_{n:02d}_03", "track3", 16000, first=1
    ):
        track3.append(f"{sample_id},{score}\n")
        if system != "TMHINT":  # bare TMHINT ids are left out, as in SHEET
            w.expect("track3", sample_id, system, score, path)
    for name, lines in (("track1", track1), ("track2", track2), ("track3", track3)):
        w.text(f"answers/{name}_answer.txt", "".join(lines))


def bc19(w: Writer) -> None:
    """ood/DATA/wav/<sys>-<utt>.wav, train/val lists, TRAINSET/DEVSET/TESTSET listener files, no
    test_mos_list.txt (so the test scores come from TESTSET)."""
    systems = [(f"sys{int(w.rng.integers(16**5)):05x}", w.quality()) for _ in range(3)]
    for split, list_name, listener_file in (
        ("train", "train_mos_list.txt", "TRAINSET"),
        ("val", "val_mos_list.txt", "DEVSET"),
        ("test", None, "TESTSET"),
    ):
        lines, listener_lines = [], []
        for system, quality in systems:
            for _u in range(w.utts):
                wav = f"{system}-utt{int(w.rng.integers(16**7)):07x}.wav"
                w.wav(f"ood/DATA/wav/{wav}", 16000, quality)
                ratings = w.ratings(quality, 4)
                listener_lines += [
                    f"{system},{wav},{r},0,{{}}_18-24_L{i}_Female_Valid_1_No\n" for i, r in enumerate(ratings)
                ]
                score = float(np.mean(ratings))
                lines.append(f"{wav},{score!r}\n")
                w.expect(split, wav[:-4], system, score, f"ood/DATA/wav/{wav}")
        if list_name:
            w.text(f"ood/DATA/sets/{list_name}", "".join(lines))
        w.text(f"ood/DATA/sets/{listener_file}", "".join(listener_lines))


def vcc2018(w: Writer) -> None:
    """mnt/sysope/test_files/testVCC2/*.wav and vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt: hub and
    spoke conversions, and natural source and target speech (``*_NAT.wav``; their names and the system ids the
    ratings give them are stand-ins, the real ones were not seen)."""
    rows = []
    wav_dir = "mnt/sysope/test_files/testVCC2"
    # (system id in the ratings, target, source, task, the system the reader gives it)
    systems = [(system, "VCC2TF1", "VCC2SF1", None, system) for system in ("B00", "N10", "D03")]
    systems += [("S00", "VCC2SF1", "VCC2SF1", "NAT", "NAT_SRC"), ("T00", "VCC2TF1", "VCC2TF1", "NAT", "NAT_TRG")]
    for system, trg, src, natural, read_as in systems:
        quality = w.quality()
        for u in range(w.utts):
            task = natural or ("HUB" if u % 2 == 0 else "SPO")
            name = f"{system}_{trg}_{src}_{30001 + u}_{task}.wav"
            w.wav(f"{wav_dir}/{name}", 22050, quality)
            ratings = w.ratings(quality, 3)
            for user, r in enumerate(ratings):
                rows.append(
                    [
                        "1",
                        f"U{user}",
                        "3",
                        str(u),
                        system,
                        "\\N",
                        src,
                        trg,
                        task,
                        "\\N",
                        str(r),
                        "\\N",
                        "",
                        "2018-03-01 10:00:00",
                        name,
                        "\\N",
                    ]
                )
            w.expect("test", name[:-4], read_as, float(np.mean(ratings)), f"{wav_dir}/{name}")
    w.rng.shuffle(rows)  # ratings come in listening order, not grouped by file
    w.text("vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt", "".join(",".join(r) + "\n" for r in rows))


def bc23(w: Writer) -> None:
    """wavs/VoiceMOS2023Track1-<sys>-<task>_test_<n>.wav and answers/answer.csv ("id,score"), SHEET's layout."""
    lines = []
    for system, sample_id, score, path in rated(
        w, ("A-NEB", "BF-NEB", "A-AD", "BT-AD"), "VoiceMOS2023Track1-{s}_test_{n:04d}", "wavs", 22050, first=26
    ):
        lines.append(f"{sample_id},{score}\n")
        w.expect("hub" if system.endswith("-NEB") else "spoke", sample_id, system, score, path)
    w.rng.shuffle(lines)  # the answers are ordered by utterance number, systems interleaved
    w.text("answers/answer.csv", "".join(lines))


def svcc23(w: Writer) -> None:
    """wavs/VoiceMOS2023Track2-<sys>-<src>-<trg>-<n>.wav and answers/listener_wise_answer.csv (one row per
    rating; converted systems and the natural source and target singing)."""
    rows = []
    for system, src, trg in (
        ("B01", "SF1", "CDF1"),
        ("T05", "SM1", "IDM1"),
        ("SOU", "SF1", "SF1"),
        ("TAR", "IDM1", "IDM1"),
    ):
        quality = w.quality()
        for u in range(w.utts):
            sample_id = f"VoiceMOS2023Track2-{system}-{src}-{trg}-{30001 + u}"
            w.wav(f"wavs/{sample_id}.wav", 24000, quality)
            ratings = w.ratings(quality, int(w.rng.integers(5, 8)))
            rows += [[sample_id, f"L{int(w.rng.integers(16**10)):010x}", r] for r in ratings]
            w.expect("test", sample_id, system, float(np.mean(ratings)), f"wavs/{sample_id}.wav")
    w.table("answers/listener_wise_answer.csv", ["sample_id", "listener_name", "score"], rows)


def tcd_voip(w: Writer) -> None:
    """Test Set/<type>/C_<nn>_<TYPE>_<talker>.wav at 48 kHz (a reference and an unrated echo MNRU file too)
    and answers/tcd-voip_answer.csv (Filename,ConditionID,MOS, with a byte-order mark as SHEET's copy)."""
    talkers = ("FA", "FG", "MK", "ML", "FB", "MC", "FD", "ME")[: w.utts]
    lines = ["\ufeffFilename,ConditionID,MOS\n"]
    # (type, number in the file name, ConditionID): clip's MNRU files are numbered 11-14, conditions 21-24
    for kind, number, condition in (("ECHO", 1, 1), ("CHOP", 21, 21), ("CLIP", 2, 2), ("CLIP", 11, 21)):
        quality = w.quality()
        for talker in talkers:
            name = f"C_{number:02d}_{kind}_{talker}.wav"
            rel = w.wav(f"Test Set/{kind.lower()}/{name}", 48000, quality)
            score = w.mean_score(quality)
            lines.append(f"{name},{condition},{score}\n")
            w.expect("test", name[:-4], f"{kind}-{condition}", score, rel)
    w.wav("Test Set/echo/ref/R_01_ECHO_FA.wav", 48000, 4.5)
    w.wav("Test Set/echo/C_21_ECHO_FA.wav", 48000, 3.0)  # in the release, not in the scores
    w.text("answers/tcd-voip_answer.csv", "".join(lines))


def urgent2024_mos(w: Writer) -> None:
    """wavs/<sys>-fileid_<n>.wav (each system's clips at its own rate, 8 to 48 kHz; the same source files for
    every system) and metadata.csv as SHEET's download script writes it (score the mean of raw_ratings)."""
    rows = []
    for system, rate in (("P426", 22050), ("P501", 16000), ("P533", 48000), ("P570", 8000)):
        for _, sample_id, score, path in rated(w, (system,), "{s}-fileid_{n}", "wavs", rate, first=184):
            ratings = w.ratings(float(score), 8)
            mos = float(np.mean(ratings))
            rows.append([path, sample_id, sample_id, rate, repr(mos), str(ratings)])
            w.expect("train+val", sample_id, system, mos, path)
    w.table("metadata.csv", ["wav_path", "system_id", "sample_id", "sampling_rate", "score", "raw_ratings"], rows)


def ttsds2(w: Writer) -> None:
    """subjective_results.csv (one row per rating: MOS rows, and CMOS and SMOS rows that are not read) and the
    audio it names. The folders (<dataset>/<system>/<n>.wav, file names repeating across systems), the
    dataset and system names and the rates are stand-ins: the real ones were not seen."""
    lines = []
    for dataset, system, rate in (
        ("clean", "parlertts", 24000),
        ("clean", "xtts", 24000),
        ("noisy", "parlertts", 24000),
        ("noisy", "styletts2", 22050),
    ):
        for _, _, score, path in rated(w, (system,), "{n}", f"{dataset}/{system}", rate):
            ratings = w.ratings(float(score), int(w.rng.integers(3, 6)))
            for r in ratings:
                listener = f"A{int(w.rng.integers(16**6)):06x}"
                lines.append([path, dataset, system, "mos", r, listener, 1, 2, len(lines)])
            lines.append([path, dataset, system, "smos", 5, "A000001", 2, 7, len(lines)])
            w.expect(
                "test",
                f"{dataset}-{system}-{os.path.basename(path)[:-4]}",
                f"{dataset}-{system}",
                float(np.mean(ratings)),
                path,
            )
    lines.append(["clean/cmos_pair_0.wav", "clean", "xtts", "cmos", -1, "A000002", 3, 9, len(lines)])  # no such file
    w.rng.shuffle(lines)  # ratings come in listening order
    w.table(
        "subjective_results.csv",
        ["audio", "dataset", "system", "rating_type", "value", "annotator", "survey_part", "page", "id"],
        lines,
    )


GENERATORS: dict[str, Callable[[Writer], None]] = {
    "singmos": singmos,
    "nisqa": nisqa,
    "tmhint_qi": tmhint_qi,
    "tencent": tencent,
    "pstn": pstn,
    "vmc23": vmc23,
    "bc19": bc19,
    "vcc2018": vcc2018,
    "bc23": bc23,
    "svcc23": svcc23,
    "tcd_voip": tcd_voip,
    "urgent2024_mos": urgent2024_mos,
    "ttsds2": ttsds2,
}


def make_mosbench(out_dir: str, seed: int = 0, corpora=None, utts: int = 4) -> dict:
    """Write the corpora (all by default) under ``out_dir``; return the record (also in ``mosbench_record.json``).

    Record: ``{corpus: {split: [{sample_id, system, score, wav}]}}``, ``wav`` relative to the corpus
    folder. Splits the preparation draws itself are recorded as their pool: ``train+val`` (Tencent per
    list, as ``train+val:<without|with>``).
    """
    corpora = list(corpora or GENERATORS)
    unknown = [c for c in corpora if c not in GENERATORS]
    if unknown:
        raise ConfigError(f"unknown corpora {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    if utts < 2:
        raise ConfigError("need at least 2 utterances per system (--utts)")
    check_out_dir(out_dir, [os.path.join(out_dir, name) for name in corpora])  # before writing any of them
    record = {}
    for name in corpora:
        root = os.path.join(out_dir, name)
        # a seed per corpus, so that one corpus's files do not depend on which others were asked for
        writer = Writer(root, np.random.default_rng([seed, list(GENERATORS).index(name)]), utts)
        GENERATORS[name](writer)
        record[name] = writer.expected
    with open(os.path.join(out_dir, RECORD), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    return record
