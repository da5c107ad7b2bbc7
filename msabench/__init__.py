"""msabench: frozen missing-modality protocols, any model via predict(batch, mask), MMSA-exact metrics.

Data flows one way: protocol -> masks -> model -> predictions -> metrics -> results.
The functions below are the notebook API; the `msabench` command is a thin layer over them.
"""

from msabench.version import __version__  # noqa: E402
from msabench.errors import MsabenchError  # noqa: E402
from msabench.interface import Batch, Mask  # noqa: E402


def run(*args, **kwargs):
    """See `msabench.executors.run`."""
    from msabench.executors import run as _run

    return _run(*args, **kwargs)


def load_protocol(name_or_path):
    """See `msabench.protocols.load`."""
    from msabench.protocols import load

    return load(name_or_path)


__all__ = ["Batch", "Mask", "MsabenchError", "run", "load_protocol", "__version__"]
