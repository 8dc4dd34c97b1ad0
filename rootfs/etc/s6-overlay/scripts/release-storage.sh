#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Backup Drive: flush and unmount the storage when the add-on stops, so the
# drive can be unplugged safely.
# ==============================================================================
python3 -m backup_drive_addon.addon_tools release-storage \
    || bashio::log.warning "The drive could not be unmounted cleanly; stop the add-on before unplugging it."
