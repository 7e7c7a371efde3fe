"""Optional tqdm progress bars (tqdm is imported only when a bar is asked for)."""

from __future__ import annotations


def progress_bar(enabled: bool = True, **kwargs):
    """A ``tqdm`` bar with ``kwargs``, or ``None`` when ``enabled`` is false.

    **Raises:** ``ImportError`` with the install command when tqdm is missing.
    """
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as err:  # pragma: no cover - tqdm ships with the dev and recipes extras
        raise ImportError(
            "progress bars need tqdm: pip install tqdm (or pass progress=False)"
        ) from err
    return tqdm(**kwargs)
