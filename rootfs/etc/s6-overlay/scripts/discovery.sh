#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Backup Drive: once the server listens, send its address, credentials and host
# key to Home Assistant through Supervisor discovery (service backup_drive).
# Never withdrawn on stop: Home Assistant would delete the config entry.
# ==============================================================================
if ! python3 -m backup_drive_addon.addon_tools \
    --log-level "$(bashio::config 'log_level' 'info')" \
    publish-discovery; then
    # The server keeps running for WebDAV and SFTP clients: warn instead of stopping.
    bashio::log.warning "Home Assistant will not find Backup Drive by itself until this is fixed."
fi
