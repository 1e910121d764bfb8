"""Progress bars (placeholder: replaced by the non-TTY aware version)."""

from tqdm.auto import tqdm


def progress(iterable=None, total=None, desc=None, unit="it", disable=None, leave=True, **kw):
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, dynamic_ncols=True, **kw)
