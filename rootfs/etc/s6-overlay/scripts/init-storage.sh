#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Backup Drive: mount the chosen USB drive (or the chosen folder) at the storage
# root the server serves. Stops the add-on, saying why, when that fails.
# ==============================================================================
device=""
if bashio::config.has_value 'device'; then
    device="$(bashio::config 'device')"
fi

if ! python3 -m backup_drive_addon.addon_tools \
    --log-level "$(bashio::config 'log_level' 'info')" \
    mount-storage \
    --device "${device}" \
    --folder "$(bashio::config 'folder')"; then
    bashio::log.fatal "Backup Drive cannot start without its storage (see the lines above)."
    bashio::log.fatal "Fix the 'USB drive' or 'Folder' option, then start the add-on again."
    bashio::exit.nok
fi
