#!/bin/sh
# vlmc device kit: measure vlmc's split artifacts on the CPU and on WebGPU (Vulkan) on this machine.
# Needs nothing but this folder, a Linux x64 system (glibc >= 2.28, libstdc++ from GCC >= 6) and,
# for the WebGPU half, the GPU's Vulkan driver. Usage:
#
#   ./run.sh [--shape internvl2-1b|tiny] [--eps cpu,webgpu] [--variants portable,fp32,int4,fp16]
#            [--steps N] [--prompt-tokens N] [--budget-s S] [--keep]
#
# It unpacks into a fresh folder under /tmp (VLMC_KIT_WORK overrides), makes a random-weight model
# there (InternVL2-1B-shaped by default), builds the split artifact of each variant, measures each on
# each provider and prints one JSON report on stdout (also written to $WORK/result.json).
set -eu

KIT=$(cd "$(dirname "$0")" && pwd)
WORK=${VLMC_KIT_WORK:-$(mktemp -d /tmp/vlmc-kit.XXXXXX)}
mkdir -p "$WORK"
log() { echo "[kit] $*" >&2; }

# --- unpack: node, the bundled vlmc, onnxruntime-node's Linux x64 binary, the Vulkan loader
if [ -f "$KIT/payload.tar.gz" ]; then
  tar -xzf "$KIT/payload.tar.gz" -C "$WORK"
else
  tar -xf "$KIT/payload.tar" -C "$WORK"
fi
NODE="$WORK/bin/node"
log "unpacked into $WORK ($("$NODE" --version))"

# --- Vulkan: the loader, and the GPU's driver (ICD) wherever the system put it
if { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  VLMC_KIT_LIBVULKAN=system
else
  VLMC_KIT_LIBVULKAN="kit ($WORK/lib/libvulkan.so.1)"
  LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi

STANDARD_ICD_DIRS="/etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d /etc/xdg/vulkan/icd.d"
# Where NVIDIA's driver files land outside the loader's search path: containers (the NVIDIA
# container toolkit, /usr/local/nvidia), runfile installs under /opt, driver trees under /run.
# VLMC_KIT_SEARCH replaces this list (the kit's own test points it at a fake driver tree).
EXTRA_SEARCH=${VLMC_KIT_SEARCH:-"/usr/local/nvidia /run/nvidia /opt /usr/lib /usr/lib64 /usr/local/lib /usr/share /etc /var/lib/nvidia"}

find_files() { # name-pattern dirs...
  pattern=$1; shift
  for d in "$@"; do [ -d "$d" ] && find "$d" -xdev -maxdepth 6 -name "$pattern" 2>/dev/null; done | sort -u
}

if [ -n "${VK_ICD_FILENAMES:-}" ]; then
  VLMC_KIT_ICD_SOURCE="VK_ICD_FILENAMES (given)"
else
  icds=$(find_files 'nvidia_icd*.json' $STANDARD_ICD_DIRS)
  if [ -n "$icds" ]; then
    VLMC_KIT_ICD_SOURCE="standard path"
  else
    icds=$(find_files 'nvidia_icd*.json' $EXTRA_SEARCH)
    VLMC_KIT_ICD_SOURCE="found outside the standard paths"
  fi
  if [ -z "$icds" ]; then
    # No ICD file but the driver's Vulkan library is there (some containers): describe it ourselves.
    lib=$(find_files 'libGLX_nvidia.so.0' $EXTRA_SEARCH | head -n 1)
    if [ -n "$lib" ]; then
      printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$lib" > "$WORK/nvidia_icd.json"
      icds="$WORK/nvidia_icd.json"
      VLMC_KIT_ICD_SOURCE="written by run.sh for $lib"
    fi
  fi
  if [ -n "$icds" ]; then
    VK_ICD_FILENAMES=$(echo "$icds" | tr '\n' ':' | sed 's/:$//')
    export VK_ICD_FILENAMES
  else
    VLMC_KIT_ICD_SOURCE="no NVIDIA ICD found; the Vulkan loader searches its default paths"
  fi
fi
export VLMC_KIT_ICD_SOURCE VLMC_KIT_LIBVULKAN
log "Vulkan loader: $VLMC_KIT_LIBVULKAN; ICD: ${VK_ICD_FILENAMES:-none} ($VLMC_KIT_ICD_SOURCE)"

# --- measure
"$NODE" "$WORK/app/kit.mjs" measure --work "$WORK/run" --vlmc "$WORK/app/vlmc.mjs" --out "$WORK/result.json" "$@"
log "report: $WORK/result.json"
