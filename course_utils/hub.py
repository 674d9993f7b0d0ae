"""What may reach the Hugging Face hub: nothing, unless the learner asks for a download.

A model or data set named by its hub id (``"HuggingFaceTB/SmolLM2-135M-Instruct"``,
``"trl-lib/Capybara"``) loads from the local Hugging Face cache only, so a name that is not
there fails at once with one sentence instead of a minute of network retries. A download
happens only when asked for, in one of three ways:

* ``download=True`` (:func:`models.load_model`, :func:`hub_data.load_sft_rows`, ...);
* the pipeline's ``--download`` flag;
* ``COURSE_ALLOW_DOWNLOAD=1`` in the environment (for code that does not pass ``download``).

``HF_HUB_OFFLINE=1`` forbids downloads whatever is asked. ``python -m course_utils.models
download NAME`` and ``python -m course_utils.real.hub_data download NAME`` fetch a model or a data
set into the cache once; after that it loads offline.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Environment variable that allows downloads where no ``download`` argument is given.
DOWNLOAD_ENV = "COURSE_ALLOW_DOWNLOAD"
_TRUE = {"1", "true", "yes", "on"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in _TRUE


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or its old name ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def downloads_allowed(download: bool | None = None) -> bool:
    """Whether a hub name missing from the cache may be downloaded.

    ``download`` decides when given; ``None`` defers to ``COURSE_ALLOW_DOWNLOAD`` (off unless
    set to 1, true, yes or on). Callers still refuse while :func:`hub_offline` is true.
    """
    return _env_true(DOWNLOAD_ENV) if download is None else bool(download)


def download_advice(command: str) -> str:
    """The end of a "not in the cache" sentence: how to download, given the exact shell ``command``."""
    if hub_offline():
        return (f"unset HF_HUB_OFFLINE and run `{command}` once with a connection "
                f"(or pass download=True, the pipeline's --download, or set {DOWNLOAD_ENV}=1)")
    return (f"run `{command}` once with a connection "
            f"(or pass download=True, the pipeline's --download, or set {DOWNLOAD_ENV}=1)")


@contextmanager
def hub_requests_blocked() -> Iterator[None]:
    """Inside the block, huggingface_hub and datasets behave as under ``HF_HUB_OFFLINE=1``.

    Both libraries read that variable once, at import; this sets the flags they read later,
    so a hub request inside the block fails at once (and ``datasets`` falls back to its
    cache) instead of retrying the network.
    """
    import datasets.config as ds_config
    import huggingface_hub.constants as hf_constants
    saved = (hf_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE, ds_config.HF_DATASETS_OFFLINE)
    hf_constants.HF_HUB_OFFLINE = ds_config.HF_HUB_OFFLINE = ds_config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE, ds_config.HF_DATASETS_OFFLINE = saved


def download_main(argv: list[str] | None, module: str, what: str, fetch: Callable[[str, argparse.Namespace], str],
                  not_found: type[Exception],
                  add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """``python -m course_utils.<module> download NAME [NAME ...]``: fetch each hub ``what`` into the local cache.

    ``fetch(name, args)`` downloads one name and returns what to print about it; its
    ``not_found`` error ends the command with that error's one sentence, no traceback.
    """
    ap = argparse.ArgumentParser(prog=f"python -m course_utils.{module}",
                                 description=f"Download hub {what}s into the local Hugging Face cache, "
                                             "where the course's loaders find them offline.")
    sub = ap.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help=f"download each NAME (a hub {what} id) unless it is cached already")
    get.add_argument("names", nargs="+", metavar="NAME")
    if add_arguments is not None:
        add_arguments(get)
    args = ap.parse_args(argv)
    for name in args.names:
        try:
            print(f"{name}: {fetch(name, args)}", flush=True)
        except not_found as e:
            raise SystemExit(str(e)) from None
