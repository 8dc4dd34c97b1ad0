"""Backup Drive server: one storage root served over SFTP and WebDAV."""

__version__ = "0.2.1"
