"""Run the server with `python -m backup_drive_server`."""

from backup_drive_server.cli import main

raise SystemExit(main())
