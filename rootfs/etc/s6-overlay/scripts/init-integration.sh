#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Backup Drive: copy the bundled integration into Home Assistant's
# custom_components when it is missing or older, then ask for a restart.
# ==============================================================================
if bashio::config.false 'install_integration'; then
    bashio::log.info "Not installing the Backup Drive integration (option install_integration is off)."
    exit 0
fi

if ! python3 -m backup_drive_addon.addon_tools \
    --log-level "$(bashio::config 'log_level' 'info')" \
    install-integration; then
    # The backup target works without it: warn instead of stopping the add-on.
    bashio::log.warning "Install the integration by hand as the add-on's Documentation tab explains."
fi
