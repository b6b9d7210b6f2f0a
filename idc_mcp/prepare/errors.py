"""The errors of dataset preparation: one per cause, each message written for the assistant."""

from __future__ import annotations

from idc_mcp.errors import AssistantError

EXTRA = "prepare"
INSTALL_HINT = (
    f"pip install 'idc-mcp[{EXTRA}]' (or, for a uvx or plugin install, add the extra: "
    f"uvx --from 'idc-mcp[{EXTRA}]' idc-mcp)"
)


class PrepareError(AssistantError):
    """The preparation cannot start or could not finish; the message says what to do."""


class PrepareCancelled(PrepareError):
    """Stopped on request: finished cases stay, no half-written file is left."""


class ConversionFailed(Exception):
    """One series could not be converted; the message is the converter's reason (reported per series)."""


class MissingConverters(PrepareError):
    """The optional converters (dcm2niix, nibabel, highdicom, scikit-image) are not installed."""


def require_converters() -> None:
    """Refuse at once, naming the extra to install, when a converter package is missing."""
    import importlib.util

    missing = [
        name
        for module, name in (
            ("dcm2niix", "dcm2niix"),
            ("nibabel", "nibabel"),
            ("highdicom", "highdicom"),
            ("skimage", "scikit-image"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise MissingConverters(
            f"prepare_dataset needs the converters of the '{EXTRA}' extra, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install them with {INSTALL_HINT}, "
            "then restart the server. Until then, download gets the DICOM files."
        )
