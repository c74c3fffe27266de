"""The one exception type of the datasets package."""


class DatasetError(Exception):
    """A dataset could not be provided.

    The message is a complete, user-facing explanation: which dataset or file,
    what is wrong with it, and (for missing data) every place that was searched
    and how to obtain the data.
    """
