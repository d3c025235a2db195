# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing (idempotent and fast when present), installs the pinned
# dependencies from requirements.txt (torch first), installs this package editable and links its
# share files (launch/, config/, urdf/, checkpoints/) into the venv's ament index.
# Everything that may start DDS runs with loopback-only discovery (see ros_env below).
# torch/OpenMP threads default to 1 per process (the demo runs three node processes; on a 2-core
# machine one thread per process was measured faster than two); override: OMP_NUM_THREADS=2 make …

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PKG := l2l_nmhw_ros
SHARE := $(VENV)/share/$(PKG)
STAMP := $(VENV)/.installed
QUICK ?=
VIEW ?=
PYTEST_ARGS ?=

# DDS stays on this machine; every process gets its own log dir; share files via ament_index.
# Every DDS socket on 127.0.0.1: config/dds/fastdds_loopback.xml (Fast DDS profile: UDP on
# 127.0.0.1 + shared memory, discovery by unicast to 127.0.0.1) with the discovery range
# SYSTEM_DEFAULT (for LOCALHOST rmw_fastrtps adds a UDP transport on every interface), as the
# launcher does (launcher.py: dds_environment). Not with a profile of your own
# (FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE) or L2L_NMHW_DDS=network: then LOCALHOST discovery
# with Fast DDS's transports (sockets on every interface, e.g. for a robot network).
ros_env = export VIRTUAL_ENV=$(abspath $(VENV)) AMENT_PREFIX_PATH=$(abspath $(VENV)) \
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( ($$$$ % 100) + 101 ))} \
	ROS_LOG_DIR=$${ROS_LOG_DIR:-$$(mktemp -d -t l2l_nmhw_roslog.XXXXXX)} \
	PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PATH=$(abspath $(VENV))/bin:$$PATH; \
	if [ "$${L2L_NMHW_DDS:-loopback}" != network ] && [ -f $(abspath config/dds/fastdds_loopback.xml) ] \
		&& [ -z "$${FASTDDS_DEFAULT_PROFILES_FILE}$${FASTRTPS_DEFAULT_PROFILES_FILE}" ]; then \
		export FASTDDS_DEFAULT_PROFILES_FILE=$(abspath config/dds/fastdds_loopback.xml) \
		ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT; fi

.PHONY: venv demo test test-all bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the pins or the package definition change.
$(STAMP): requirements.txt setup.py setup.cfg package.xml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet "$$(grep -E '^torch==' requirements.txt)" 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c 'import torch, numpy, rclpy, brian2, pybullet, l2l_nmhw_ros'
	touch $(STAMP)

# Editable installs do not copy data_files: link the share tree to the checkout instead.
venv: $(STAMP)
	@mkdir -p $(SHARE) $(VENV)/share/ament_index/resource_index/packages
	@touch $(VENV)/share/ament_index/resource_index/packages/$(PKG)
	@for d in launch config urdf checkpoints package.xml; do ln -sfn $(abspath .)/$$d $(SHARE)/$$d; done

# VIEW=1: also the live 3D web view (http://127.0.0.1:8080); the graph stays up until Ctrl-C
demo: venv
	$(ros_env); $(PY) -m l2l_nmhw_ros.cli demo $(if $(VIEW),--viewer --hold inf,) $(DEMO_ARGS)

test: venv
	$(ros_env); $(PY) -m pytest $(PYTEST_ARGS)

test-all: venv
	$(ros_env); $(PY) -m pytest --run-slow $(PYTEST_ARGS)

bench: venv
	@$(PY) -c 'import aihwkit' 2>/dev/null || { $(PY) -m pip install --quiet --no-deps \
		-r requirements-bench.txt >$(VENV)/bench-extra.log 2>&1 && $(PY) -c 'import aihwkit' \
		2>/dev/null; } || echo 'aihwkit (optional) not installed: its benchmark side is skipped'
	$(ros_env); $(PY) -m bench.run $(if $(QUICK),--quick,)

lint: venv
	$(PY) -m ruff check l2l_nmhw_ros test bench tools

clean:
	rm -rf $(VENV) .pytest_cache demo_output
