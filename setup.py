"""DistilMOS toolkit: SSL-based MOS prediction with layer-wise self-distillation, as an s3prl plugin."""

from setuptools import find_packages, setup

setup(
    name="distilmos",
    version="0.1.0",
    description="DistilMOS: layer-wise self-distillation for SSL-based MOS prediction (s3prl plugin)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",  # torch 2.9
    packages=find_packages(include=["distilmos", "distilmos.*", "upstream_tokens", "upstream_tokens.*"]),
    install_requires=[
        # torchaudio pins one exact torch release; this pair is the one s3prl's runner is tested with here.
        "torch==2.9.1",
        "torchaudio==2.9.1",
        # The maintained s3prl fork; the original s3prl 0.4.18 no longer imports with torchaudio >= 2.1.
        "espnet-s3prl>=2025.1",
        # s3prl's runner imports HfFolder/Repository (gone in huggingface_hub 1.0) and transformers 4.x APIs.
        "huggingface_hub<1.0",
        "transformers<5",
        "tensorboardX",
        "scikit-learn",
        "scipy",
        "numpy",
        "pyyaml",
        "tqdm",
        "soundfile",
        "matplotlib",
        # Degradations of egs/compress: Spotify's pedalboard wraps JUCE filters/resampling and the LAME (MP3)
        # and GSM codecs natively (no ffmpeg binary, fast, maintained wheels for every platform);
        # pyroomacoustics gives room impulse responses by the image source method (the reference library).
        "pedalboard>=0.9",
        "pyroomacoustics>=0.7",
        # eSpeak NG's library and voice data as a plain wheel (about 20 MB, no system package, no model
        # download): the only speech synthesiser installable here that speaks offline, used to make the
        # pretraining pool of the demo's tiny HuBERT (egs/pretrain_tiny).
        "espeakng-loader",
    ],
    # pytest-xdist: the suite is mostly recipe subprocesses on one thread each; two workers use both cores.
    # ruff is pinned so that `make lint` judges every checkout by the same rules.
    extras_require={
        "test": ["pytest", "pytest-xdist", "ruff==0.17.6"],
        # -u ge2e_dvector (SALF-MOS's X-vector row): Resemblyzer's wheel ships its pretrained GE2E speaker
        # encoder, so it runs offline (it pulls librosa, numba and webrtcvad)
        "speaker_embedding": ["resemblyzer>=0.1.4"],
        # the released predictors of other packages as peer://distillmos and peer://dnsmos/<score>
        # (distilmos/predictor/peers); both wheels ship their weights, nothing downloads at run time.
        # speechmos declares no dependencies: its DNSMOS needs onnxruntime and librosa; onnx counts the
        # ONNX models' parameters for the model card and the benchmarks.
        "peers": ["distillmos==0.9.1", "speechmos==0.0.1.1", "onnxruntime", "librosa", "onnx"],
    },
    # the commands recipes and docs call; each keeps its ``python -m`` form
    entry_points={
        "console_scripts": [
            "distilmos-predict = distilmos.predictor.cli:main",  # python -m distilmos.predictor
            "distilmos-tokens = upstream_tokens.cli:main",  # python -m upstream_tokens
            "distilmos-prep = distilmos.corpora:main",  # python -m distilmos.corpora
            "distilmos-compress = distilmos.compress.cli:main",  # python -m distilmos.compress[.<step>]
            "distilmos-registry = distilmos.registry:main",  # python -m distilmos.registry
            "distilmos-tiny-upstream = distilmos.upstream.tiny:main",  # python -m distilmos.upstream.tiny
            "distilmos-pretrain-tiny = distilmos.pretrain.tiny_hubert:main",  # python -m distilmos.pretrain.tiny_hubert
            "distilmos-standins = distilmos.standins.cli:main",  # python -m distilmos.standins
        ],
    },
)
