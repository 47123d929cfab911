#
# OpenWrt package Makefile for haig (this repository's root is the package
# directory: clone it as package/haig in an OpenWrt SDK or buildroot).
#
# Pure Python, so one build serves every target (PKGARCH:=all); the package is
# tied to the Python minor version of the release it is built for, like every
# python3-* package of the packages feed.
#
# tools/build-packages reads this file (the Package/haig definition and the
# Build/Prepare and Package/haig/install recipes) to build the same .ipk
# without an SDK: keep the recipes to the plain $(INSTALL_*)/$(CP) forms it
# understands.
#

include $(TOPDIR)/rules.mk

PKG_NAME:=haig
# One version for the Python package, the CLI and this package.
PKG_VERSION:=$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' $(CURDIR)/haig/__init__.py)
PKG_RELEASE:=1

PKG_MAINTAINER:=haig developers
PKG_BUILD_DEPENDS:=python3/host

include $(INCLUDE_DIR)/package.mk
# python3-package.mk gives PYTHON3_PKG_DIR (/usr/lib/python3.X/site-packages).
# haig is installed from the tree as it is (no setup.py/wheel step), so the
# feed's generic Python build is switched off.
PYTHON3_PKG_BUILD:=0
include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk

define Package/haig
  SECTION:=net
  CATEGORY:=Network
  TITLE:=High-availability Internet Gateway (UDP over multihomed SCTP)
  PKGARCH:=all
  DEPENDS:=+python3-light +python3-asyncio +python3-logging +python3-ctypes \
	+python3-urllib +python3-email \
	+python3-pyroute2 +python3-flask +python3-ubus +python3-pysctp \
	+kmod-sctp
endef

define Package/haig/description
  Keeps a home's medical telemetry and VPN traffic online across several
  internet uplinks (DSL/cable main, LTE backup): UDP datagrams are relayed
  over one multihomed kernel-SCTP association to a hospital endpoint, with
  fast failover, failback hold-down, per-uplink metering, an event history,
  and status on ubus, a JSON API/panel and the command line.
endef

define Package/haig/conffiles
/etc/config/haig
endef

define Build/Prepare
	$(INSTALL_DIR) $(PKG_BUILD_DIR)
	$(CP) ./haig $(PKG_BUILD_DIR)/
	$(FIND) $(PKG_BUILD_DIR)/haig -name __pycache__ -prune -exec rm -rf {} +
endef

define Build/Configure
endef

define Build/Compile
endef

define Package/haig/install
	$(INSTALL_DIR) $(1)$(PYTHON3_PKG_DIR)
	$(CP) $(PKG_BUILD_DIR)/haig $(1)$(PYTHON3_PKG_DIR)/
	$(INSTALL_DIR) $(1)/usr/bin
	$(INSTALL_BIN) ./files/usr/bin/haig $(1)/usr/bin/haig
	$(INSTALL_DIR) $(1)/etc/init.d
	$(INSTALL_BIN) ./files/etc/init.d/haig $(1)/etc/init.d/haig
	$(INSTALL_DIR) $(1)/etc/config
	$(INSTALL_CONF) ./files/etc/config/haig $(1)/etc/config/haig
	$(INSTALL_DIR) $(1)/etc/uci-defaults
	$(INSTALL_BIN) ./uci-defaults/* $(1)/etc/uci-defaults/
endef

$(eval $(call BuildPackage,haig))
