#!/bin/sh
# RUSTC_WRAPPER for fuzz builds: lets rustc (only rustc) take the -Z flags
# cargo-fuzz passes (AddressSanitizer, SanitizerCoverage) on a stable
# toolchain. Exporting RUSTC_BOOTSTRAP=1 to cargo itself as well made cargo's
# first rustc probe on a cold target directory fail, most of the time, reading
# another rustc's error output as its source (seen on a fresh CI machine).
RUSTC_BOOTSTRAP=1 exec "$@"
