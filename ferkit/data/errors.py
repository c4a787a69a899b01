"""Errors raised while reading data; each names the file, folder or row at fault."""


class DataError(ValueError):
    """A data set could not be read as FER2013; the message says where and why."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The configured data path does not exist."""
