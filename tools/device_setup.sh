# Source this on the GPU machine: installs the carried wheels (.whl/) and this package into
# /tmp/site without any network, and puts it on PYTHONPATH.
#   source tools/device_setup.sh || exit
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || return 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --no-cache-dir --upgrade --target /tmp/site . || return 1
rm -rf build
export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1
