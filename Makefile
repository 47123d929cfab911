#
# OpenWrt package Makefile for haig (this repository's root is the package
# directory: clone it as package/haig in an OpenWrt SDK or buildroot).
#
# Pure Python, so one build serves every target (PKGARCH:=all); the package is
# tied to the Python minor version of the release it is built for, like every
# python3-* package of the packages feed.
#
# tools/build-packages reads this file (the Package/* definitions and the
# Build/Prepare and Package/*/install recipes) to build the same .ipk
# without an SDK: keep the recipes to the plain $(INSTALL_*)/$(CP) forms and
# the Python3/* calls it understands.
#
# Two binary packages: `haig` (the daemon, its CLI, ubus and LuCI status; no
# web framework) and `haig-api` (pulls in Flask for the JSON API and panel,
# which the router does not need: api_listen is off in the shipped config).
#

include $(TOPDIR)/rules.mk

PKG_NAME:=haig
# One version for the Python package, the CLI and this package.
PKG_VERSION:=$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' $(CURDIR)/haig/__init__.py)
# apk (OpenWrt 25.12) accepts <digits>[.<digits>]...[letter][_suffix] plus -r<release>;
# PKG_RELEASE must be a plain number. tests/unit/test_openwrt.py checks both.
PKG_RELEASE:=1

PKG_LICENSE:=GPL-2.0-only
PKG_LICENSE_FILES:=LICENSE
PKG_MAINTAINER:=haig developers <maintainers@users.noreply.r-seed-50f79436.example>
PKG_BUILD_DEPENDS:=python3/host

include $(INCLUDE_DIR)/package.mk
# python3-package.mk gives PYTHON3_PKG_DIR (/usr/lib/python3.X/site-packages)
# and Python3/CompileAll. haig is installed from the tree as it is (no
# setup.py/wheel step), so the feed's generic Python build is switched off.
PYTHON3_PKG_BUILD:=0
include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk

define Package/haig
  SECTION:=net
  CATEGORY:=Network
  TITLE:=High-availability Internet Gateway (UDP over multihomed SCTP)
  PKGARCH:=all
  # python3-urllib (the CLI's HTTP client) brings email.* on every release: a
  # dependency of its own up to 24.10, merged into python3-urllib on master.
  # python3-pyroute2: the feed's 0.7.x is enough (sync netlink fallback).
  # kmod-crypto-sha1/-sha256: SCTP-AUTH's HMACs (kmod-sctp brings only md5 + hmac, for
  # its cookies); without them the kernel refuses SCTP_AUTH_SUPPORTED on the socket.
  DEPENDS:=+python3-light +python3-asyncio +python3-logging +python3-ctypes \
	+python3-urllib +python3-pyroute2 +python3-ubus +python3-pysctp \
	+kmod-sctp +kmod-crypto-sha1 +kmod-crypto-sha256
endef

define Package/haig-api
  SECTION:=net
  CATEGORY:=Network
  TITLE:=JSON API and web panel for haig (pulls in Flask)
  PKGARCH:=all
  # Flask >= 2.2 (app.json): OpenWrt 24.10 and later; 23.05 ships Flask 2.0.2.
  DEPENDS:=+haig +python3-flask
endef

define Package/haig-api/description
  Installs Flask for haig's HTTP API and status panel (option api_listen).
  The router needs neither: ubus, LuCI and `haig status` serve it.
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
	$(INSTALL_BIN) ./files/etc/uci-defaults/* $(1)/etc/uci-defaults/
	# as Py3Package does, on the whole tree ($(1): paths in tracebacks are then the
	# installed ones): .pyc beside each module (compileall -b), then no .py, so a slow
	# router never compiles at start (its Python writes no bytecode)
	$(call Python3/CompileAll,$(1))
	$(call Python3/DeleteSourceFiles,$(1))
endef

define Package/haig-api/install
	$(INSTALL_DIR) $(1)/usr/share/haig
endef

$(eval $(call BuildPackage,haig))
$(eval $(call BuildPackage,haig-api))
