"""User-facing errors: bad model folders and bad input, each shown as one clear line."""


class UserError(Exception):
    """An error caused by what the user gave us; its message is one sentence, shown as is."""


class ModelFolderError(UserError):
    """The model folder is missing, broken, hostile or unsupported."""


class InputError(UserError):
    """Bad input to encode/generate: ids, lengths, sampling values, messages."""


class DeviceError(UserError):
    """The requested device or dtype cannot be used (no NPU, out of memory, broken torch_npu)."""


class Cancelled(Exception):
    """Model loading was cancelled by the user (not an error to report, so not a UserError)."""


class ModelOutputError(UserError):
    """The model computed something unusable (NaN or infinite logits): broken weights, not bad input."""
