"""Importing this repository's experts as s3prl would (``s3prl.downstream.<name>``)."""

import importlib
import os

from conftest import REPO


def import_expert_module(name: str, module: str = "expert"):
    from distilmos.train.plugin import register

    register([os.path.join(REPO, "downstream")])
    return importlib.import_module(f"s3prl.downstream.{name}.{module}")
