# Backup Drive add-on image: the SFTP/WebDAV server, the tools to mount a USB drive, and the
# bundled Home Assistant integration. The build context is the repository root.
# The base image is written here, pinned, rather than taken from BUILD_FROM: Supervisor before
# 2026.04 passes its own BUILD_FROM (a base image without Python) when there is no build.yaml,
# and build.yaml is deprecated. base-python ships Python, s6-overlay 3 and bashio.
FROM ghcr.io/home-assistant/base-python:3.13-alpine3.23

ARG BUILD_ARCH=amd64
ARG BUILD_VERSION=0.1.0

# A failed storage step (no drive, wrong filesystem) must stop the add-on, not leave the server
# running on an empty folder. The base image sets this too; the add-on depends on it.
ENV S6_BEHAVIOUR_IF_STAGE2_FAILS=2

# blkid finds drives by label and UUID; mount/umount from util-linux understand every
# filesystem type; ntfs-3g and fuse-exfat mount NTFS and exFAT where the kernel lacks a driver.
# Versions follow the base image's Alpine branch, which FROM pins.
# hadolint ignore=DL3018
RUN apk add --no-cache \
        blkid \
        fuse-exfat \
        mount \
        ntfs-3g \
        umount

WORKDIR /tmp/backup_drive_src
COPY requirements/server.txt requirements/server.txt
RUN pip3 install --no-cache-dir -r requirements/server.txt

COPY pyproject.toml README.md ./
COPY addon addon
RUN pip3 install --no-cache-dir --no-deps . \
    && rm -rf /tmp/backup_drive_src

WORKDIR /
COPY integration/custom_components/backup_drive /opt/backup_drive/custom_components/backup_drive
COPY rootfs /

# Healthy when SFTP sends its banner and WebDAV answers HTTP; the discovery and storage steps
# have their own checks at start.
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
    CMD ["python3", "-m", "backup_drive_addon.addon_tools", "healthcheck"]

LABEL \
    io.hass.name="Backup Drive" \
    io.hass.description="Keep Home Assistant's backups on a USB drive, reachable over SFTP and WebDAV" \
    io.hass.arch="${BUILD_ARCH}" \
    io.hass.type="addon" \
    io.hass.version="${BUILD_VERSION}" \
    org.opencontainers.image.title="Backup Drive" \
    org.opencontainers.image.description="SFTP and WebDAV backup target for Home Assistant" \
    org.opencontainers.image.source="https://github.com/backup-drive/backup-drive" \
    org.opencontainers.image.licenses="Apache-2.0" \
    org.opencontainers.image.version="${BUILD_VERSION}"
