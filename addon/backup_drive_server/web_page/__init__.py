"""The add-on's own page: drive, backups and how to connect, for Home Assistant and browsers."""
