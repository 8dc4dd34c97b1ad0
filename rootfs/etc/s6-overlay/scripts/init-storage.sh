#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Backup Drive: mount the chosen USB drive (or the chosen folder) at the storage
# root the server serves. Stops the add-on, saying why, when that fails.
# ==============================================================================
# `folder` always has a value (config.yaml gives a default): without one, Supervisor could not be
# asked for the options, and guessing would mount the wrong thing.
if ! bashio::config.has_value 'folder'; then
    bashio::log.fatal "Cannot read Backup Drive's options from Supervisor (see the lines above)."
    bashio::log.fatal "Restart the app; if this persists, restart Home Assistant's Supervisor."
    bashio::exit.nok
fi

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
    bashio::log.fatal "Fix the 'USB drive' or 'Folder' option, then start the app again."
    bashio::exit.nok
fi
