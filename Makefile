# Two commands on a fresh Linux machine:  `make demo`  and  `make test`.
# Both create .venv and install everything they need (system packages via apt-get when root).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# This environment has a CPU build of torch 2.13.0 on local disk; pinning it avoids a
# multi-GB CUDA download. pyproject.toml keeps a normal range so GPU users get CUDA builds.
TORCH_SPEC ?= torch==2.13.0
# What Qt's xcb platform plugin, Xvfb and VTK's software OpenGL (Mesa) need.
APT_PACKAGES := xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 \
	libgl1 libegl1 libgl1-mesa-dri libglu1-mesa libfontconfig1 libdbus-1-3 libxrender1 libxi6 \
	orthanc orthanc-dicomweb
# orthanc(-dicomweb): the real PACS the tests/services/test_pacs_* tests start on loopback ports.
# Debian's package also installs a system service; the tests never use it, so system-deps stops it.

# nnU-Net's own predictor and dataset check, for the tests that compare medviewer with them
# (tests/ai/test_nnunet.py, tests/io/test_nnunet_dataset.py). Installed without dependencies,
# because nnunetv2's metadata pulls a CUDA torch; this is exactly what its predictor imports.
NNUNET_TEST_PACKAGES := nnunetv2==2.8.1 acvl-utils==0.2.6 batchgenerators==0.25.5 batchgeneratorsv2==0.3.6 \
	blosc2==4.15.0 cloudpickle==3.1.3 connected-components-3d==4.1.1 joblib==1.6.0 msgpack==1.2.4 \
	narwhals==2.29.0 ndindex==1.10.1 pandas==3.1.1 scikit-learn==1.9.1 seaborn==0.13.2 threadpoolctl==3.8.0 \
	httpx==0.29.0

.PHONY: demo test lint unit gui system-deps venv bench package package-test demo-models clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps "dynamic-network-architectures>=0.4" einops  # the nnunet extra, without its CUDA torch
	$(PY) -m pip install --quiet --no-deps $(NNUNET_TEST_PACKAGES)
	touch $(STAMP)

# Installs the X server and libraries GUI tests need; only possible (and only tried) as root.
system-deps:
	@if command -v Xvfb >/dev/null 2>&1 && ldconfig -p | grep -q libxcb-cursor.so.0 && command -v Orthanc >/dev/null 2>&1; then \
		echo "system packages present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES) && \
		{ systemctl disable --now orthanc >/dev/null 2>&1 || service orthanc stop >/dev/null 2>&1 || true; }; \
	else \
		echo "WARNING: Xvfb, Qt's xcb libraries or Orthanc are missing and this is not root; install: $(APT_PACKAGES)"; \
	fi

demo: system-deps $(STAMP)
	$(PY) -m medviewer --demo

lint: $(STAMP)
	$(VENV)/bin/lint-imports

test: system-deps $(STAMP) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

# One-folder desktop app in dist/medviewer/ (PyInstaller; ~5-10 min, ~1.5 GB). See packaging/README.md.
PYINSTALLER_SPEC ?= pyinstaller>=6.10
package: $(STAMP)
	$(PY) -m pip install --quiet "$(PYINSTALLER_SPEC)"
	$(PY) -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller packaging/medviewer.spec
	@du -sh dist/medviewer

# Starts the BUILT app under Xvfb: demo study, labels, 3D view, a model run, screenshot, clean exit.
package-test: system-deps $(STAMP)
	@test -x dist/medviewer/medviewer || $(MAKE) package
	PYTHON=$(PY) packaging/smoke_test.sh dist/medviewer/medviewer

# Retrains the built-in demo models in resources/models/ from synthetic phantoms (fixed seeds, CPU, ~45 min).
demo-models: $(STAMP)
	$(PY) -m medviewer.ai.demo_models.lung_seg
	$(PY) -m medviewer.ai.demo_models.nodule_det
	$(PY) -m medviewer.ai.demo_models.denoise

clean:
	rm -rf $(VENV) build dist *.egg-info
